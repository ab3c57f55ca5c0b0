"""Reading a Hub repository without its weights, through huggingface_hub only.

Inventory (files, sizes, tags, gated/private) from ``model_info``; configs through
``hf_hub_download``; safetensors headers through two HTTP Range requests per file.
``HF_ENDPOINT`` and ``HF_TOKEN`` are honoured by the client itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from huggingface_hub import HfApi, hf_hub_download, hf_hub_url
from huggingface_hub import errors as hub_errors
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from llm_installer import errors

try:  # huggingface_hub >= 1.x talks HTTP through httpx (vendored as httpx2 in recent releases)
    from httpx2 import TransportError
except ImportError:  # pragma: no cover
    from httpx import TransportError  # type: ignore[assignment]  # the same class, older home
from llm_installer.check.config_files import collect_configs
from llm_installer.check.safetensors_header import ReadRange, read_params
from llm_installer.check.source import ModelSource, RepoFile

log = logging.getLogger(__name__)
HEADER_WORKERS = 8


def load_hub_source(
    model_id: str,
    *,
    revision: str | None = None,
    token: str | None = None,
    cache_dir: Path | None = None,
) -> ModelSource:
    """Inventory, configs and safetensors parameter counts of a Hub repo; no weight bytes."""
    with hub_errors_as_messages(model_id, revision, token):
        info = HfApi().model_info(model_id, revision=revision, files_metadata=True, token=token)
        files = tuple(RepoFile(s.rfilename, s.size or 0) for s in info.siblings or [])
        sha = info.sha or revision or "main"

        def read_text(path: str) -> str:
            local = hf_hub_download(model_id, path, revision=sha, token=token, cache_dir=cache_dir)
            return Path(local).read_text(encoding="utf-8")

        configs, texts = collect_configs(files, read_text)
        hub_params = dict(info.safetensors.parameters) if info.safetensors else {}
        tensor_params = {} if hub_params else read_tensor_params(model_id, sha, files, token)
    return ModelSource(
        model_id=model_id,
        files=files,
        configs=configs,
        texts=texts,
        revision=revision,
        sha=info.sha,
        tags=tuple(info.tags or ()),
        pipeline_tag=info.pipeline_tag,
        library_name=info.library_name,
        private=bool(info.private),
        gated=info.gated or False,
        hub_params=hub_params,
        tensor_params=tensor_params,
    )


def read_tensor_params(
    model_id: str, sha: str, files: tuple[RepoFile, ...], token: str | None
) -> dict[str, dict[str, int]]:
    """Parameter counts by dtype for every .safetensors file, from its header alone."""
    targets = [f.path for f in files if f.path.endswith(".safetensors") and f.size >= 8]

    def count(path: str) -> tuple[str, dict[str, int] | None]:
        try:
            return path, read_params(_range_reader(model_id, sha, path, token))
        except (hub_errors.HfHubHTTPError, TransportError, OSError) as exc:
            log.info("could not read the safetensors header of %s: %s", path, exc)
            return path, None

    with ThreadPoolExecutor(max_workers=HEADER_WORKERS) as pool:
        results = list(pool.map(count, targets))
    return {path: params for path, params in results if params}


def _range_reader(model_id: str, sha: str, path: str, token: str | None) -> ReadRange:
    url = hf_hub_url(model_id, path, revision=sha)
    headers = build_hf_headers(token=token)

    def read_range(offset: int, length: int) -> bytes:
        response = get_session().get(
            url,
            headers={**headers, "Range": f"bytes={offset}-{offset + length - 1}"},
            follow_redirects=True,
        )
        hf_raise_for_status(response)
        if response.status_code != 206:  # a server that ignores Range would send the whole file
            raise OSError(f"{path}: the server did not honour the Range request")
        return response.content[:length]

    return read_range


@contextmanager
def hub_errors_as_messages(
    model_id: str, revision: str | None, token: str | None
) -> Iterator[None]:
    """Turn huggingface_hub's exceptions into the installer's own, with messages and hints."""
    try:
        yield
    except hub_errors.GatedRepoError as exc:
        raise errors.GatedModelError(
            f"{model_id} is a gated model: access must be requested"
        ) from exc
    except hub_errors.RepositoryNotFoundError as exc:
        raise _not_found(model_id, token, exc) from exc
    except hub_errors.RevisionNotFoundError as exc:
        raise errors.RevisionNotFoundError(
            f"Revision {revision!r} not found in {model_id}"
        ) from exc
    except hub_errors.OfflineModeIsEnabled as exc:
        raise errors.HubUnreachableError(
            f"HF_HUB_OFFLINE is set, so {model_id} cannot be read from the Hub",
            hint="Unset HF_HUB_OFFLINE, or check a local folder instead: llm-installer check ./path",
        ) from exc
    except hub_errors.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise errors.HubUnreachableError(
            f"The Hub answered HTTP {status} for {model_id}: {exc}"
        ) from exc
    except (TransportError, OSError) as exc:  # connection refused, DNS failure, timeouts
        raise errors.HubUnreachableError(f"Cannot reach the Hugging Face Hub: {exc}") from exc


def _not_found(
    model_id: str, token: str | None, exc: hub_errors.RepositoryNotFoundError
) -> errors.InstallerError:
    status = exc.response.status_code if exc.response is not None else None
    if status == 401 and not token:  # the Hub answers alike for private and missing repos
        return errors.PrivateModelError(
            f"This is a private model. Please set HF_TOKEN (or check the id: no public model {model_id} exists)"
        )
    return errors.ModelNotFoundError(f"Model not found on HuggingFace: {model_id}")
