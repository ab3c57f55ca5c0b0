#!/usr/bin/env bash
# GPU check of the vLLM engine, for a lent NVIDIA machine (the device tool); not part of CI.
#
#   bash bench/gpu_vllm_check.sh            # from the repository root
#
# 1. What the machine has: GPU, driver (vllm 0.33.0 wants >= 580.65 for its CUDA 13 torch), Docker.
# 2. A Python with vLLM: $VLLM_PYTHON, else one whose `import vllm` works, else a fresh venv with
#    vllm==0.33.0 pinned by dockerfiles/constraints-vllm-cuda.txt (needs an index; say so if not).
# 3. bench/serve.py (d) on a random-weight Llama (head_dim 128, ~0.5B parameters, bf16): our server
#    on vLLM vs a standalone vLLM server with the same flags vs our transformers engine, at
#    concurrency 1/8/32/64 — tokens/s, median latency, time to first token.
# 4. With Docker and the NVIDIA toolkit: `llm-installer install --engine vllm --device cuda` of that
#    model (the CUDA vLLM image, cuda-vllm base) and start.sh's smoke answer through it.
# Everything it prints also lands in ${OUT:-/tmp}/gpu_vllm_check.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-/tmp}"
REPORT="$OUT_DIR/gpu_vllm_check.txt"
exec > >(tee "$REPORT") 2>&1
WORK="$(mktemp -d /tmp/gpu-vllm-XXXX)"
LEVELS="${LEVELS:-1,8,32,64}"
REQUESTS="${REQUESTS:-128}"

section() { printf '\n== %s ==\n' "$*"; }

section "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || { echo "no NVIDIA GPU"; exit 2; }
docker version --format '{{.Server.Version}}' 2>/dev/null && docker info 2>/dev/null | grep -i runtimes || echo "no Docker engine"

section "python with vLLM"
PY="${VLLM_PYTHON:-}"
if [ -z "$PY" ]; then
  for candidate in python3 python /opt/conda/bin/python; do
    if command -v "$candidate" >/dev/null && "$candidate" -c "import vllm" 2>/dev/null; then PY="$(command -v "$candidate")"; break; fi
  done
fi
if [ -z "$PY" ]; then
  python3 -m venv "$WORK/venv" && PY="$WORK/venv/bin/python"
  if ! "$PY" -m pip install -q -c dockerfiles/constraints-vllm-cuda.txt vllm==0.33.0 fastapi uvicorn sse-starlette \
      python-multipart websockets psutil peft accelerate; then
    echo "Cannot install vllm==0.33.0 here (no package index?). Set VLLM_PYTHON to a Python that has it."; exit 3
  fi
fi
"$PY" -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"

section "model"
MODEL="$WORK/llama-hd128"
"$PY" - "$MODEL" <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, "tests")
import torch
from tiny_models import llama_config, save_causal_lm, train_tokenizer
tok = train_tokenizer(thinking=False)
config = llama_config(tok, hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                      num_attention_heads=8, num_key_value_heads=8, head_dim=128,
                      max_position_embeddings=4096, torch_dtype="bfloat16")
save_causal_lm(Path(sys.argv[1]), config, tok, seed=0)
print("saved", sys.argv[1])
EOF

section "serving benchmark (d): concurrency $LEVELS"
PYTHONPATH="$PWD/tests" "$PY" bench/serve.py --model "$MODEL" --vllm-python "$PY" --vllm-only \
  --vllm-levels "$LEVELS" --requests "$REQUESTS" --max-tokens 128 --threads 4 || echo "benchmark failed"

section "CUDA vLLM image through llm-installer"
if docker info 2>/dev/null | grep -qi nvidia; then
  python3 -m venv "$WORK/installer" && "$WORK/installer/bin/pip" -q install -e . \
    && LLM_INSTALLER_MODELS_DIR="$WORK/models" LLM_INSTALLER_LOGS_DIR="$WORK/logs" \
       "$WORK/installer/bin/llm-installer" install "$MODEL" --engine vllm --device cuda --yes \
    && tail -5 "$WORK/models/llama-hd128/install.log"
else
  echo "skipped: no Docker engine with the NVIDIA runtime"
fi
echo "report: $REPORT"
