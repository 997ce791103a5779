"""Test-wide settings: no display, and vadkit's cache kept out of the user's home directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

os.environ.setdefault("MPLBACKEND", "Agg")
# The real I3D weights are fetched once per checkout into an ignored folder of the repo (not the
# user's cache) unless the caller points VADKIT_HOME somewhere on purpose.
os.environ.setdefault("VADKIT_HOME", str(REPO / ".test-home"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"reference data not found at {SHARED} (it lives beside the checkout)")
    return SHARED


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a busy 2-core machine every
    parallel region waits for a second core (100× slower steps): modules that train tiny models
    use one thread (`pytestmark = pytest.mark.usefixtures("one_torch_thread")`)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
