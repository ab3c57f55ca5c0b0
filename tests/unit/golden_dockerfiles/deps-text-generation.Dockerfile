# llm-installer dependency layer: llm-installer/base:cpu-torch2.13.0 + the family's packages (sorted, pinned).
# Every model with the same dependency set shares this image and all of its layers.
FROM llm-installer/base:cpu-torch2.13.0
COPY constraints.txt /etc/llm-installer/constraints.txt
# LLM_TORCH_INDEX (set by bases built from torch's index): a torchvision that matches torch.
RUN pip install --constraint /etc/llm-installer/constraints.txt \
    ${LLM_TORCH_INDEX:+--extra-index-url "$LLM_TORCH_INDEX"} accelerate datasets fastapi llguidance matplotlib peft psutil pydantic python-multipart safetensors soundfile sse-starlette tensorboard transformers trl uvicorn websockets \
    && pip freeze > /etc/llm-installer/pip-freeze.txt
