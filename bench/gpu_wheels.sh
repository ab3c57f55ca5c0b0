#!/usr/bin/env bash
# Fetch (here, where PyPI is reachable) the wheels bench/gpu_check.sh needs on the GPU machine
# beyond its own torch/transformers/accelerate/peft (see /work/.library/device/KINDS.md): into
# .whl/ (git-ignored through .git/info/exclude), for CPython 3.12 on manylinux x86_64: about
# 55 MB, of which bitsandbytes is 43 MB (the device tool carries at most 64 MiB with the repo).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> "$(git rev-parse --git-common-dir)/info/exclude"
PACKAGES=(
    bitsandbytes==0.50.2 trl==1.16.0 datasets==5.2.0 dill multiprocess diffusers==0.42.1
    docker==7.2.0 fastapi==0.165.0 starlette==1.10.0 pydantic==2.14.3 pydantic-core==2.50.4
    annotated-types typing-inspection importlib-metadata opentelemetry-api soundfile==0.14.0 cffi pycparser
)
PLATFORMS=()
# bitsandbytes 0.50.2 is tagged manylinux_2_24; pip matches each N exactly.
for n in 17 24 27 28 31 34 35; do PLATFORMS+=(--platform "manylinux_2_${n}_x86_64"); done
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" --platform manylinux2014_x86_64 -d .whl "${PACKAGES[@]}"
du -sh .whl
