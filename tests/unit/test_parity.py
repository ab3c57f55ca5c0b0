"""The host↔image contract on families: every family check detects is one an image serves, or
one install refuses (before any download) with a reason; no handler serves a family the host
never writes."""

from __future__ import annotations

import pytest

from llm_installer.families import supported_families
from llm_installer.serving import NOT_SERVED, SERVED_ON_BASE, refusal_reason, served_families
from llm_runtime.handlers import FAMILIES, handler_class


@pytest.mark.parametrize("family", supported_families())
def test_every_detected_family_is_served_or_refused_with_a_reason(family):
    served = family in served_families()
    ways = [served, family in SERVED_ON_BASE, family in NOT_SERVED]
    assert ways.count(True) == 1, (
        f"{family!r}: add a runtime handler (llm_runtime.handlers.FAMILIES), or say in "
        "llm_installer.serving how it is served on a base (SERVED_ON_BASE) or why install "
        "refuses it (NOT_SERVED) — exactly one of them"
    )
    reason = refusal_reason(family)
    assert (reason is None) == (family not in NOT_SERVED)
    assert reason is None or len(reason) > 30


def test_no_stale_refusals_and_no_orphan_handlers():
    for table in (NOT_SERVED, SERVED_ON_BASE):
        assert not set(table) - set(supported_families()), "an entry for an unknown family"
    assert set(FAMILIES) <= set(supported_families()), "a handler for a family check never writes"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_registered_handler_imports_and_names_its_family(family):
    handler = handler_class(family)
    assert handler.family == family
    assert "POST /generate" in handler.served_endpoints()


def test_an_unknown_family_gets_a_generic_reason():
    assert "no handler" in refusal_reason("brand-new-family")
