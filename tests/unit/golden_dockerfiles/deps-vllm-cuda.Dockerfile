# llm-installer vLLM dependency layer: llm-installer/base:cuda-vllm-torch2.14.0 + vllm==0.33.0 + the runtime's packages.
# Pinned by dockerfiles/constraints-vllm-cuda.txt (vLLM's own torch/transformers pins differ from the other images');
# every vLLM model with the same set shares this image and all of its layers.
FROM llm-installer/base:cuda-vllm-torch2.14.0
COPY constraints.txt /etc/llm-installer/constraints.txt
RUN pip install --constraint /etc/llm-installer/constraints.txt accelerate datasets fastapi llguidance matplotlib peft psutil pydantic python-multipart safetensors soundfile sse-starlette tensorboard transformers trl uvicorn vllm==0.33.0 websockets \
    && pip freeze > /etc/llm-installer/pip-freeze.txt
ENV VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1
