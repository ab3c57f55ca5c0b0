"""Tiny random-weight models of the media families, saved with save_pretrained.

Tokenizers are built here from a byte-level vocabulary (no download): enough for the model
to load and run, not to say anything sensible.
"""

from __future__ import annotations

import io
import json
import wave
from pathlib import Path

import numpy as np
from tiny_models import make_tiny_llama, train_tokenizer

SEED = 0


def _byte_chars() -> list[str]:
    from tokenizers.pre_tokenizers import ByteLevel

    return sorted(ByteLevel.alphabet())


def write_bpe_files(folder: Path, *, specials: list[str], word_end: str = "") -> tuple[Path, Path]:
    """vocab.json + merges.txt of a byte-level BPE that never merges: one token per byte."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = _byte_chars()
    tokens = chars + ([c + word_end for c in chars] if word_end else []) + specials
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return folder / "vocab.json", folder / "merges.txt"


def clip_tokenizer(scratch: Path):
    from transformers import CLIPTokenizer

    vocab, merges = write_bpe_files(
        scratch, specials=["<|startoftext|>", "<|endoftext|>"], word_end="</w>"
    )
    return CLIPTokenizer(str(vocab), str(merges), pad_token="<|endoftext|>", model_max_length=77)


def _manual_seed() -> None:
    import torch

    torch.manual_seed(SEED)


def make_tiny_t5(path: Path) -> Path:
    from transformers import T5Config, T5ForConditionalGeneration

    _manual_seed()
    tokenizer = train_tokenizer(thinking=False)
    config = T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        decoder_start_token_id=tokenizer.pad_token_id, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    model = T5ForConditionalGeneration(config)
    model.generation_config.decoder_start_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = None  # random weights: always run to max tokens
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def make_tiny_diffusion(path: Path) -> Path:
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    _manual_seed()
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
        norm_num_groups=4, attention_head_dim=2,
    )  # fmt: skip
    vae = AutoencoderKL(
        block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), norm_num_groups=4,
        sample_size=32,
    )  # fmt: skip
    tokenizer = clip_tokenizer(path.parent / (path.name + "-tok"))
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )  # fmt: skip
    )
    pipe = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        scheduler=DDIMScheduler(steps_offset=1, clip_sample=False), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip
    pipe.save_pretrained(path)
    return path


def make_tiny_ctc(path: Path) -> Path:
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    _manual_seed()
    path.mkdir(parents=True, exist_ok=True)
    letters = list("abcdefghijklmnopqrstuvwxyz'")
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4}
    vocab.update({c: i + 5 for i, c in enumerate(letters)})
    (path / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(path / "vocab.json"), word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=True)
    config = Wav2Vec2Config(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 8),
        num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2, pad_token_id=0,
    )  # fmt: skip
    Wav2Vec2ForCTC(config).save_pretrained(path)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(path)
    return path


def make_tiny_whisper(path: Path) -> Path:
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    _manual_seed()
    specials = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>",
                "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>",
                "<|notimestamps|>"]  # fmt: skip
    vocab, merges = write_bpe_files(path, specials=specials)
    tokenizer = WhisperTokenizer(
        str(vocab), str(merges), model_max_length=64, pad_token="<|endoftext|>"
    )
    ids = {s: tokenizer.convert_tokens_to_ids(s) for s in specials}
    config = WhisperConfig(
        vocab_size=len(tokenizer), num_mel_bins=80, d_model=16, encoder_layers=1,
        decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, max_source_positions=1500,
        max_target_positions=64, pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|endoftext|>"],
        decoder_start_token_id=ids["<|startoftranscript|>"],
    )  # fmt: skip
    model = WhisperForConditionalGeneration(config)
    generation = model.generation_config
    generation.decoder_start_token_id = ids["<|startoftranscript|>"]
    generation.eos_token_id = ids["<|endoftext|>"]
    generation.pad_token_id = ids["<|endoftext|>"]
    generation.no_timestamps_token_id = ids["<|notimestamps|>"]
    generation.lang_to_id = {"<|en|>": ids["<|en|>"]}
    generation.task_to_id = {"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]}
    generation.is_multilingual = True
    generation.max_length = 32
    model.save_pretrained(path)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer).save_pretrained(path)
    return path


def make_tiny_vits(path: Path) -> Path:
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    _manual_seed()
    path.mkdir(parents=True, exist_ok=True)
    symbols = ["<pad>", "<unk>", *" abcdefghijklmnopqrstuvwxyz.,!?'"]
    (path / "vocab.json").write_text(json.dumps({s: i for i, s in enumerate(symbols)}))
    tokenizer = VitsTokenizer(
        str(path / "vocab.json"), add_blank=True, normalize=True, phonemize=False
    )
    config = VitsConfig(
        vocab_size=len(symbols), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        ffn_dim=32, flow_size=16, spectrogram_bins=17, upsample_initial_channel=16,
        upsample_rates=[4, 4], upsample_kernel_sizes=[8, 8],
        resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
        prior_encoder_num_flows=1, prior_encoder_num_wavenet_layers=1,
        posterior_encoder_num_wavenet_layers=1, duration_predictor_filter_channels=16,
        duration_predictor_num_flows=1, depth_separable_num_layers=1, sampling_rate=16000,
    )  # fmt: skip
    VitsModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _image_processor(size: int):
    from transformers import ViTImageProcessorPil

    return ViTImageProcessorPil(size={"height": size, "width": size})


def make_tiny_vit(path: Path) -> Path:
    from transformers import ViTConfig, ViTForImageClassification

    _manual_seed()
    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, id2label={0: "cat", 1: "dog", 2: "bird"},
        label2id={"cat": 0, "dog": 1, "bird": 2},
    )  # fmt: skip
    ViTForImageClassification(config).save_pretrained(path)
    _image_processor(32).save_pretrained(path)
    return path


def make_tiny_detr(path: Path) -> Path:
    from transformers import DetrConfig, DetrForObjectDetection, DetrImageProcessorPil, ResNetConfig

    _manual_seed()
    backbone = ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], out_features=["stage2"]
    )
    config = DetrConfig(
        use_timm_backbone=False, use_pretrained_backbone=False, backbone_config=backbone,
        d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=5,
        id2label={0: "cat", 1: "dog"}, label2id={"cat": 0, "dog": 1},
    )  # fmt: skip
    DetrForObjectDetection(config).save_pretrained(path)
    DetrImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 64}).save_pretrained(path)
    return path


def make_tiny_segformer(path: Path) -> Path:
    from transformers import (
        SegformerConfig,
        SegformerForSemanticSegmentation,
        SegformerImageProcessorPil,
    )

    _manual_seed()
    config = SegformerConfig(
        num_encoder_blocks=1, depths=[1], sr_ratios=[1], hidden_sizes=[8], patch_sizes=[7],
        strides=[4], num_attention_heads=[1], mlp_ratios=[2], decoder_hidden_size=8,
        id2label={0: "sky", 1: "ground"}, label2id={"sky": 0, "ground": 1},
    )  # fmt: skip
    SegformerForSemanticSegmentation(config).save_pretrained(path)
    SegformerImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def make_tiny_clip(path: Path) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    _manual_seed()
    tokenizer = clip_tokenizer(path)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
            num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        ),
        vision_config=dict(
            image_size=32, patch_size=8, hidden_size=16, intermediate_size=32,
            num_hidden_layers=1, num_attention_heads=2,
        ),
        projection_dim=16,
    )  # fmt: skip
    CLIPModel(config).save_pretrained(path)
    processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size=32)
    CLIPProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(path)
    return path


LLAVA_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for part in m['content'] %}{% if part['type'] == 'image' %}<image>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def make_tiny_llava(path: Path) -> Path:
    """A LlavaForConditionalGeneration: a tiny CLIP vision tower on a tiny Llama."""
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    _manual_seed()
    text_dir = make_tiny_llama(path.parent / (path.name + "-text"))
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(text_dir)
    tokenizer.add_tokens(["<image>"], special_tokens=True)
    text_config = AutoConfig.from_pretrained(text_dir)
    text_config.vocab_size = len(tokenizer)
    vision = CLIPVisionConfig(
        image_size=32, patch_size=8, hidden_size=16, intermediate_size=32,
        num_hidden_layers=2, num_attention_heads=2,
    )  # fmt: skip
    config = LlavaConfig(
        vision_config=vision, text_config=text_config,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1, vision_feature_select_strategy="default",
    )  # fmt: skip
    model = LlavaForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size=32),
        tokenizer=tokenizer, patch_size=8, vision_feature_select_strategy="default",
        chat_template=LLAVA_TEMPLATE, num_additional_image_tokens=1,
    )  # fmt: skip
    processor.save_pretrained(path)
    return path


def make_tiny_bert_classifier(path: Path) -> Path:
    """A BertForSequenceClassification: served by the pipeline fallback (text-classification)."""
    from transformers import BertForSequenceClassification

    labels = {
        "id2label": {0: "negative", 1: "positive"},
        "label2id": {"negative": 0, "positive": 1},
    }
    return _make_tiny_bert(path, BertForSequenceClassification, **labels)


def make_tiny_bert_fill_mask(path: Path) -> Path:
    """A BertForMaskedLM: no family of its own, detected as transformers' fill-mask task."""
    from transformers import BertForMaskedLM

    return _make_tiny_bert(path, BertForMaskedLM)


def _make_tiny_bert(path: Path, model_class, **config_fields) -> Path:
    from transformers import BertConfig, BertTokenizerFast

    _manual_seed()
    path.mkdir(parents=True, exist_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz"]
    (path / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = BertTokenizerFast(str(path / "vocab.txt"))
    config = BertConfig(
        vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, **config_fields,
    )  # fmt: skip
    model_class(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def write_model_info(path: Path, family: str) -> Path:
    """Pin the family the way the installer does (model_info.json beside the weights)."""
    (path / "model_info.json").write_text(json.dumps({"family": family, "model_id": path.name}))
    return path


def make_png(width: int = 64, height: int = 48) -> bytes:
    from PIL import Image

    pixels = (np.random.default_rng(0).random((height, width, 3)) * 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def make_wav(seconds: float, rate: int = 22050) -> bytes:
    """A tone with noise at 22.05 kHz (the server resamples it to the model's rate)."""
    t = np.arange(int(seconds * rate)) / rate
    samples = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(0).standard_normal(
        t.size
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((samples * 32767).astype("<i2").tobytes())
    return buffer.getvalue()
