"""Family detection and requirements: every real config fixture, synthetic repos, the data table."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llm_installer.check.families import DETECTORS, detect_family, family_for, supported_families
from llm_installer.check.families import _table as table
from llm_installer.check.families._model_types import KNOWN_MODEL_TYPES
from llm_installer.check.local_source import load_local_source
from llm_installer.check.source import ModelSource, RepoFile
from llm_installer.errors import MalformedConfigError, NoConfigError, UnsupportedArchitectureError

# Same as tests/support/hub_files.py: the trimmed copy in tests/fixtures, or the env var.
REALCONFIGS = Path(
    os.environ.get(
        "LLM_INSTALLER_REALCONFIGS",
        Path(__file__).resolve().parents[1] / "fixtures" / "realconfigs",
    )
)
needs_realconfigs = pytest.mark.skipif(
    not REALCONFIGS.is_dir(), reason="shared realconfigs not available"
)
REAL_REPOS = sorted(p.name for p in REALCONFIGS.glob("*__*") if (p / "meta.json").is_file())
FIXTURE_ONLY = {"meta.json", "files.json"}
READ_AS_TEXT = (".json", ".jinja", ".txt", ".md", ".py", ".yaml")

CONTRACT_FAMILIES = {
    "text-generation",
    "text2text-generation",
    "embedding",
    "diffusion",
    "speech-recognition",
    "audio-generation",
    "image-classification",
    "object-detection",
    "image-segmentation",
    "zero-shot-image-classification",
    "image-text-to-text",
    "feature-extraction",
    "state-space",
    "gguf",
    "peft-adapter",
}


# --- helpers -------------------------------------------------------------------------------


def copy_real_repo(name: str, tmp_path: Path) -> Path:
    """The fixture under the neutral name ``repo``, with files.json's other files as placeholders.

    Placeholders (sparse files of the listed size) stand in for weights and binary tokenizer
    files, so inventories look like the Hub's (e.g. gemma-2b-it's 10 GB .gguf beside safetensors).
    """
    repo = tmp_path / "repo"
    shutil.copytree(REALCONFIGS / name, repo, ignore=lambda _d, names: FIXTURE_ONLY & set(names))
    listing = REALCONFIGS / name / "files.json"
    for entry in json.loads(listing.read_text()) if listing.is_file() else []:
        target = repo / entry["path"]
        if target.exists() or entry.get("size") is None or entry["path"].endswith(READ_AS_TEXT):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as handle:
            handle.truncate(entry["size"])
    return repo


def make_repo(tmp_path: Path, files: dict[str, Any]) -> Path:
    """A repo folder from {path: dict (JSON) | str (text) | int (placeholder of that size)}."""
    repo = tmp_path / "repo"
    for path, content in files.items():
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, int):
            with open(target, "wb") as handle:
                handle.truncate(content)
        else:
            target.write_text(content if isinstance(content, str) else json.dumps(content))
    return repo


def detect(tmp_path: Path, files: dict[str, Any]):
    return detect_family(load_local_source(make_repo(tmp_path, files)))


def packages(requirements) -> list[str]:
    return [str(r) for r in requirements]


# --- the real published configs ------------------------------------------------------------


@pytest.mark.parametrize("name", REAL_REPOS)
def test_real_config_detection(name: str, tmp_path: Path) -> None:
    # Labels in meta.json marked "medium confidence" (llava-v1.5's library, speecht5_vc's family,
    # gemma-4's is_reasoning, Qwen2.5-Math's is_reasoning) are still the labels we answer:
    # original LLaVA gets library transformers plus a warning that it needs the LLaVA code base;
    # voice conversion (audio in, audio out) is audio-generation with task audio-to-audio;
    # gemma-4's chat template has enable_thinking; Qwen2.5-Math has no thinking markers.
    expected = json.loads((REALCONFIGS / name / "meta.json").read_text())["expected"]
    source = load_local_source(copy_real_repo(name, tmp_path))
    assert source.model_id == "repo"
    detection, requirements = detect_family(source)
    found = {
        "family": detection.family,
        "library": detection.library,
        "is_moe": detection.is_moe,
        "is_reasoning": detection.is_reasoning,
    }
    assert found == expected
    assert detection.family in CONTRACT_FAMILIES
    assert requirements.base


@needs_realconfigs
def test_real_repo_list_is_complete() -> None:
    assert len(REAL_REPOS) >= 33


@needs_realconfigs
def test_mixtral_expert_counts_give_active_parameters(tmp_path: Path) -> None:
    detection, _ = detect_family(
        load_local_source(copy_real_repo("mistralai__Mixtral-8x7B-Instruct-v0.1", tmp_path))
    )
    details = detection.details
    assert (details["num_experts"], details["experts_per_token"]) == (8, 2)
    # 3 matrices x 4096 x 14336 per expert, 32 layers: 45.1 B routed, 11.3 B of them active.
    assert details["routed_expert_params"] == 3 * 4096 * 14336 * 8 * 32
    assert details["active_expert_params"] == 3 * 4096 * 14336 * 2 * 32


@needs_realconfigs
def test_diffusion_details_and_requirements(tmp_path: Path) -> None:
    detection, requirements = detect_family(
        load_local_source(copy_real_repo("edkamesh__FluX-optimized", tmp_path))
    )
    assert detection.details["pipeline"] == "FluxPipeline"
    assert detection.details["components"]["transformer"] == ["diffusers", "FluxTransformer2DModel"]
    assert [r.package for r in requirements.base] == [
        "torch",
        "diffusers",
        "transformers",
        "accelerate",
    ]
    # The NF4 transformer's quantization_config asks for bitsandbytes; T5 tokenizer for sentencepiece.
    assert {"bitsandbytes", "sentencepiece"} <= {r.package for r in requirements.architecture}
    assert packages(requirements.optional) == [
        "xformers (optional, memory-efficient attention on CUDA)"
    ]


@needs_realconfigs
def test_sentencepiece_from_tokenizer_model(tmp_path: Path) -> None:
    _, requirements = detect_family(
        load_local_source(copy_real_repo("mistralai__Mistral-7B-Instruct-v0.3", tmp_path))
    )
    assert "sentencepiece" in {r.package for r in requirements.architecture}
    assert packages(requirements.optional) == [
        "flash-attn (optional, requires CUDA 11.6+)",
        "bitsandbytes (4/8-bit, QLoRA; in every CUDA image)",
    ]


# --- synthetic repos for families the real configs lack -------------------------------------

MAMBA = {
    "model_type": "mamba",
    "architectures": ["MambaForCausalLM"],
    "hidden_size": 768,
    "num_hidden_layers": 24,
    "vocab_size": 50280,
}


def test_mamba_is_state_space_with_cuda_kernels(tmp_path: Path) -> None:
    detection, requirements = detect(tmp_path, {"config.json": MAMBA})
    assert (detection.family, detection.library, detection.task) == (
        "state-space",
        "transformers",
        "text-generation",
    )
    assert packages(requirements.base) == ["torch", "transformers", "accelerate"]
    assert packages(requirements.architecture) == [
        "mamba-ssm (requires CUDA compilation)",
        "causal-conv1d (requires CUDA)",
    ]
    assert "This model requires mamba-ssm which needs CUDA compilation" in requirements.warnings


def test_original_mamba_ssm_checkpoint(tmp_path: Path) -> None:
    config = {"d_model": 2560, "n_layer": 64, "vocab_size": 50277, "ssm_cfg": {}, "rms_norm": True}
    detection, requirements = detect(tmp_path, {"config.json": config, "pytorch_model.bin": 100})
    assert (detection.family, detection.library) == ("state-space", "mamba-ssm")
    assert "mamba-ssm" in {r.package for r in requirements.architecture}


def test_jamba_is_state_space_and_moe(tmp_path: Path) -> None:
    config = {
        "model_type": "jamba",
        "architectures": ["JambaForCausalLM"],
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_experts": 16,
        "num_experts_per_tok": 2,
        "expert_layer_period": 2,
    }
    detection, requirements = detect(tmp_path, {"config.json": config})
    assert detection.family == "state-space" and detection.is_moe
    assert detection.details["moe_layers"] == 16
    assert "causal-conv1d" in {r.package for r in requirements.architecture}


def test_rwkv_needs_rwkv_package(tmp_path: Path) -> None:
    config = {
        "model_type": "rwkv",
        "architectures": ["RwkvForCausalLM"],
        "hidden_size": 2048,
        "vocab_size": 50277,
    }
    detection, requirements = detect(tmp_path, {"config.json": config})
    assert detection.family == "state-space"
    assert [r.package for r in requirements.architecture] == ["rwkv"]
    assert not any("mamba" in w for w in requirements.warnings)


def test_timm_image_classifier(tmp_path: Path) -> None:
    config = {
        "architecture": "resnet50",
        "num_classes": 1000,
        "num_features": 2048,
        "pretrained_cfg": {"tag": "a1_in1k", "input_size": [3, 224, 224], "num_classes": 1000},
    }
    detection, requirements = detect(tmp_path, {"config.json": config, "model.safetensors": 100})
    assert (detection.family, detection.library, detection.architecture) == (
        "image-classification",
        "timm",
        "resnet50",
    )
    assert detection.details == {"num_classes": 1000, "input_size": [3, 224, 224]}
    assert [r.package for r in requirements.base] == ["torch", "timm"]


def test_transformers_image_classifier(tmp_path: Path) -> None:
    config = {
        "model_type": "vit",
        "architectures": ["ViTForImageClassification"],
        "image_size": 224,
    }
    detection, requirements = detect(tmp_path, {"config.json": config})
    assert (detection.family, detection.library) == ("image-classification", "transformers")
    assert "pillow" in {r.package for r in requirements.architecture}


def test_segformer_segmentation(tmp_path: Path) -> None:
    config = {
        "model_type": "segformer",
        "architectures": ["SegformerForSemanticSegmentation"],
        "id2label": {"0": "wall", "1": "building"},
    }
    detection, _ = detect(tmp_path, {"config.json": config})
    assert (detection.family, detection.task) == ("image-segmentation", "image-segmentation")
    assert detection.details["num_labels"] == 2


def test_gguf_repo_variants(tmp_path: Path) -> None:
    files = {
        "README.md": "# a GGUF repo",
        "Qwen3-4B-Q4_K_M.gguf": 2_500,
        "Qwen3-4B-Q8_0.gguf": 4_300,
        "qwen3-4b.iq3_xs.gguf": 1_800,
        "Qwen3-4B-BF16-00001-of-00002.gguf": 4_000,
        "Qwen3-4B-BF16-00002-of-00002.gguf": 4_000,
        "mmproj-Qwen3-4B-f16.gguf": 600,
    }
    detection, requirements = detect(tmp_path, files)
    assert (detection.family, detection.library) == ("gguf", "llama-cpp-python")
    assert [(v["quantization"], v["size"]) for v in detection.details["variants"]] == [
        ("IQ3_XS", 1_800),
        ("Q4_K_M", 2_500),
        ("Q8_0", 4_300),
        ("BF16", 8_000),
    ]
    assert detection.details["projectors"] == ["mmproj-Qwen3-4B-f16.gguf"]
    assert "Multimodal" in detection.capabilities
    assert [r.package for r in requirements.base] == ["llama-cpp-python"]


def test_gguf_beside_safetensors_is_not_gguf(tmp_path: Path) -> None:
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"]}
    files = {"config.json": config, "model.safetensors": 10, "model-Q4_0.gguf": 5}
    assert detect(tmp_path, files)[0].family == "text-generation"


def test_peft_adapter(tmp_path: Path) -> None:
    adapter = {
        "base_model_name_or_path": "meta-llama/Llama-3.2-3B-Instruct",
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": 16,
        "lora_alpha": 32,
        "target_modules": ["q_proj", "v_proj"],
    }
    files = {"adapter_config.json": adapter, "adapter_model.safetensors": 1000}
    detection, requirements = detect(tmp_path, files)
    assert (detection.family, detection.library, detection.task) == (
        "peft-adapter",
        "peft",
        "text-generation",
    )
    assert detection.details["base_model_name_or_path"] == "meta-llama/Llama-3.2-3B-Instruct"
    assert (detection.details["r"], detection.details["target_modules"]) == (
        16,
        ["q_proj", "v_proj"],
    )
    assert "peft" in {r.package for r in requirements.base}
    assert "meta-llama/Llama-3.2-3B-Instruct" in requirements.warnings[0]


def test_wav2vec2_ctc_is_speech_recognition(tmp_path: Path) -> None:
    config = {
        "model_type": "wav2vec2",
        "architectures": ["Wav2Vec2ForCTC"],
        "conv_dim": [512] * 7,
        "vocab_size": 32,
    }
    detection, requirements = detect(tmp_path, {"config.json": config})
    assert (detection.family, detection.task) == (
        "speech-recognition",
        "automatic-speech-recognition",
    )
    assert {"librosa", "soundfile"} <= {r.package for r in requirements.architecture}


def test_custom_code_vision_model_without_vision_config(tmp_path: Path) -> None:
    config = {
        "model_type": "phi3_v",
        "architectures": ["Phi3VForCausalLM"],
        "auto_map": {"AutoModelForCausalLM": "modeling_phi3_v.Phi3VForCausalLM"},
        "img_processor": {"name": "clip_vision_model", "image_dim_out": 1024},
    }
    detection, _ = detect(tmp_path, {"config.json": config})
    assert (detection.family, detection.trust_remote_code) == ("image-text-to-text", True)


def test_bare_text_encoder_is_embedding_and_audio_backbone_is_feature_extraction(
    tmp_path: Path,
) -> None:
    bert = {
        "model_type": "bert",
        "architectures": ["BertModel"],
        "vocab_size": 30522,
        "hidden_size": 384,
    }
    detection, _ = detect(tmp_path / "a", {"config.json": bert})
    assert (detection.family, detection.library) == ("embedding", "transformers")
    wav2vec = {
        "model_type": "wav2vec2",
        "architectures": ["Wav2Vec2Model"],
        "conv_dim": [512],
        "vocab_size": 32,
    }
    detection, _ = detect(tmp_path / "b", {"config.json": wav2vec})
    assert (detection.family, detection.task) == ("feature-extraction", "feature-extraction")


def test_custom_code_needs_trust_remote_code(tmp_path: Path) -> None:
    config = {
        "model_type": "chatglm",
        "architectures": ["ChatGLMModel"],
        "auto_map": {
            "AutoConfig": "configuration_chatglm.ChatGLMConfig",
            "AutoModelForCausalLM": "modeling_chatglm.ChatGLMForConditionalGeneration",
        },
        "hidden_size": 4096,
        "vocab_size": 65024,
    }
    detection, requirements = detect(tmp_path, {"config.json": config})
    assert (detection.family, detection.trust_remote_code) == ("text-generation", True)
    assert any("--trust-remote-code" in warning for warning in requirements.warnings)


def test_auto_map_on_a_native_type_needs_no_remote_code(tmp_path: Path) -> None:
    config = {
        "model_type": "phi3",
        "architectures": ["Phi3ForCausalLM"],
        "auto_map": {"AutoModelForCausalLM": "m.P"},
    }
    assert detect(tmp_path, {"config.json": config})[0].trust_remote_code is False


def test_flash_attention_and_quantization_requirements(tmp_path: Path) -> None:
    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "_attn_implementation": "flash_attention_2",
        "quantization_config": {"quant_method": "gptq", "bits": 4},
    }
    _, requirements = detect(tmp_path, {"config.json": config})
    assert [r.package for r in requirements.architecture] == ["flash-attn", "auto-gptq", "optimum"]
    assert [r.package for r in requirements.optional] == ["bitsandbytes"]
    assert any("flash_attention_2" in warning for warning in requirements.warnings)


def test_bitsandbytes_quantization_config(tmp_path: Path) -> None:
    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "quantization_config": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"},
    }
    detection, requirements = detect(tmp_path, {"config.json": config})
    assert detection.details["quantization"] == "bitsandbytes"
    assert "bitsandbytes" in {r.package for r in requirements.architecture}
    assert "bitsandbytes" not in {r.package for r in requirements.optional}


def test_reasoning_from_added_think_token(tmp_path: Path) -> None:
    config = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]}
    tokenizer = {"added_tokens_decoder": {"151648": {"content": "<think>", "special": False}}}
    detection, _ = detect(tmp_path, {"config.json": config, "tokenizer_config.json": tokenizer})
    assert detection.is_reasoning and "Reasoning" in detection.capabilities


def test_alternative_config_name_is_accepted(tmp_path: Path) -> None:
    files = {
        "service_config.json": {"api_key": "x", "model_type": "bert", "hidden_size": 1},
        "llm_config.json": {
            "model_type": "llama",
            "architectures": ["LlamaForCausalLM"],
            "vocab_size": 32000,
        },
    }
    detection, _ = detect(tmp_path, files)
    assert (detection.family, detection.architecture) == ("text-generation", "LlamaForCausalLM")


def test_config_with_api_key_is_ignored(tmp_path: Path) -> None:
    files = {
        "client_config.json": {"endpoint": "https://x", "model_type": "llama", "vocab_size": 1}
    }
    with pytest.raises(NoConfigError):
        detect(tmp_path, files)


def test_tokenizer_files_alone_are_no_configuration(tmp_path: Path) -> None:
    files = {"tokenizer_config.json": {"model_max_length": 512}, "tokenizer.model": 10}
    with pytest.raises(NoConfigError) as error:
        detect(tmp_path, files)
    assert error.value.message == "No configuration files found in repo"


def test_sentencepiece_without_tokenizer_json_needs_protobuf(tmp_path: Path) -> None:
    config = {
        "model_type": "t5",
        "architectures": ["T5ForConditionalGeneration"],
        "is_encoder_decoder": True,
    }
    _, requirements = detect(tmp_path, {"config.json": config, "spiece.model": 10})
    assert [r.package for r in requirements.architecture] == ["sentencepiece", "protobuf"]


def test_unknown_architecture_lists_supported_families(tmp_path: Path) -> None:
    config = {"model_type": "frobnicator", "architectures": ["FrobnicatorForTabularRegression"]}
    with pytest.raises(UnsupportedArchitectureError) as error:
        detect(tmp_path, {"config.json": config})
    message = error.value.message
    assert "Unsupported model architecture FrobnicatorForTabularRegression" in message
    assert all(family in message for family in CONTRACT_FAMILIES)
    assert error.value.exit_code == 16


def test_malformed_json_names_file_and_position(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"config.json": '{"model_type": "llama",\n  "vocab_size": }'})
    with pytest.raises(MalformedConfigError) as error:
        load_local_source(repo)
    assert "config.json" in error.value.message
    assert "line 2, column" in error.value.message


def test_missing_folder_is_model_not_found(tmp_path: Path) -> None:
    from llm_installer.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError):
        load_local_source(tmp_path / "absent")


def test_local_source_inventory(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, {"config.json": MAMBA, "model.safetensors": 1234, "sub/x.txt": "y"})
    (repo / ".git").mkdir()
    (repo / ".git" / "HEAD").write_text("ref")
    source = load_local_source(repo)
    assert [(f.path, f.size) for f in source.files] == [
        ("config.json", len(json.dumps(MAMBA))),
        ("model.safetensors", 1234),
        ("sub/x.txt", 1),
    ]
    assert source.is_local and source.local_path == str(repo.resolve())


# --- the registry --------------------------------------------------------------------------


def test_supported_families_are_the_runtime_contract() -> None:
    assert set(supported_families()) == CONTRACT_FAMILIES | set(table.PIPELINE_TASK_MARKERS)
    assert supported_families()[0] == "gguf"


def test_every_detector_imports_and_has_its_family_name() -> None:
    for name, _ in DETECTORS:
        assert family_for(name).name == name


def test_check_imports_neither_torch_nor_transformers() -> None:
    code = (
        "import sys; from llm_installer.check.families import detect_family, DETECTORS, load_detector\n"
        "[load_detector(t) for _, t in DETECTORS]\n"
        "import llm_installer.check.local_source\n"
        "assert not {'torch', 'transformers'} & set(sys.modules), sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": ""})


# --- the data table against transformers' own auto-mappings --------------------------------

MAPPING_FAMILIES = {
    "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES": "text-generation",
    "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES": "text2text-generation",
    "MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES": "speech-recognition",
    "MODEL_FOR_CTC_MAPPING_NAMES": "speech-recognition",
    "MODEL_FOR_TEXT_TO_WAVEFORM_MAPPING_NAMES": "audio-generation",
    "MODEL_FOR_TEXT_TO_SPECTROGRAM_MAPPING_NAMES": "audio-generation",
    "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES": "image-classification",
    "MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES": "object-detection",
    "MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES": "image-segmentation",
    "MODEL_FOR_INSTANCE_SEGMENTATION_MAPPING_NAMES": "image-segmentation",
    "MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES": "image-segmentation",
    "MODEL_FOR_MASK_GENERATION_MAPPING_NAMES": "image-segmentation",
    "MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES": "zero-shot-image-classification",
    "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES": "image-text-to-text",
}
# Where our answer differs from transformers' mapping on purpose (the rest are rules below).
KNOWN_DIFFERENCES = {
    ("mistral4", "Mistral4ForCausalLM"): "transformers' default Mistral4 config has no vision part",
    (
        "pi0",
        "PI0ForConditionalGeneration",
    ): "a vision-language-action model, served as text generation",
    ("speecht5", "SpeechT5ForTextToSpeech"): "text-to-spectrogram: refused (no vocoder offline)",
    ("fastspeech2_conformer", "FastSpeech2ConformerModel"): "text-to-spectrogram: refused",
}
AUDIO_TYPES = table.SPEECH_RECOGNITION_TYPES | table.AUDIO_GENERATION_TYPES
CUSTOM_CODE_TYPES = {"rwkv5", "rwkv6", "rwkv7"}  # RWKV's own repos; not transformers types


def _mapping_pairs(modeling_auto) -> dict[tuple[str, str], set[str]]:
    pairs: dict[tuple[str, str], set[str]] = {}
    for mapping, family in MAPPING_FAMILIES.items():
        for model_type, classes in getattr(modeling_auto, mapping).items():
            for class_name in [classes] if isinstance(classes, str) else classes:
                pairs.setdefault((model_type, class_name), set()).add(family)
    return pairs


def _refinement(model_type: str, class_name: str, config: dict, found: str) -> bool:
    """Our table answers more specifically than transformers' generic LM/seq2seq mappings."""
    if found == "state-space":
        return model_type in table.STATE_SPACE_TYPES
    if found in ("speech-recognition", "audio-generation"):
        return model_type in AUDIO_TYPES
    # A text-only ForCausalLM class paired with transformers' default composite (vision) config;
    # real text-only checkpoints ship the *_text config instead.
    return (
        found == "image-text-to-text"
        and class_name.endswith("ForCausalLM")
        and any(isinstance(config.get(key), dict) for key in ("vision_config", "vq_config"))
    )


