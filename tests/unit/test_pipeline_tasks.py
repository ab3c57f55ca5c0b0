"""Task heads with no family of their own (classifiers, QA, depth…): detected by structure on the
host, each one a family the runtime's pipeline fallback serves, and refused heads still exit 16."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_installer.check.families import detect_family, family_for, supported_families
from llm_installer.check.families._table import PIPELINE_TASK_MARKERS
from llm_installer.check.local_source import load_local_source
from llm_installer.errors import UnsupportedArchitectureError


def detect(tmp_path: Path, config: dict):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "config.json").write_text(json.dumps(config))
    (repo / "model.safetensors").write_bytes(b"")
    return detect_family(load_local_source(repo))


@pytest.mark.parametrize(
    ("arch", "model_type", "extra", "task"),
    [
        ("DistilBertForSequenceClassification", "distilbert", {}, "text-classification"),
        ("LlamaForSequenceClassification", "llama", {}, "text-classification"),
        ("BertForTokenClassification", "bert", {}, "token-classification"),
        ("DPTForDepthEstimation", "dpt", {"image_size": 384}, "depth-estimation"),
        ("ASTForAudioClassification", "audio-spectrogram-transformer", {}, "audio-classification"),
        (
            "Wav2Vec2ForSequenceClassification",
            "wav2vec2",
            {"conv_dim": [8]},
            "audio-classification",
        ),
    ],
)
def test_task_heads_are_detected(tmp_path, arch, model_type, extra, task):
    config = {"architectures": [arch], "model_type": model_type, **extra}
    detection, requirements = detect(tmp_path, config)
    assert (detection.family, detection.task, detection.library) == (task, task, "transformers")
    names = [r.package for r in requirements.architecture]
    assert ("librosa" in names) == (task == "audio-classification")


def test_classifier_labels_in_the_profile(tmp_path):
    config = {
        "architectures": ["DistilBertForSequenceClassification"],
        "model_type": "distilbert",
        "id2label": {"0": "NEGATIVE", "1": "POSITIVE", "10": "LAST"},
    }
    detection, _ = detect(tmp_path, config)
    assert detection.details["labels"] == ["NEGATIVE", "POSITIVE", "LAST"]
    assert detection.details["num_labels"] == 3


def test_a_head_without_a_pipeline_is_still_refused(tmp_path):
    with pytest.raises(UnsupportedArchitectureError) as found:
        detect(tmp_path, {"architectures": ["BertForMultipleChoice"], "model_type": "bert"})
    assert "text-classification" in str(found.value)  # the message lists the tasks too


def test_every_task_is_a_transformers_pipeline_the_runtime_serves():
    from transformers.pipelines import SUPPORTED_TASKS

    from llm_runtime.handlers import handler_class
    from llm_runtime.handlers.pipeline_task import PipelineTaskHandler

    for task in PIPELINE_TASK_MARKERS:
        assert task in SUPPORTED_TASKS, task
        assert handler_class(task) is PipelineTaskHandler
        assert task in supported_families()
        assert family_for(task).name == "pipeline-task"


def test_markers_match_transformers_own_task_classes():
    """Each marker names classes that transformers' pipeline for that task loads (no drift)."""
    from llm_runtime.detect import _pipeline_task_classes

    classes = _pipeline_task_classes()
    for task, markers in PIPELINE_TASK_MARKERS.items():
        known = classes.get(task, set())
        assert any(name.endswith(markers) for name in known), (task, sorted(known)[:5])
