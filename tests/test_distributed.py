"""Sharded extraction under a real `torchrun` (2 CPU processes, Gloo), issue 6: the same bytes as
one process, one combined summary, and a killed rank followed by a re-run completes the job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_extract import TINY, write_video

from vadkit.extract import ExtractOptions, extract_videos, plan_videos

ARGS = TINY  # the smallest complete settings, as in test_extract
LENGTHS = (16, 17, 20, 24)  # frames: different file sizes, 1 or 2 snippets
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # what torchrun gives its workers, for both runs


def _options() -> ExtractOptions:
    return ExtractOptions(
        random_weights=True, crops=1, short_side=32, crop_size=32, patch_frame=(128, 224)
    )


def _snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def _torchrun(videos: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "vadkit",
        "extract",
        str(videos),
        "-o",
        str(out),
        *ARGS,
        "--dtype",
        "float32",  # the library run beside it is float32; auto may pick bf16 on other CPUs
        "--json",
    ]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("videos")
    for i, n in enumerate(LENGTHS):
        write_video(d / f"v{i}.mp4", n, seed=i)
    return d


@pytest.fixture(scope="module")
def reference(videos, tmp_path_factory, one_torch_thread) -> dict[str, bytes]:
    """The files of one plain process (this one, with the one thread torchrun gives a worker)."""
    out = tmp_path_factory.mktemp("single") / "f"
    summary = extract_videos([videos], out, _options())
    assert summary.count("done") == len(LENGTHS) and summary.shard is None
    files = _snapshot(out)
    assert len(files) == 5 * len(LENGTHS)  # VID.npy, 3 patch grids, VID.json
    return files


def test_two_ranks_write_the_same_bytes_as_one_process(videos, reference, tmp_path):
    out = tmp_path / "f"
    r = subprocess.run(_torchrun(videos, out), capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)  # rank 0 alone prints: one JSON document
    assert summary["shard"] == "all 2 ranks"
    assert (summary["videos"], summary["done"], summary["skipped"], summary["failed"]) == (
        4,
        4,
        0,
        0,
    )
    assert sorted(x["video"] for x in summary["results"]) == ["v0", "v1", "v2", "v3"]
    assert r.stderr.count("extract (shard all 2 ranks): 4 written") == 1
    assert r.stderr.count("extract (shard") == 1  # no per-rank summaries beside it
    got = _snapshot(out)
    assert sorted(got) == sorted(reference)  # no temporary or extra files
    for name, data in reference.items():
        assert got[name] == data, f"{name} differs from the single-process run"


def _workers(pid: int) -> dict[int, int]:
    """{RANK: pid} of torchrun's worker processes (children of its agent `pid`)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rpartition(")")[2].split()[1])
            if ppid != pid:
                continue
            env = dict(
                kv.split("=", 1)
                for kv in (proc / "environ").read_bytes().decode(errors="replace").split("\0")
                if "=" in kv
            )
        except OSError:
            continue
        if "RANK" in env:
            found[int(env["RANK"])] = int(proc.name)
    return found


def test_a_killed_rank_then_a_rerun_completes_the_job(videos, reference, tmp_path):
    out = tmp_path / "f"
    agent = subprocess.Popen(
        _torchrun(videos, out),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=ENV,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not list(out.glob("*.json")) and time.monotonic() < deadline:
            assert agent.poll() is None, agent.stderr.read().decode()
            time.sleep(0.02)
        workers = _workers(agent.pid)
        assert sorted(workers) == [0, 1], workers
        os.kill(workers[1], signal.SIGKILL)
        try:
            agent.wait(timeout=60)  # torchrun notices and tears down rank 0
        except subprocess.TimeoutExpired:
            os.killpg(agent.pid, signal.SIGKILL)
            agent.wait()
            pytest.fail("torchrun did not end its job after a worker was killed")
    finally:
        if agent.poll() is None:
            os.killpg(agent.pid, signal.SIGKILL)
            agent.wait()
    assert agent.returncode != 0
    partial = _snapshot(out)
    assert 0 < sum(n.endswith(".json") for n in partial) < 4, "killed too late to test"
    for name, data in partial.items():  # whatever has a final name is final
        if not name.startswith(".tmp-"):
            assert data == reference[name], name

    r = subprocess.run(_torchrun(videos, out), capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["failed"] == 0 and summary["done"] + summary["skipped"] == 4
    assert summary["skipped"] == sum(n.endswith(".json") for n in partial)
    assert sorted(x["video"] for x in summary["results"]) == ["v0", "v1", "v2", "v3"]
    assert _snapshot(out) == reference  # complete, identical, no `.tmp-*` left


def test_a_rank_removes_only_its_own_stale_temporary_files(videos, reference, tmp_path):
    """Ranks start at different times (other nodes, restarts): cleaning the leftovers of killed
    writers must not delete a temporary file that another rank is writing right now."""
    out = tmp_path / "f"
    out.mkdir()
    for name, data in reference.items():
        (out / name).write_bytes(data)
    planned = {i: {p.stem for p in plan_videos([videos], shard=(i, 2))} for i in range(2)}
    assert planned[0] and planned[1]
    stale = {
        v: [out / f".tmp-{v}_patch35.npy.x1y2z3", out / f".tmp-{v}.json.abc"]
        for v in "v0 v1 v2 v3".split()
    }
    for paths in stale.values():
        for p in paths:
            p.write_bytes(b"partial")
    (out / ".tmp-other.npy.q").write_bytes(b"not ours")
    opts = _options()
    for rank in range(2):
        summary = extract_videos([videos], out, opts, shard=(rank, 2))
        assert summary.count("skipped") == len(planned[rank])  # complete: no network needed
        for v, paths in stale.items():
            gone = v in planned[rank] or (rank == 1 and v in planned[0])
            assert [p.exists() for p in paths] == [not gone] * 2, (rank, v)
    assert (out / ".tmp-other.npy.q").exists()
