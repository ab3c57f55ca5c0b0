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


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA/MPS/CPU allocation failures, whatever class the backend raised."""
    text = str(error).lower()
    return type(error).__name__ == "OutOfMemoryError" or "out of memory" in text
