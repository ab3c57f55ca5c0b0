"""The local Hub server (tests/support/) driven by the real huggingface_hub client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import (
    HfApi,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import get_session
from safetensors.numpy import save as st_save
from support.hub_files import (
    GATED_REPO,
    HUB_TOKEN,
    PRIVATE_REPO,
    REALCONFIGS_DIR,
    safetensors_placeholder,
)
from support.hub_server import HubServer

LLAMA = "meta-llama/Llama-3.2-3B-Instruct"
LLAMA_DIR = REALCONFIGS_DIR / "meta-llama__Llama-3.2-3B-Instruct"

pytestmark = pytest.mark.skipif(not LLAMA_DIR.is_dir(), reason="shared realconfigs not available")


def _listing(folder: Path) -> dict[str, dict]:
    return {e["path"]: e for e in json.loads((folder / "files.json").read_text())}


# -- metadata -----------------------------------------------------------------------------------


def test_model_info_files_metadata_matches_files_json(hub_env: HubServer) -> None:
    listing = _listing(LLAMA_DIR)
    info = HfApi().model_info(LLAMA, files_metadata=True)

    assert info.id == LLAMA
    assert info.sha and len(info.sha) == 40
    assert info.library_name == "transformers"  # from the README's front matter
    assert info.private is False and info.gated is False
    siblings = {s.rfilename: s for s in info.siblings}
    assert set(siblings) == set(listing)
    for path, entry in listing.items():
        assert siblings[path].size == (entry["size"] or 0), path
        if "lfs" in entry:
            assert siblings[path].lfs is not None
            assert siblings[path].lfs.sha256 == entry["lfs"]["sha256"]
        else:
            assert siblings[path].lfs is None
    assert "meta.json" not in siblings and "files.json" not in siblings

    # Like the Hub: without blobs=True, siblings carry names only; model_info by commit sha works too.
    plain = HfApi().model_info(LLAMA, revision=info.sha)
    assert plain.sha == info.sha
    assert {s.rfilename for s in plain.siblings} == set(listing)
    assert all(s.size is None for s in plain.siblings)
    # Nothing was downloaded: no /resolve traffic at all.
    assert hub_env.total_bytes_served() == 0


def test_model_info_safetensors_and_tags(hub_env: HubServer) -> None:
    hub_env.add_repo(
        "test-org/with-params",
        {"config.json": b"{}", "model.safetensors": 2_000},
        tags=("text-generation", "custom"),
        pipeline_tag="text-generation",
        library_name="transformers",
        safetensors_params={"BF16": 1000, "F32": 24},
        gated="auto",
    )
    info = HfApi().model_info("test-org/with-params")
    assert info.safetensors is not None
    assert info.safetensors.parameters == {"BF16": 1000, "F32": 24}
    assert info.safetensors.total == 1024
    assert info.tags == ["text-generation", "custom"]
    assert info.pipeline_tag == "text-generation"
    assert info.gated == "auto"


def test_list_repo_tree_recursive_and_subfolder(hub_env: HubServer) -> None:
    api = HfApi()
    listing = _listing(LLAMA_DIR)
    entries = list(api.list_repo_tree(LLAMA, recursive=True))
    files = {e.path: e for e in entries if hasattr(e, "size")}
    folders = {e.path for e in entries if not hasattr(e, "size")}
    assert set(files) == set(listing)
    assert folders == {"original"}
    weight = files["model-00001-of-00002.safetensors"]
    assert weight.size == listing["model-00001-of-00002.safetensors"]["size"]
    assert weight.lfs is not None
    assert weight.lfs.sha256 == listing["model-00001-of-00002.safetensors"]["lfs"]["sha256"]

    top = {e.path for e in api.list_repo_tree(LLAMA)}
    assert "original" in top and "original/params.json" not in top
    sub = {e.path for e in api.list_repo_tree(LLAMA, path_in_repo="original")}
    assert sub == {p for p in listing if p.startswith("original/")}

    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree(LLAMA, path_in_repo="no-such-folder"))


def test_list_repo_tree_pagination(hub_env: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_env, "tree_page_size", 4)
    repo = "stabilityai/stable-diffusion-xl-base-1.0"
    listing = _listing(REALCONFIGS_DIR / "stabilityai__stable-diffusion-xl-base-1.0")
    entries = list(HfApi().list_repo_tree(repo, recursive=True))
    assert {e.path for e in entries if hasattr(e, "size")} == set(listing)
    assert len(hub_env.requests_for(repo)) > 10  # followed the Link headers


def test_get_paths_info(hub_env: HubServer) -> None:
    infos = HfApi().get_paths_info(
        LLAMA, ["config.json", "original", "model-00002-of-00002.safetensors", "missing.bin"]
    )
    by_path = {i.path: i for i in infos}
    assert set(by_path) == {"config.json", "original", "model-00002-of-00002.safetensors"}
    assert by_path["config.json"].size == (LLAMA_DIR / "config.json").stat().st_size
    assert by_path["model-00002-of-00002.safetensors"].size == 1459729952
    assert by_path["model-00002-of-00002.safetensors"].lfs is not None
    assert not hasattr(by_path["original"], "size")


def test_list_repo_refs_and_revisions(hub_env: HubServer) -> None:
    main_sha = hub_env.add_repo(
        "test-org/branches",
        {"config.json": b'{"v": 1}'},
        revisions={"v2": {"config.json": b'{"v": 2}', "extra.txt": b"x"}},
    )
    api = HfApi()
    refs = api.list_repo_refs("test-org/branches")
    branches = {b.name: b.target_commit for b in refs.branches}
    assert branches["main"] == main_sha and set(branches) == {"main", "v2"}
    assert api.model_info("test-org/branches", revision="v2").sha == branches["v2"]
    path = hf_hub_download("test-org/branches", "config.json", revision="v2")
    assert json.loads(Path(path).read_text()) == {"v": 2}
    assert api.file_exists("test-org/branches", "extra.txt", revision="v2")
    assert not api.file_exists("test-org/branches", "extra.txt")


# -- downloads ----------------------------------------------------------------------------------


def test_hf_hub_download_config_and_counters(hub_env: HubServer) -> None:
    path = hf_hub_download(LLAMA, "config.json")
    expected = (LLAMA_DIR / "config.json").read_bytes()
    assert Path(path).read_bytes() == expected
    assert Path(path).is_relative_to(Path(os.environ["HF_HOME"]))
    assert hub_env.bytes_for(LLAMA, "config.json") == len(expected)
    assert hub_env.total_bytes_served() == len(expected)
    methods = [r.method for r in hub_env.requests_for(LLAMA, file="config.json")]
    assert methods == ["HEAD", "GET"]

    # A second call hits the cache after a HEAD: no more body bytes.
    hf_hub_download(LLAMA, "config.json")
    assert hub_env.bytes_for(LLAMA, "config.json") == len(expected)

    hub_env.reset_counters()
    assert hub_env.total_bytes_served() == 0 and hub_env.requests == []


def test_placeholders_have_listed_size_and_serve_ranges(hub_env: HubServer) -> None:
    listing = _listing(LLAMA_DIR)
    size = listing["original/consolidated.00.pth"]["size"]
    url = hf_hub_url(LLAMA, "original/consolidated.00.pth")
    meta = get_hf_file_metadata(url)
    assert meta.size == size
    assert meta.etag == listing["original/consolidated.00.pth"]["lfs"]["sha256"]
    assert meta.commit_hash == HfApi().model_info(LLAMA).sha

    session = get_session()
    tail = session.get(url, headers={"Range": "bytes=-16"})
    assert tail.status_code == 206
    assert tail.headers["Content-Range"] == f"bytes {size - 16}-{size - 1}/{size}"
    assert tail.content == bytes(16)
    # HEAD transfers nothing: only the 16 bytes of the Range were served out of ~6.4 GB.
    assert hub_env.bytes_for(LLAMA, "original/consolidated.00.pth") == 16


def test_range_requests(hub_env: HubServer) -> None:
    data = bytes(range(256)) * 4
    hub_env.add_repo("test-org/ranges", {"blob.bin": data})
    url = hf_hub_url("test-org/ranges", "blob.bin")
    session = get_session()

    r = session.get(url, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert r.headers["Accept-Ranges"] == "bytes"
    r = session.get(url, headers={"Range": "bytes=1000-"})
    assert r.status_code == 206 and r.content == data[1000:]
    r = session.get(url, headers={"Range": "bytes=-5"})
    assert r.status_code == 206 and r.content == data[-5:]
    r = session.get(url, headers={"Range": "bytes=0-100000"})  # past the end: clamped
    assert r.status_code == 206 and r.content == data
    r = session.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert r.status_code == 416
    assert r.headers["Content-Range"] == f"bytes */{len(data)}"
    r = session.get(url)
    assert r.status_code == 200 and r.content == data
    assert r.headers["X-Repo-Commit"]
    assert hub_env.bytes_for("test-org/ranges", "blob.bin") == 10 + 24 + 5 + len(data) + len(data)
    assert [rec.range for rec in hub_env.requests_for("test-org/ranges")][:2] == [
        "bytes=10-19",
        "bytes=1000-",
    ]


def test_get_safetensors_metadata_single_file(hub_env: HubServer) -> None:
    tensors = {
        "model.embed_tokens.weight": np.zeros((16, 8), dtype=np.float16),
        "model.norm.weight": np.ones((8,), dtype=np.float32),
    }
    blob = st_save(tensors, metadata={"format": "pt"})
    hub_env.add_repo("test-org/tiny-st", {"config.json": b"{}", "model.safetensors": blob})

    meta = HfApi().get_safetensors_metadata("test-org/tiny-st")
    assert not meta.sharded
    assert meta.parameter_count == {"F16": 128, "F32": 8}
    file_meta = meta.files_metadata["model.safetensors"]
    assert file_meta.metadata == {"format": "pt"}
    assert file_meta.tensors["model.embed_tokens.weight"].shape == [16, 8]
    ranges = [r.range for r in hub_env.requests_for("test-org/tiny-st", method="GET")]
    assert "bytes=0-100000" in ranges


def test_get_safetensors_metadata_sharded_placeholders(hub_env: HubServer) -> None:
    """Shards of "huge" weights whose headers are real: read with Range, weights never sent."""
    shard1 = safetensors_placeholder({"a.weight": ("BF16", (8192, 8192))})
    shard2 = safetensors_placeholder({"b.weight": ("BF16", (8192, 4096)), "c": ("F32", (10,))})
    index = {
        "metadata": {"total_size": shard1.size + shard2.size},
        "weight_map": {
            "a.weight": "model-00001-of-00002.safetensors",
            "b.weight": "model-00002-of-00002.safetensors",
            "c": "model-00002-of-00002.safetensors",
        },
    }
    hub_env.add_repo(
        "test-org/sharded",
        {
            "config.json": b"{}",
            "model.safetensors.index.json": json.dumps(index).encode(),
            "model-00001-of-00002.safetensors": shard1,
            "model-00002-of-00002.safetensors": shard2,
        },
    )
    meta = HfApi().get_safetensors_metadata("test-org/sharded")
    assert meta.sharded
    assert meta.parameter_count == {"BF16": 8192 * 8192 + 8192 * 4096, "F32": 10}
    siblings = HfApi().model_info("test-org/sharded", files_metadata=True).siblings
    assert {s.rfilename: s.size for s in siblings}[
        "model-00001-of-00002.safetensors"
    ] == shard1.size
    assert shard1.size > 100e6
    served = hub_env.total_bytes_served("test-org/sharded")
    assert served < 300_000  # headers (and the index), not 200 MB of weights


def test_snapshot_download_allow_patterns_from_folder(hub_env: HubServer, tmp_path: Path) -> None:
    folder = tmp_path / "tiny"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "tokenizer_config.json").write_text("{}")
    (folder / "sub" / "extra.json").write_text("[]")
    (folder / "model.safetensors").write_bytes(st_save({"w": np.ones((4, 4), dtype=np.float32)}))
    (folder / "pytorch_model.bin").write_bytes(b"\0" * 5000)
    hub_env.add_folder("test-org/tiny-folder", folder)

    local = snapshot_download("test-org/tiny-folder", allow_patterns=["*.json", "*.safetensors"])
    got = sorted(p.relative_to(local).as_posix() for p in Path(local).rglob("*") if p.is_file())
    assert got == ["config.json", "model.safetensors", "sub/extra.json", "tokenizer_config.json"]
    assert (Path(local) / "model.safetensors").read_bytes() == (
        folder / "model.safetensors"
    ).read_bytes()
    assert hub_env.bytes_for("test-org/tiny-folder", "pytorch_model.bin") == 0
    expected = sum((folder / p).stat().st_size for p in got)
    assert hub_env.total_bytes_served("test-org/tiny-folder") == expected

    local_dir = tmp_path / "out"
    snapshot_download("test-org/tiny-folder", allow_patterns="config.json", local_dir=local_dir)
    assert (local_dir / "config.json").read_text() == '{"model_type": "llama"}'


# -- dataset repos ------------------------------------------------------------------------------

TINY_SET = "test-org/tiny-set"
TRAIN_JSONL = '{"question": "q1", "answer": "a1"}\n{"question": "q2", "answer": "a2"}\n'


def test_dataset_repo_info_listing_and_download(hub_env: HubServer) -> None:
    """A dataset repo answers under api/datasets and /datasets/.../resolve, apart from a model repo
    of the same id."""
    from huggingface_hub import HfFileSystem

    sha = hub_env.add_dataset(
        TINY_SET, {"data/train.jsonl": TRAIN_JSONL, "data/test.jsonl": TRAIN_JSONL[:35]}
    )
    hub_env.add_repo(TINY_SET, {"config.json": b"{}"})
    api = HfApi()
    info = api.dataset_info(TINY_SET, files_metadata=True)
    assert (info.id, info.sha, info.private) == (TINY_SET, sha, False)
    assert {s.rfilename: s.size for s in info.siblings} == {
        "data/test.jsonl": 35,
        "data/train.jsonl": len(TRAIN_JSONL),
    }
    assert [s.rfilename for s in api.model_info(TINY_SET).siblings] == ["config.json"]
    tree = api.list_repo_tree(TINY_SET, "data", repo_type="dataset", revision=sha)
    assert sorted(e.path for e in tree) == ["data/test.jsonl", "data/train.jsonl"]
    [entry] = api.get_paths_info(TINY_SET, ["data/train.jsonl", "nope"], repo_type="dataset")
    assert entry.size == len(TRAIN_JSONL)
    path = hf_hub_download(TINY_SET, "data/train.jsonl", repo_type="dataset")
    assert Path(path).read_text() == TRAIN_JSONL
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(TINY_SET, "config.json", repo_type="dataset")
    fs = HfFileSystem(skip_instance_cache=True)
    assert fs.ls(f"datasets/{TINY_SET}/data", detail=False) == [
        f"datasets/{TINY_SET}/data/test.jsonl",
        f"datasets/{TINY_SET}/data/train.jsonl",
    ]
    assert hub_env.bytes_for(TINY_SET, "data/train.jsonl") == len(TRAIN_JSONL)
    assert {r.repo_type for r in hub_env.requests_for(TINY_SET)} == {"dataset", "model"}


def test_private_gated_and_unknown_dataset_repos(hub_env: HubServer) -> None:
    api = HfApi()
    hub_env.add_dataset("test-org/private-set", {"data/train.jsonl": TRAIN_JSONL}, private=True)
    hub_env.add_dataset("test-org/gated-set", {"data/train.jsonl": TRAIN_JSONL}, gated=True)
    with pytest.raises(RepositoryNotFoundError) as excinfo:
        api.dataset_info("test-org/private-set")
    assert excinfo.value.response.status_code == 401
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("test-org/private-set", "data/train.jsonl", repo_type="dataset")
    assert api.dataset_info("test-org/private-set", token=HUB_TOKEN).private is True
    with pytest.raises(GatedRepoError, match="Access to dataset test-org/gated-set"):
        hf_hub_download("test-org/gated-set", "data/train.jsonl", repo_type="dataset")
    path = hf_hub_download(
        "test-org/gated-set", "data/train.jsonl", repo_type="dataset", token=HUB_TOKEN
    )
    assert Path(path).read_text() == TRAIN_JSONL
    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info(LLAMA)  # a model repo is not a dataset repo
    assert not api.repo_exists("nobody/no-such-set", repo_type="dataset")


# -- errors -------------------------------------------------------------------------------------


def test_private_repo_needs_token(hub_env: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    api = HfApi()
    with pytest.raises(RepositoryNotFoundError) as excinfo:
        api.model_info(PRIVATE_REPO)
    assert not isinstance(excinfo.value, GatedRepoError)
    assert excinfo.value.response.status_code == 401
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(PRIVATE_REPO, "config.json")
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download(PRIVATE_REPO)

    info = api.model_info(PRIVATE_REPO, token=HUB_TOKEN)
    assert info.private is True
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    config = json.loads(Path(hf_hub_download(PRIVATE_REPO, "config.json")).read_text())
    assert config["model_type"] == "llama"
    assert hub_env.requests_for(PRIVATE_REPO, method="GET")[-1].token == HUB_TOKEN


def test_gated_repo(hub_env: HubServer) -> None:
    api = HfApi()
    info = api.model_info(GATED_REPO, files_metadata=True)  # metadata stays public on the Hub
    assert info.gated == "manual"
    assert "config.json" in {s.rfilename for s in info.siblings}
    with pytest.raises(GatedRepoError) as excinfo:
        hf_hub_download(GATED_REPO, "config.json")
    assert excinfo.value.response.status_code == 401
    assert hub_env.bytes_for(GATED_REPO, "config.json") == 0

    path = hf_hub_download(GATED_REPO, "config.json", token=HUB_TOKEN)
    assert json.loads(Path(path).read_text())["architectures"] == ["LlamaForCausalLM"]

    hub_env.add_repo(
        "test-org/gated-no-access", {"config.json": b"{}"}, gated=True, access_tokens=()
    )
    with pytest.raises(GatedRepoError) as excinfo:
        hf_hub_download("test-org/gated-no-access", "config.json", token=HUB_TOKEN)
    assert excinfo.value.response.status_code == 403


def test_unknown_repo_revision_and_file(hub_env: HubServer) -> None:
    api = HfApi()
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("nobody/no-such-model")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("nobody/no-such-model", "config.json")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(LLAMA, revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(LLAMA, "config.json", revision="no-such-branch")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(LLAMA, "no-such-file.json")
    assert not api.file_exists(LLAMA, "no-such-file.json")
    assert api.file_exists(LLAMA, "config.json")
    assert not api.repo_exists("nobody/no-such-model")


def test_invalid_token_is_rejected(hub_env: HubServer) -> None:
    with pytest.raises(HfHubHTTPError) as excinfo:
        HfApi().model_info(LLAMA, token="hf_wrong")
    assert excinfo.value.response.status_code == 401
    assert not isinstance(excinfo.value, RepositoryNotFoundError)
    assert HfApi().whoami(token=HUB_TOKEN)["name"] == hub_env.user


def test_injected_error(hub_env: HubServer) -> None:
    hub_env.inject_error(r"^/api/models/test-org/private-model$", 503, times=1)
    with pytest.raises(HfHubHTTPError) as excinfo:
        HfApi().model_info(PRIVATE_REPO, token=HUB_TOKEN)
    assert excinfo.value.response.status_code == 503
    assert HfApi().model_info(PRIVATE_REPO, token=HUB_TOKEN).private


def test_child_process_uses_hf_endpoint(hub_env: HubServer) -> None:
    """The environment alone routes a fresh interpreter (e.g. the CLI run as a subprocess)."""
    code = (
        "import huggingface_hub as h;"
        f"print(h.model_info({LLAMA!r}).sha);"
        f"print(h.hf_hub_download({LLAMA!r}, 'generation_config.json'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    sha, path = out.stdout.split()
    assert sha == HfApi().model_info(LLAMA).sha
    assert Path(path).is_relative_to(Path(os.environ["HF_HOME"]))
    assert hub_env.bytes_for(LLAMA, "generation_config.json") == (
        (LLAMA_DIR / "generation_config.json").stat().st_size
    )


def test_transformers_in_process(hub_env: HubServer) -> None:
    """transformers (imported at any time) reaches the local Hub through the patched constants."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(LLAMA)
    assert config.model_type == "llama"
    config = AutoConfig.from_pretrained(PRIVATE_REPO, token=HUB_TOKEN)
    assert config.architectures == ["LlamaForCausalLM"]
    assert hub_env.bytes_for(PRIVATE_REPO, "config.json") > 0
