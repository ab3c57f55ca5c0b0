"""Tiny random-weight vision models beyond tiny_media's: a timm classifier and a Qwen2-VL.

Both need torchvision (timm itself; Qwen2-VL's processor through its video processor), so
they are made and served in the side venv (tests/families/side_venv.py), which prints their
reference answers (timm's own scores, transformers' own greedy text) for the tests to check.
Nothing here imports torch, timm or transformers at module level.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TIMM_LABELS = ("cat", "dog", "bird")


def make_tiny_timm(path: Path) -> Path:
    """A timm `test_vit` saved the way timm's push_to_hf_hub lays out a Hub repo."""
    import timm
    import torch
    from timm.models._hub import save_for_hf

    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False, num_classes=3, img_size=64)
    with torch.no_grad():  # spread the logits: a wrong load must show in the scores
        model.get_classifier().weight.mul_(20.0)
    save_for_hf(
        model, str(path), model_config={"label_names": list(TIMM_LABELS)},
        data_config={"input_size": (3, 64, 64)}, safe_serialization=True,
    )  # fmt: skip
    return path


def timm_scores(model_dir: Path, image_path: Path) -> dict[str, float]:
    """label -> probability by timm itself, loading the folder as it loads a Hub repo."""
    import timm
    import torch
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    model = timm.create_model(f"local-dir:{model_dir}", pretrained=True).eval()
    transform = create_transform(**resolve_data_config(model=model))
    pixels = transform(Image.open(image_path).convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        probabilities = model(pixels).softmax(-1)[0].tolist()
    labels = json.loads((model_dir / "config.json").read_text())["label_names"]
    return dict(zip(labels, probabilities, strict=True))


QWEN2_VL_TOKENS = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                   "<|image_pad|>", "<|video_pad|>")  # fmt: skip
QWEN2_VL_PROMPT, QWEN2_VL_MAX_TOKENS = "what is this", 4  # the reference answer's request
QWEN2_VL_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for part in m['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def make_tiny_qwen2_vl(path: Path) -> Path:
    """A Qwen2VLForConditionalGeneration: 2-layer vision tower, 2-layer text model, M-RoPE."""
    import torch
    from tiny_models import train_tokenizer
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessorPil,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    torch.manual_seed(0)
    tokenizer = train_tokenizer(thinking=False)
    tokenizer.add_tokens(list(QWEN2_VL_TOKENS), special_tokens=True)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN2_VL_TOKENS}
    config = Qwen2VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(
            depth=2, embed_dim=16, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=8,
            spatial_merge_size=2, temporal_patch_size=2,
        ),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )  # fmt: skip
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    patches = dict(patch_size=8, merge_size=2, temporal_patch_size=2)
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessorPil(**patches, min_pixels=16 * 16, max_pixels=64 * 64),
        video_processor=Qwen2VLVideoProcessor(**patches),
        tokenizer=tokenizer, chat_template=QWEN2_VL_TEMPLATE,
    )  # fmt: skip
    processor.save_pretrained(path)
    return path


def qwen2_vl_greedy(model_dir: Path, image_path: Path, prompt: str, max_tokens: int) -> str:
    """transformers' own greedy answer to one image + prompt (image first, as the runtime does)."""
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    image = Image.open(image_path).convert("RGB")
    inputs = processor(images=[image], text=text, return_tensors="pt")
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False)
    new_tokens = output[0, inputs["input_ids"].shape[1] :]
    return processor.tokenizer.decode(new_tokens, skip_special_tokens=True)


def main(folder: Path, image: Path) -> dict:
    """Make every side-venv model under folder; their reference answers for image."""
    timm_dir = make_tiny_timm(folder / "timm")
    qwen_dir = make_tiny_qwen2_vl(folder / "qwen2-vl")
    return {
        "timm": timm_scores(timm_dir, image),
        "qwen2-vl": qwen2_vl_greedy(qwen_dir, image, QWEN2_VL_PROMPT, QWEN2_VL_MAX_TOKENS),
    }


if __name__ == "__main__":  # run by the side venv: `python tiny_vision.py FOLDER IMAGE`
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]))))
