"""The data behind detection: architecture-name markers and model_type sets, per family.

Compact on purpose: the installer does not depend on transformers. tests/unit/test_families.py
cross-checks these rows against transformers' own auto-mappings so they cannot drift silently.
"""

from __future__ import annotations

from llm_runtime.contract import (
    AUDIO_CLASSIFICATION,
    AUDIO_GENERATION,
    DEPTH_ESTIMATION,
    EMBEDDING,
    IMAGE_CLASSIFICATION,
    IMAGE_SEGMENTATION,
    IMAGE_TEXT_TO_TEXT,
    KEYPOINT_MATCHING,
    OBJECT_DETECTION,
    SPEECH_RECOGNITION,
    TEXT2TEXT,
    TEXT_CLASSIFICATION,
    TEXT_GENERATION,
    TOKEN_CLASSIFICATION,
    VIDEO_CLASSIFICATION,
    ZERO_SHOT_IMAGE,
)

# A head marker inside an architecture class name decides the family on its own.
HEAD_MARKERS: dict[str, tuple[str, ...]] = {
    SPEECH_RECOGNITION: ("ForCTC", "ForSpeechSeq2Seq", "ForSpeechToText", "ForRNNT", "ForTDT"),
    AUDIO_GENERATION: (
        "ForTextToSpeech",
        "ForTextToWaveform",
        "ForSpeechToSpeech",
        "WithHifiGan",
    ),
    IMAGE_CLASSIFICATION: ("ForImageClassification",),
    OBJECT_DETECTION: ("ForObjectDetection",),
    IMAGE_SEGMENTATION: (
        "ForSemanticSegmentation",
        "ForInstanceSegmentation",
        "ForUniversalSegmentation",
        "ForSegmentation",
        "ForMaskGeneration",
    ),
    ZERO_SHOT_IMAGE: ("ForImageTextRetrieval",),
    IMAGE_TEXT_TO_TEXT: ("ForVisionText2Text", "ForProteinText2Text"),
    TEXT2TEXT: ("ForSeq2SeqLM", "MTModel", "ForTextToText", "T5WithLMHeadModel"),
    TEXT_GENERATION: ("ForCausalLM", "LMHeadModel", "ModelWithLMHead", "GenerationDecoder"),
    EMBEDDING: ("ForMaskedLM",),
}

# Generic class-name endings whose family depends on model_type and config structure.
CONDITIONAL_GENERATION = ("ForConditionalGeneration",)
ENCODER_DECODER = ("EncoderDecoderModel",)

# model_type sets for architectures that a head marker does not settle.
SPEECH_RECOGNITION_TYPES = frozenset(
    {
        "whisper",
        "speech_to_text",
        "speech-encoder-decoder",
        "moonshine",
        "moonshine_streaming",
        "canary",
        "cohere_asr",
        "fun_asr_nano",
        "glmasr",
        "granite_speech",
        "granite_speech_plus",
        "kyutai_speech_to_text",
        "moss_transcribe_diarize",
        "nemo_speechlm",
        "qwen2_audio",
        "qwen3_asr",
        "vibevoice_asr",
        "voxtral",
        "voxtral_realtime",
        "audioflamingo3",
        "musicflamingo",
        "pop2piano",
    }
)
AUDIO_GENERATION_TYPES = frozenset(
    {
        "vits",
        "bark",
        "musicgen",
        "musicgen_melody",
        "csm",
        "dia",
        "fastspeech2_conformer",
        "fastspeech2_conformer_with_hifigan",
        "gradium_phonon_tts",
        "higgs_audio_v2",
        "pocket_tts",
        "qwen2_5_omni",
        "qwen3_omni_moe",
        "seamless_m4t",
        "seamless_m4t_v2",
        "vibevoice",
    }
)
ZERO_SHOT_IMAGE_TYPES = frozenset(
    {
        "align",
        "altclip",
        "blip",
        "blip-2",
        "chinese_clip",
        "clip",
        "clipseg",
        "metaclip_2",
        "siglip",
        "siglip2",
        "tipsv2",
        "videoprism",
    }
)
# Image-text-to-text models whose config.json has no vision_config to show it.
IMAGE_TEXT_TYPES = frozenset(
    {
        "fuyu",
        "git",
        "idefics",
        "kosmos-2",
        "kosmos-2.5",
        "vision-encoder-decoder",
        "nougat",
        "pix2struct",
        "udop",
        "evolla",
        "diffusion_gemma",
        "nemotron_h_omni",
    }
)
TEXT2TEXT_TYPES = frozenset(
    {
        "bart",
        "bigbird_pegasus",
        "blenderbot",
        "blenderbot-small",
        "encoder-decoder",
        "fsmt",
        "led",
        "longt5",
        "m2m_100",
        "marian",
        "mbart",
        "mt5",
        "mvp",
        "nllb-moe",
        "pegasus",
        "pegasus_x",
        "plbart",
        "prophetnet",
        "switch_transformers",
        "t5",
        "t5gemma",
        "t5gemma2",
        "umt5",
    }
)