def test_table_agrees_with_transformers_auto_mappings() -> None:
    pytest.importorskip("transformers")
    from transformers import AutoConfig
    from transformers.models.auto import modeling_auto
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    disagreements = []
    for (model_type, class_name), families in sorted(_mapping_pairs(modeling_auto).items()):
        try:
            config = {**AutoConfig.for_model(model_type).to_dict(), "architectures": [class_name]}
        except Exception:  # a config class that cannot be built from its defaults
            continue
        source = ModelSource("repo", (RepoFile("config.json", 1),), configs={"config.json": config})
        try:
            found = detect_family(source)[0].family
        except UnsupportedArchitectureError:
            found = "unsupported"
        if found not in families and not _refinement(model_type, class_name, config, found):
            disagreements.append((model_type, class_name, sorted(families), found))
    unexplained = [d for d in disagreements if d[:2] not in KNOWN_DIFFERENCES]
    assert not unexplained, (
        "update installer/check/families/_table.py for these transformers models"
    )


def test_table_model_types_exist_in_transformers() -> None:
    pytest.importorskip("transformers")
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    ours = (
        table.SPEECH_RECOGNITION_TYPES
        | table.AUDIO_GENERATION_TYPES
        | table.ZERO_SHOT_IMAGE_TYPES
        | table.IMAGE_TEXT_TYPES
        | table.TEXT2TEXT_TYPES
        | table.MASK_GENERATION_TYPES
        | set(table.STATE_SPACE_TYPES)
    )
    assert ours - set(CONFIG_MAPPING_NAMES) == CUSTOM_CODE_TYPES
    missing = set(CONFIG_MAPPING_NAMES) - KNOWN_MODEL_TYPES
    assert not missing, (
        "regenerate: python -m llm_installer.check.families._model_types > installer/check/families/_model_types.py"
    )


