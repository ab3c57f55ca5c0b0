"""Training errors and the one place that turns them into messages for the console."""

from __future__ import annotations

SUPPORTED_FORMATS_HELP = """Supported formats:
- Alpaca JSON: [{"instruction": ..., "input": ..., "output": ...}]
- ShareGPT: [{"conversations": [{"from": "human", "value": ...}, ...]}]
- OpenAI chat: [{"messages": [{"role": "user", "content": ...}, ...]}]
- QA: [{"question": ..., "answer": ..., "context": ...}]
- Completion: [{"prompt": ..., "completion": ...}]
- Plain text: .txt files, or JSONL lines {"text": ...}
- CSV: question,answer format (or instruction/output, prompt/completion, text columns)
- JSONL of any of the above; image+caption records for multimodal models"""

OOM_SUGGESTIONS = """Suggestions:
1. Reduce batch size: --batch-size 1
2. Use gradient accumulation: --gradient-accumulation-steps 4
3. Enable QLoRA: --method qlora
4. Reduce LoRA rank: --lora-r 8
5. Shorten sequences: --max-seq-length 512"""


class TrainingError(Exception):
    """An error the user can act on; its message is printed without a traceback."""

    title = "Training failed"
    hint = ""

    def render(self) -> str:
        hint = f"\n\n{self.hint}" if self.hint else ""
        return f"Error: {self.title}\n\n{self}{hint}"


class DataFormatError(TrainingError):
    title = "Unable to detect data format"
    hint = f"{SUPPORTED_FORMATS_HELP}\n\nPlease check your data format."


class DataSourceError(TrainingError):
    title = "Cannot read training data"


class HubDatasetError(DataSourceError):
    title = "Cannot load the Hugging Face dataset"
    hint = (
        "Hugging Face datasets (`name:split`) need the Hub. Where it is not reachable, download\n"
        "the dataset elsewhere and pass the files with --data."
    )


class UnsupportedMethod(TrainingError):
    title = "This training method cannot run here"


class ModelLoadError(TrainingError):
    title = "Cannot load the model for training"


class OutOfMemory(TrainingError):
    title = "Out of memory"
    hint = OOM_SUGGESTIONS


class ResumeError(TrainingError):
    title = "Cannot resume training"


# What CUDA, MPS and PyTorch's CPU allocator ("DefaultCPUAllocator: can't allocate memory") say.
OOM_PHRASES = ("out of memory", "can't allocate memory", "cannot allocate memory")


def is_out_of_memory(error: BaseException | None) -> bool:
    """True for CUDA/MPS/CPU allocation failures, whatever class the backend raised, also when
    another error wraps one."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        text = str(error).lower()
        if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
            return True
        if any(phrase in text for phrase in OOM_PHRASES):
            return True
        error = error.__cause__ or error.__context__
    return False


def out_of_memory(error: BaseException) -> OutOfMemory:
    """The suggestions message for an allocation failure, with its first line."""
    lines = str(error).strip().splitlines()
    return OutOfMemory(lines[0] if lines else f"{type(error).__name__}: the allocation failed")