# Promptable mask generators (SAM and kin) ship bare ``…Model`` classes: image-segmentation.
MASK_GENERATION_TYPES = frozenset(
    {
        "sam",
        "sam2",
        "sam2_video",
        "sam_hq",
        "sam3_tracker",
        "sam3_video",
        "edgetam",
        "edgetam_video",
    }
)

# State-space and hybrid models: model_type -> packages that make them fast (or run at all).
_MAMBA_KERNELS = ("mamba-ssm", "causal-conv1d")
STATE_SPACE_TYPES: dict[str, tuple[str, ...]] = {
    "mamba": _MAMBA_KERNELS,
    "mamba2": _MAMBA_KERNELS,
    "falcon_mamba": _MAMBA_KERNELS,
    "jamba": _MAMBA_KERNELS,
    "zamba": _MAMBA_KERNELS,
    "zamba2": _MAMBA_KERNELS,
    "bamba": _MAMBA_KERNELS,
    "falcon_h1": _MAMBA_KERNELS,
    "granitemoehybrid": _MAMBA_KERNELS,
    "nemotron_h": _MAMBA_KERNELS,
    "rwkv": ("rwkv",),
    "rwkv5": ("rwkv",),
    "rwkv6": ("rwkv",),
    "rwkv7": ("rwkv",),
    "xlstm": (),
    "recurrent_gemma": (),
}

# auto_map keys of custom-code repos -> family, for architectures nothing above knows.
AUTO_MAP_FAMILIES: dict[str, str] = {
    "AutoModelForCausalLM": TEXT_GENERATION,
    "AutoModelForSeq2SeqLM": TEXT2TEXT,
    "AutoModelForSpeechSeq2Seq": SPEECH_RECOGNITION,
    "AutoModelForCTC": SPEECH_RECOGNITION,
    "AutoModelForImageClassification": IMAGE_CLASSIFICATION,
    "AutoModelForObjectDetection": OBJECT_DETECTION,
    "AutoModelForImageTextToText": IMAGE_TEXT_TO_TEXT,
    "AutoModelForVision2Seq": IMAGE_TEXT_TO_TEXT,
    "AutoModelForTextToWaveform": AUDIO_GENERATION,
}

# Model types whose processors include a video processor, which needs torchvision even for
# still images (transformers 5.23's VIDEO_PROCESSOR_MAPPING_NAMES, the image-text ones).
VIDEO_PROCESSOR_TYPES = frozenset(
    {
        "cohere_compass", "ernie4_5_vl_moe", "exaone4_5", "gemma4", "gemma4_unified", "glm46v",
        "glm4v", "glm5_next", "hyperclovax_vision_v2", "instructblip", "instructblipvideo",
        "internvl", "kimi_k25", "lfm3_vl", "llava_next_video", "llava_onevision", "minicpm_ocr",
        "minicpmv4_6", "minicpmv4_7", "minimax_m3_vl", "molmo2", "nemotron_h_omni",
        "perception_lm", "qwen2_5_omni", "qwen2_5_vl", "qwen2_vl", "qwen3_5", "qwen3_5_moe",
        "qwen3_omni_moe", "qwen3_vl", "qwen3_vl_moe", "smolvlm", "video_llama_3", "video_llava",
    }
)  # fmt: skip

# LoRA target modules by model_type, where the training guide names them; install writes them
# into model_info.json (``lora_target_modules``), the trainer's default. Others: "all-linear".
_ATTENTION = ("q_proj", "v_proj", "k_proj", "o_proj")
_ATTENTION_AND_MLP = (*_ATTENTION, "gate_proj", "up_proj", "down_proj")
LORA_TARGET_MODULES: dict[str, tuple[str, ...]] = {
    "llama": _ATTENTION,
    "gemma3": _ATTENTION_AND_MLP,
    "gemma3_text": _ATTENTION_AND_MLP,
    "gpt2": ("c_attn", "c_proj"),
}

# Heads that have a transformers pipeline task but no family of their own: the runtime serves
# them through `pipeline(task)` (its fallback handler), the family name being the task name.
# Only tasks transformers still has a pipeline for (tests/unit/test_pipeline_tasks.py checks).
# Tried last, after every family above. "ForSequenceClassification" on an audio model
# (wav2vec2, HuBERT...) is audio classification, decided by the config's audio keys.
PIPELINE_TASK_MARKERS: dict[str, tuple[str, ...]] = {
    TEXT_CLASSIFICATION: ("ForSequenceClassification",),
    TOKEN_CLASSIFICATION: ("ForTokenClassification",),
    AUDIO_CLASSIFICATION: ("ForAudioClassification", "ForAudioFrameClassification"),
    VIDEO_CLASSIFICATION: ("ForVideoClassification",),
    DEPTH_ESTIMATION: ("ForDepthEstimation",),
    KEYPOINT_MATCHING: ("ForKeypointMatching",),
}
