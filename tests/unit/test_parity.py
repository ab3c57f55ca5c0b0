"""The host↔image contract on families: every family check detects is one an image serves, or
one install refuses (before any download) with a reason; no handler serves a family the host
never writes. Both registries derive from llm_runtime.contract, checked here against it."""

from __future__ import annotations

import json

import pytest

from llm_installer.check.families import DETECTORS, supported_families
from llm_installer.check.families._table import PIPELINE_TASK_MARKERS
from llm_installer.check.serving import NOT_SERVED, SERVED_ON_BASE, refusal_reason, served_families
from llm_runtime import contract
from llm_runtime.handlers import ENGINE_HANDLERS, FAMILIES, handler_class
from llm_runtime.training.families import FamilyNotTrainable, require_trainable


@pytest.mark.parametrize("family", supported_families())
def test_every_detected_family_is_served_or_refused_with_a_reason(family):
    served = family in served_families()
    ways = [served, family in SERVED_ON_BASE, family in NOT_SERVED]
    assert ways.count(True) == 1, (
        f"{family!r}: give it a runtime handler in llm_runtime.contract, or say there how it is "
        "served on a base (served_on) — else install refuses it (NOT_SERVED): exactly one"
    )
    reason = refusal_reason(family)
    assert (reason is None) == (family not in NOT_SERVED)
    assert reason is None or len(reason) > 30


@pytest.mark.parametrize("family", supported_families())
def test_every_detected_family_has_a_row_and_every_installable_one_a_smoke_request(family):
    spec = contract.family_spec(family)
    assert spec is not None, f"{family!r} is detected but has no row in llm_runtime.contract"
    if refusal_reason(family) is None and spec.served_on is None:
        assert spec.smoke is not None, (
            f"{family!r} installs but names no smoke request in llm_runtime.contract "
            "(contract.INFO_ONLY when it takes no input to send)"
        )
        assert spec.smoke.path in ("/info", "/generate", "/v1/embeddings"), spec.smoke
        assert spec.engines, f"{family!r}: no engine serves it"


def test_detectors_and_pipeline_tasks_are_the_contracts_own():
    assert DETECTORS is contract.DETECTORS
    assert set(PIPELINE_TASK_MARKERS) == set(contract.pipeline_tasks())
    assert set(supported_families()) == set(contract.FAMILIES), (
        "a row no detector writes, or a detected family without a row"
    )


def test_no_stale_refusals_and_no_orphan_handlers():
    for table in (NOT_SERVED, SERVED_ON_BASE):
        assert not set(table) - set(supported_families()), "an entry for an unknown family"
    assert set(FAMILIES) <= set(supported_families()), "a handler for a family check never writes"
    for family, engine in ENGINE_HANDLERS:
        assert engine in contract.family_spec(family).engines


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_registered_handler_imports_and_names_its_family(family):
    handler = handler_class(family)
    assert handler.family == family
    assert "POST /generate" in handler.served_endpoints()


@pytest.mark.parametrize("family", contract.pipeline_tasks())
def test_every_pipeline_task_the_host_detects_reaches_the_fallback(family):
    handler = handler_class(family)
    assert (handler.__module__, handler.__name__) == contract.PIPELINE_FALLBACK


@pytest.mark.parametrize(("family", "engine"), sorted(ENGINE_HANDLERS))
def test_every_engine_handler_imports(family, engine):
    assert handler_class(family, engine).family == family


def test_an_unknown_family_gets_a_generic_reason():
    assert "no handler" in refusal_reason("brand-new-family")


@pytest.mark.parametrize("family", supported_families())
def test_check_and_the_trainer_say_the_same(family):
    """check's training table and train.sh's refusal come from the same row."""
    from llm_installer.check.profile import _training_note, _training_support

    support = contract.training_support(family)
    shown = _training_support(family)
    assert shown["trainable"] == support.trainable
    for method in contract.SFT_METHODS:
        allowed = _training_note(support, method, ()) is None
        if allowed:
            assert require_trainable(family, method).trainer == support.trainer
        else:
            with pytest.raises(FamilyNotTrainable):
                require_trainable(family, method)


def test_an_embedding_model_shows_no_plain_lora():
    from llm_installer.check.profile import _training_note

    support = contract.training_support(contract.EMBEDDING)
    assert _training_note(support, "lora", ()) == "full fine-tune only"
    assert not contract.training_support(contract.GGUF).trainable


def test_the_table_is_json_data_and_imports_nothing_heavy():
    import subprocess
    import sys

    code = (
        "import sys, llm_runtime.contract as c; "
        "print(sorted(m for m in ('torch','transformers','llm_installer','fastapi') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.replace("'", '"')) == []
    for row in contract.FAMILIES.values():
        json.dumps(dict(row.smoke.body) if row.smoke else None)
