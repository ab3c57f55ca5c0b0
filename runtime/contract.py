"""The host↔image contract on families: one table both sides derive their registries from.

Pure data and the standard library only, so that the host (which never imports the runtime's
model code) and the image (which never imports the installer) can both import it. Each row
names a family's host detectors (``"module:Class"`` under ``llm_installer.check.families``, imported
by the host only), its runtime handler (``(module, class)`` under ``llm_runtime``, imported by
the image only), its smoke-test request, the engines that serve it and whether train.sh trains it.
tests/unit/test_parity.py checks both registries against this table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# Family names: the ``family`` written into model_info.json and every registry's key.
TEXT_GENERATION = "text-generation"
EMBEDDING = "embedding"
TEXT2TEXT = "text2text-generation"
DIFFUSION = "diffusion"
SPEECH_RECOGNITION = "speech-recognition"
AUDIO_GENERATION = "audio-generation"
IMAGE_CLASSIFICATION = "image-classification"
OBJECT_DETECTION = "object-detection"
IMAGE_SEGMENTATION = "image-segmentation"
ZERO_SHOT_IMAGE = "zero-shot-image-classification"
IMAGE_TEXT_TO_TEXT = "image-text-to-text"
FEATURE_EXTRACTION = "feature-extraction"
STATE_SPACE = "state-space"
GGUF = "gguf"
PEFT_ADAPTER = "peft-adapter"
# Pipeline tasks the host detects by head: the runtime's pipeline fallback serves them.
TEXT_CLASSIFICATION = "text-classification"
TOKEN_CLASSIFICATION = "token-classification"
AUDIO_CLASSIFICATION = "audio-classification"
VIDEO_CLASSIFICATION = "video-classification"
DEPTH_ESTIMATION = "depth-estimation"
KEYPOINT_MATCHING = "keypoint-matching"

# Engine names: what generates inside the image (model_info.json's ``engine``).
TRANSFORMERS = "transformers"
VLLM = "vllm"
LLAMA_CPP = "llama.cpp"
# The runtime's front engine for each engine model_info.json may name: llama.cpp runs in its
# family's handler (handlers/gguf.py) under the transformers front; vLLM has a front of its own.
FRONT_ENGINES: Mapping[str, str] = MappingProxyType(
    {TRANSFORMERS: TRANSFORMERS, VLLM: VLLM, LLAMA_CPP: TRANSFORMERS}
)

PIPELINE_FALLBACK = ("llm_runtime.handlers.pipeline_task", "PipelineTaskHandler")
SFT_METHODS = ("lora", "qlora", "full", "moe-lora")


@dataclass(frozen=True)
class SmokeRequest:
    """The install's one tiny request: JSON ``body`` to ``path``, or a multipart ``upload``
    (field name) of one second of silence; ``GET /info`` when a family has none of its own."""

    path: str = "/info"
    body: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    upload: str | None = None


@dataclass(frozen=True)
class TrainingSupport:
    """How a family trains: ``trainer`` names it; ``methods`` the --method values it takes."""

    family: str
    trainer: str | None
    methods: tuple[str, ...] = ()
    default_method: str | None = None
    data: str = ""
    reason: str = ""  # why not (trainer is None) or why only some methods

    @property
    def trainable(self) -> bool:
        return self.trainer is not None


@dataclass(frozen=True)
class FamilySpec:
    """One family, both sides: detection, serving, smoke test, engines, training."""

    name: str
    handler: tuple[str, str] | None  # None: served another way (``served_on``)
    smoke: SmokeRequest | None = None  # every installable family names one (parity test)
    engines: tuple[str, ...] = (TRANSFORMERS,)
    engine_handlers: Mapping[str, tuple[str, str]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    trainer: str | None = None
    methods: tuple[str, ...] = ()
    training_data: str = ""
    training_reason: str = ""  # why not trainable, or why only some methods
    served_on: str | None = None  # how a family without a handler is served
    pipeline_task: bool = False  # served by the runtime's pipeline fallback (name = task)

    @property
    def training(self) -> TrainingSupport:
        default = self.methods[0] if len(self.methods) == 1 else None
        reason = self.training_reason or ("" if self.trainer else NOT_YET.format(family=self.name))
        return TrainingSupport(
            self.name, self.trainer, self.methods, default, self.training_data, reason
        )


def _handler(module: str, cls: str) -> tuple[str, str]:
    return (f"llm_runtime.handlers.{module}", cls)


INFO_ONLY = SmokeRequest()  # loads the model and answers GET /info (no input to send)
GENERATE = SmokeRequest("/generate", MappingProxyType({"prompt": "Hello", "max_tokens": 5}))
GREEDY = SmokeRequest(
    "/generate", MappingProxyType({"prompt": "Hello", "max_tokens": 5, "temperature": 0})
)
CLASSIFY_TEXT = SmokeRequest("/generate", MappingProxyType({"inputs": "hello world"}))
CHAT_DATA = "chat, instruction or plain text"
SENTENCE_PAIRS = (
    '{"anchor": ..., "positive": ...[, "negative": ...]} pairs (MultipleNegativesRankingLoss) '
    'or {"sentence1": ..., "sentence2": ..., "score": 0..1} (CoSENTLoss)'
)
WHOLE_MODEL = (
    "{what} trains as a whole with transformers' {trainer} (LoRA adapters are served for causal "
    "LMs only); the model lands in finetuned/"
)
NOT_YET = (
    "{family} models need a trainer of their own, which train.sh does not have (it trains "
    "causal language models with LoRA/QLoRA/full, image-text-to-text models, "
    "sentence-transformers embedding models, seq2seq models and text classifiers)"
)

_ROWS = (
    FamilySpec(
        TEXT_GENERATION,
        _handler("text_generation", "TextGenerationHandler"),
        GREEDY,
        engines=(TRANSFORMERS, VLLM),
        engine_handlers=MappingProxyType(
            {VLLM: ("llm_runtime.engines.vllm_handler", "VllmTextHandler")}
        ),
        trainer="sft",
        methods=SFT_METHODS,
        training_data=CHAT_DATA,
    ),
    FamilySpec(
        EMBEDDING,
        _handler("embeddings", "EmbeddingHandler"),
        SmokeRequest(
            "/v1/embeddings",
            MappingProxyType({"input": ["hello world"], "encoding_format": "float"}),
        ),
        trainer="sentence-transformers",
        methods=("full",),
        training_data=SENTENCE_PAIRS,
        training_reason="an embedding model trains as a whole with sentence-transformers' own "
        "trainer (LoRA adapters are not served for embeddings); the model lands in finetuned/",
    ),
    FamilySpec(
        TEXT2TEXT,
        _handler("text2text", "Text2TextHandler"),
        GENERATE,
        trainer="seq2seq",
        methods=("full",),
        training_data='{"input": ..., "target": ...} pairs (or source/target, '
        "prompt/completion, question/answer, text/summary)",
        training_reason=WHOLE_MODEL.format(what="a seq2seq model", trainer="Seq2SeqTrainer"),
    ),
    FamilySpec(
        DIFFUSION,
        _handler("diffusion", "DiffusionHandler"),
        SmokeRequest(
            "/generate",
            MappingProxyType(
                {"prompt": "a test", "steps": 1, "width": 64, "height": 64, "seed": 0}
            ),
        ),
        training_reason="diffusion pipelines train with diffusers' own scripts (DreamBooth, "
        "LoRA), which train.sh does not run",
    ),
    FamilySpec(
        SPEECH_RECOGNITION,
        _handler("speech_recognition", "SpeechRecognitionHandler"),
        SmokeRequest("/generate", upload="audio"),
    ),
    FamilySpec(
        AUDIO_GENERATION,
        _handler("audio_generation", "AudioGenerationHandler"),
        SmokeRequest("/generate", MappingProxyType({"text": "hello"})),
    ),
    FamilySpec(
        IMAGE_CLASSIFICATION,
        _handler("image_classification", "ImageClassificationHandler"),
        INFO_ONLY,
    ),
    FamilySpec(OBJECT_DETECTION, _handler("object_detection", "ObjectDetectionHandler"), INFO_ONLY),
    FamilySpec(
        IMAGE_SEGMENTATION, _handler("image_segmentation", "ImageSegmentationHandler"), INFO_ONLY
    ),
    FamilySpec(
        ZERO_SHOT_IMAGE,
        _handler("zero_shot_image", "ZeroShotImageClassificationHandler"),
        INFO_ONLY,
    ),
    FamilySpec(
        IMAGE_TEXT_TO_TEXT,
        _handler("image_text_to_text", "ImageTextToTextHandler"),
        GENERATE,
        trainer="sft",
        methods=SFT_METHODS,
        training_data="image+caption or image+question+answer",
    ),
    FamilySpec(
        FEATURE_EXTRACTION, _handler("feature_extraction", "FeatureExtractionHandler"), INFO_ONLY
    ),
    FamilySpec(
        STATE_SPACE,
        _handler("state_space", "StateSpaceHandler"),
        GREEDY,
        trainer="sft",
        methods=SFT_METHODS,
        training_data=CHAT_DATA,
    ),
    FamilySpec(
        GGUF,
        _handler("gguf", "GgufHandler"),
        GREEDY,
        engines=(LLAMA_CPP,),
        training_reason="GGUF weights are quantized for llama.cpp and cannot be trained; install "
        "and train the original transformers repo, then convert",
    ),
    FamilySpec(
        PEFT_ADAPTER,
        None,
        served_on="an adapter is checked, installed and served on its base model",
        training_reason="this folder is an adapter, not a model; install its base model and "
        "train that (train.sh writes a new adapter to lora/)",
    ),
    FamilySpec(
        TEXT_CLASSIFICATION,
        PIPELINE_FALLBACK,
        CLASSIFY_TEXT,
        trainer="sequence-classification",
        methods=("full",),
        training_data='{"text": ..., "label": ...} records, labels from the model\'s own '
        "(names or ids)",
        training_reason=WHOLE_MODEL.format(what="a text classifier", trainer="Trainer"),
        pipeline_task=True,
    ),
    FamilySpec(TOKEN_CLASSIFICATION, PIPELINE_FALLBACK, CLASSIFY_TEXT, pipeline_task=True),
    *(
        FamilySpec(task, PIPELINE_FALLBACK, INFO_ONLY, pipeline_task=True)
        for task in (
            AUDIO_CLASSIFICATION,
            VIDEO_CLASSIFICATION,
            DEPTH_ESTIMATION,
            KEYPOINT_MATCHING,
        )
    ),
)
FAMILIES: Mapping[str, FamilySpec] = MappingProxyType({row.name: row for row in _ROWS})

# The host's detectors, in the order they are tried (most specific first; a family may have
# more than one): (family, "module:Class" under llm_installer.check.families). Pipeline tasks last.
DETECTORS: tuple[tuple[str, str], ...] = (
    (GGUF, "gguf:GgufFamily"),
    (PEFT_ADAPTER, "peft_adapter:PeftAdapterFamily"),
    (DIFFUSION, "diffusion:DiffusionFamily"),
    (EMBEDDING, "embedding:SentenceTransformersFamily"),
    (IMAGE_CLASSIFICATION, "image_classification:TimmImageClassificationFamily"),
    (IMAGE_TEXT_TO_TEXT, "image_text_to_text:ImageTextToTextFamily"),
    (STATE_SPACE, "state_space:StateSpaceFamily"),
    (SPEECH_RECOGNITION, "speech_recognition:SpeechRecognitionFamily"),
    (AUDIO_GENERATION, "audio_generation:AudioGenerationFamily"),
    (TEXT2TEXT, "text2text:Text2TextFamily"),
    (ZERO_SHOT_IMAGE, "zero_shot_image:ZeroShotImageFamily"),
    (IMAGE_CLASSIFICATION, "image_classification:ImageClassificationFamily"),
    (OBJECT_DETECTION, "object_detection:ObjectDetectionFamily"),
    (IMAGE_SEGMENTATION, "image_segmentation:ImageSegmentationFamily"),
    (TEXT_GENERATION, "text_generation:TextGenerationFamily"),
    (FEATURE_EXTRACTION, "feature_extraction:FeatureExtractionFamily"),
    (EMBEDDING, "embedding:TextEncoderFamily"),
)
PIPELINE_DETECTOR = "pipeline_task:PipelineTaskFamily"  # its families are the pipeline tasks


def family_spec(name: str) -> FamilySpec | None:
    """The table's row for ``name``, or None for a family the contract does not know."""
    return FAMILIES.get(name)