def test_vlms_with_a_video_processor_need_torchvision(tmp_path: Path) -> None:
    qwen = {
        "model_type": "qwen2_5_vl",
        "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "vision_config": {"depth": 2},
    }
    detection, requirements = detect(tmp_path / "qwen", {"config.json": qwen})
    assert detection.family == "image-text-to-text"
    assert "torchvision" in {r.package for r in requirements.architecture}
    llava = {
        "model_type": "llava",
        "architectures": ["LlavaForConditionalGeneration"],
        "vision_config": {"model_type": "clip_vision_model"},
    }
    detection, requirements = detect(tmp_path / "llava", {"config.json": llava})
    assert detection.family == "image-text-to-text"
    assert "torchvision" not in {r.package for r in requirements.architecture}


# --- LoRA target modules (the training guide's table) ---------------------------------------

TINY = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 64}
TARGET_CASES = {
    "llama": ({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "intermediate_size": 32,
               "num_key_value_heads": 2, "head_dim": 8}, ["q_proj", "v_proj", "k_proj", "o_proj"]),
    "gemma3_text": ({"model_type": "gemma3_text", "architectures": ["Gemma3ForCausalLM"],
                     "intermediate_size": 32, "num_key_value_heads": 2, "head_dim": 8},
                    ["q_proj", "v_proj", "k_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
    "gpt2": ({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 16,
              "n_layer": 1, "n_head": 2}, ["c_attn", "c_proj"]),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(TARGET_CASES))
def test_lora_target_modules_from_the_family_reach_model_info(name: str, tmp_path: Path) -> None:
    """The detector names the guide's targets; they are real module names of that model class,
    and check's profile (which install writes into model_info.json) carries them."""
    from llm_installer.check.profile import _detection

    config, expected = TARGET_CASES[name]
    config = {**TINY, **config}
    detection, _ = detect(tmp_path, {"config.json": config, "model.safetensors": 100})
    assert list(detection.lora_target_modules) == expected
    assert json.loads(json.dumps(_detection(detection)))["lora_target_modules"] == expected
    transformers = pytest.importorskip("transformers")
    model_config = transformers.AutoConfig.for_model(**config)
    model = transformers.AutoModelForCausalLM.from_config(model_config)
    leaves = {module_name.rsplit(".", 1)[-1] for module_name, _ in model.named_modules()}
    assert set(expected) <= leaves


def test_other_models_keep_all_linear(tmp_path: Path) -> None:
    config = {**TINY, "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]}
    detection, _ = detect(tmp_path, {"config.json": config, "model.safetensors": 100})
    assert detection.family == "text-generation" and detection.lora_target_modules == ()


def test_text_to_spectrogram_models_are_refused_with_the_reason() -> None:
    config = {"model_type": "speecht5", "architectures": ["SpeechT5ForTextToSpeech"]}
    source = ModelSource(
        "microsoft/speecht5_tts", (RepoFile("config.json", 1),), configs={"config.json": config}
    )
    with pytest.raises(UnsupportedArchitectureError, match="vocoder") as caught:
        detect_family(source)
    assert caught.value.exit_code == 16 and "VITS" in caught.value.hint
