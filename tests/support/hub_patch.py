"""Pointing an already-imported ``huggingface_hub`` (and ``datasets``) at the test Hub."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# --------------------------------------------------------------------------------------------------
# huggingface_hub wiring
# --------------------------------------------------------------------------------------------------


def patch_huggingface_hub(monkeypatch: Any, endpoint: str, hf_home: str | os.PathLike[str]) -> None:
    """Point an already-imported ``huggingface_hub`` at ``endpoint`` with its cache in ``hf_home``.

    ``huggingface_hub`` reads ``HF_ENDPOINT``, ``HF_HOME``, ``HF_HUB_OFFLINE``... once, at import time, into
    ``huggingface_hub.constants`` (and derived values such as ``HUGGINGFACE_CO_URL_TEMPLATE``, the cache
    paths, the token path, the module-level ``HfApi`` behind ``huggingface_hub.model_info``); a few modules
    copy some of them with ``from ..constants import X``. Setting the environment variables alone therefore
    only works for child processes, so this also ``monkeypatch.setattr``-s those copies (undone at the end
    of the test). Any module attribute named ``ENDPOINT``/``HF_ENDPOINT``/``HUGGINGFACE_CO_RESOLVE_ENDPOINT``
    that still holds the old endpoint (e.g. in the project's own modules) is patched as well.
    """
    from huggingface_hub import constants

    endpoint = endpoint.rstrip("/")
    home = str(hf_home)
    hub_cache = os.path.join(home, "hub")
    old_endpoint = constants.ENDPOINT
    values: dict[str, Any] = {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": home,
        "HF_HUB_CACHE": hub_cache,
        "HUGGINGFACE_HUB_CACHE": hub_cache,
        "HF_ASSETS_CACHE": os.path.join(home, "assets"),
        "HUGGINGFACE_ASSETS_CACHE": os.path.join(home, "assets"),
        "HF_XET_CACHE": os.path.join(home, "xet"),
        "HF_TOKEN_PATH": os.path.join(home, "token"),
        "HF_STORED_TOKENS_PATH": os.path.join(home, "stored_tokens"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_TELEMETRY": True,
    }
    host = urlsplit(endpoint).hostname
    if hasattr(constants, "HF_URL_HOSTS") and host:
        values["HF_URL_HOSTS"] = frozenset(constants.HF_URL_HOSTS | {host})
    _setattrs(monkeypatch, constants, values)

    import huggingface_hub.utils._http as http_mod

    if hasattr(http_mod, "_HUB_ORIGINS") and hasattr(http_mod, "_url_origin"):
        origins = frozenset(http_mod._HUB_ORIGINS | {http_mod._url_origin(endpoint)})
        monkeypatch.setattr(http_mod, "_HUB_ORIGINS", origins)
    hf_api = sys.modules.get("huggingface_hub.hf_api")
    if hf_api is not None and hasattr(hf_api, "api"):
        monkeypatch.setattr(hf_api.api, "endpoint", endpoint)
    for module_name, attrs in {
        "huggingface_hub.utils._cache_manager": {"HF_HUB_CACHE": hub_cache},
        "huggingface_hub.utils._git_credential": {"ENDPOINT": endpoint},
    }.items():
        if module_name in sys.modules:
            _setattrs(monkeypatch, sys.modules[module_name], attrs)

    # Any other import-time copy of the endpoint, e.g. `from huggingface_hub.constants import ENDPOINT`.
    names = ("ENDPOINT", "HF_ENDPOINT", "HUGGINGFACE_CO_RESOLVE_ENDPOINT")
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if module is constants or not isinstance(namespace, dict):
            continue
        for attr in names:
            if namespace.get(attr) == old_endpoint:
                monkeypatch.setattr(module, attr, endpoint)


def patch_datasets(monkeypatch: Any, endpoint: str, hf_home: str | os.PathLike[str]) -> None:
    """Point ``datasets`` at ``endpoint``, online, its cache in ``hf_home/datasets`` (with
    :func:`patch_huggingface_hub`, which it leans on for the Hub client itself).

    Like ``huggingface_hub``, ``datasets.config`` copies ``HF_ENDPOINT``, the cache paths and the offline
    switch when first imported, which may have happened earlier in the session with ``HF_HUB_OFFLINE=1``;
    importing it here, before patching, also keeps the session's ``datasets`` from being left pointed at
    this test's server and cache once ``monkeypatch`` undoes the rest.
    """
    from datasets import config
    from huggingface_hub import HfFileSystem

    endpoint = endpoint.rstrip("/")
    cache = Path(hf_home) / "datasets"
    downloads = cache / config.DOWNLOADED_DATASETS_DIR
    _setattrs(
        monkeypatch,
        config,
        {
            "HF_ENDPOINT": endpoint,
            "HUB_DATASETS_URL": endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}",
            "HF_CACHE_HOME": str(hf_home),
            "HF_DATASETS_CACHE": cache,
            "HF_MODULES_CACHE": Path(hf_home) / "modules",
            "DOWNLOADED_DATASETS_PATH": downloads,
            "EXTRACTED_DATASETS_PATH": downloads / config.EXTRACTED_DATASETS_DIR,
            "HF_HUB_OFFLINE": False,
            "HF_DATASETS_OFFLINE": False,
        },
    )
    HfFileSystem.clear_instance_cache()  # a cached filesystem keeps listings of an earlier test


def _setattrs(monkeypatch: Any, target: Any, values: Mapping[str, Any]) -> None:
    for name, value in values.items():
        if hasattr(target, name):
            monkeypatch.setattr(target, name, value)