def default_engine(family: str | None) -> str:
    """The engine a family runs on when vLLM does not serve it: transformers where the table
    lists it (and for unknown families), else the family's own (GGUF → llama.cpp)."""
    spec = family_spec(family) if family else None
    if spec is None or TRANSFORMERS in spec.engines or not spec.engines:
        return TRANSFORMERS
    return spec.engines[0]


def handled_families() -> dict[str, tuple[str, str]]:
    """Family → (module, class) of its own runtime handler (pipeline tasks excluded)."""
    return {
        row.name: row.handler for row in _ROWS if row.handler is not None and not row.pipeline_task
    }


def pipeline_tasks() -> tuple[str, ...]:
    """The pipeline-task families the host detects (the runtime's fallback serves them)."""
    return tuple(row.name for row in _ROWS if row.pipeline_task)


def engine_handlers() -> dict[tuple[str, str], tuple[str, str]]:
    """(family, engine) → (module, class) for families served by an engine of their own."""
    return {
        (row.name, engine): target
        for row in _ROWS
        for engine, target in row.engine_handlers.items()
    }


def families_on(engine: str) -> frozenset[str]:
    """The families an engine serves."""
    return frozenset(row.name for row in _ROWS if engine in row.engines)


def trainable_families() -> tuple[str, ...]:
    return tuple(row.name for row in _ROWS if row.trainer)


def training_support(family: str) -> TrainingSupport:
    """The family's training row; families the table lacks are refused with the reason."""
    row = FAMILIES.get(family)
    if row is None:
        return TrainingSupport(family, None, reason=NOT_YET.format(family=family))
    return row.training


def refusal_reason(family: str) -> str | None:
    """Why install cannot serve ``family``, or None when an image can."""
    row = FAMILIES.get(family)
    if row is None:
        return f"the runtime has no handler for the {family!r} family"
    if row.handler is None and row.served_on is None:
        return f"the runtime has no handler for the {family!r} family"
    return None
