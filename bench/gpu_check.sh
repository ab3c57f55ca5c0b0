#!/usr/bin/env bash
# The first-GPU check (issue 15): the installer's and runtime's GPU code paths on one NVIDIA GPU,
# no Docker, no network, at most 10 minutes. Prints, in order: torch/CUDA/driver/compute capability
# and the base image the installer would pick; the NVML probe as root and as a non-root user;
# bitsandbytes' CUDA binary; a random ~0.7B Llama served in bf16, 4-bit and 8-bit under 64 mixed
# concurrent requests (tokens/s, peak memory) with the sampling cost per step; the OOM
# translation; QLoRA and LoRA + paged 8-bit AdamW for 10 steps; the 4-bit model with the trained
# adapter; a tiny diffusion pipeline and Whisper on CUDA. A table of results comes last, and
# $OUT/gpu_check.json when OUT is set.
#
#   bench/gpu_check.sh [--dry-run] [--requests N]      (--dry-run: CPU, CUDA parts skipped; CI)
#
# Packages the GPU machine lacks travel as wheels in .whl/ (bench/gpu_wheels.sh fetches them);
# the device tool carries that folder: run(command="bash bench/gpu_check.sh", carry=[".whl"]).
# GPU_CHECK_VLLM=1 also runs bench/gpu_vllm_check.sh when that script exists.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
LIMIT_S="${GPU_CHECK_TIMEOUT_S:-570}"
SCRATCH="$(mktemp -d /tmp/gpu-check.XXXXXX)"
chmod 755 "$SCRATCH"  # the non-root NVML probe reads the import path from here

if compgen -G "$ROOT/.whl/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SCRATCH/site" "$ROOT"/.whl/*.whl || { echo "installing the carried wheels failed" >&2; exit 2; }
fi
# llm_installer and llm_runtime straight from this checkout (package-dir names as in pyproject).
mkdir -p "$SCRATCH/path"
ln -s "$ROOT/installer" "$SCRATCH/path/llm_installer"
ln -s "$ROOT/runtime" "$SCRATCH/path/llm_runtime"
export PYTHONPATH="$SCRATCH/path:$SCRATCH/site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

echo "gpu_check: $(date -u +%FT%TZ) on $(uname -n), python $("$PYTHON" -c 'import sys; print(sys.version.split()[0])')"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader

timeout "$LIMIT_S" "$PYTHON" "$ROOT/bench/gpu_check.py" --work "$SCRATCH/work" "$@"
status=$?
[ "$status" = 124 ] && echo "gpu_check: stopped after ${LIMIT_S} s" >&2

if [ -x "$ROOT/bench/gpu_vllm_check.sh" ]; then
    if [ "${GPU_CHECK_VLLM:-0}" = 1 ] && [[ " $* " != *" --dry-run "* ]]; then
        "$ROOT/bench/gpu_vllm_check.sh" || status=1
    else
        echo "(bench/gpu_vllm_check.sh exists: GPU_CHECK_VLLM=1 runs it after this check)"
    fi
fi
rm -rf "$SCRATCH"
exit "$status"
