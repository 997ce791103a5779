"""`vadkit watch`: live features equal offline ones, windowed scores, alerts with hooks and
clips, dropping when the model is slow, a loopback HTTP stream, reconnection, Ctrl-C."""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_train import config
from typer.testing import CliRunner

from vadkit.alerts import AlertRule
from vadkit.cli import app
from vadkit.data import Source, load_source
from vadkit.errors import VadkitError
from vadkit.extract import ExtractOptions, extract_videos
from vadkit.io.features import FeatureMeta, write_features
from vadkit.score import load_run, source_scores
from vadkit.train import train
from vadkit.watch import (
    Mailbox,
    Reader,
    ReaderOptions,
    Snippet,
    Watcher,
    WatchOptions,
    WindowScorer,
    load_extractor,
    parse_source,
    window_scores,
)

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[1]


def write_video(
    path: Path, frames: int, *, fps: float = 25.0, w: int = 64, h: int = 48, event=(40, 100)
) -> Path:
    """Textured noise scrolling sideways; a white square in frames `event` (start, end)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for i in range(frames):
        f = np.roll(base, i, axis=1).copy()
        if event[0] <= i < event[1]:
            f[8:24, 8:24] = 255
        vw.write(f)
    vw.release()
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny RTFM run on (random-weight, 1-crop, 32-px) Inception features, and a video."""
    root = tmp_path_factory.mktemp("watch")
    feats, rng, rows = root / "feats", np.random.default_rng(0), ["video,label"]
    for i in range(4):
        m = FeatureMeta(
            f"v{i}", "i3d-inception", 1024, 1, 6, 96, 25.0, 25.0, 96, short_side=32, crop_size=32
        )
        write_features(feats, m, rng.standard_normal((6, 1, 1024)).astype(np.float32))
        rows.append(f"v{i},{i % 2}")
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    ds = {"train": root / "train.csv", "features": feats}
    run = train(config(ds, root / "run", steps=1, segments=6, model_args={"hidden": 8})).out
    return root, run, write_video(root / "clip.mp4", 72)  # 4.5 snippets: the last loop-padded


def lines(output: str) -> list[dict]:
    return [json.loads(x) for x in output.splitlines() if x.startswith("{")]


def snippet_lines(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["event"] == "snippet"]


def test_sources_are_files_urls_or_cameras(tmp_path):
    assert parse_source("0").kind == "camera" and parse_source("0").target == 0
    u = parse_source("rtsp://10.0.0.5:554/live/cam1?x=1")
    assert u.kind == "url" and u.label == "cam1"
    with pytest.raises(VadkitError, match="unsupported URL scheme 'ftp'"):
        parse_source("ftp://host/v.mp4")
    with pytest.raises(VadkitError, match="no such video file"):
        parse_source(str(tmp_path / "missing.mp4"))


def test_live_features_equal_offline_extract(tmp_path):
    """The features of a snippet read live are those `vadkit extract` writes (clip and MSIP
    roi patches), padded last snippet included."""
    video = write_video(tmp_path / "v.mp4", 20, w=96, h=72)
    opts = ExtractOptions(random_weights=True, crops=1, short_side=32, crop_size=32,
                          patches=True, patch_frame=(128, 224), patch_mode="roi",
                          device="cpu")  # fmt: skip
    assert not extract_videos([video], tmp_path / "f", opts).failed
    clip, patch = load_source(Source("v", tmp_path / "f" / "v.npy"), patches=True)
    from vadkit.extractor import Extractor

    ex = Extractor.load(opts)
    reader = Reader(parse_source(str(video)), ReaderOptions())
    reader.start()
    got = []
    while (item := reader.mailbox.get(5)) is not None and isinstance(item, Snippet):
        got.append(ex.snippet_features(item.frames))
    reader.stop()
    assert len(got) == clip.shape[0] == 2
    live_clip = np.stack([c for c, _ in got])
    live_patch = np.stack([np.concatenate(list(p.values())) for _, p in got])
    assert live_patch.shape == patch.shape == (2, 49, 1024)
    np.testing.assert_allclose(live_clip, clip, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(live_patch, patch, rtol=1e-4, atol=1e-5)


def test_watch_a_file_scores_every_snippet_like_the_window_of_offline_features(tiny):
    root, run, video = tiny
    r = runner.invoke(app, ["watch", str(video), "--run", str(run), "--device", "cpu",
                            "--window", "3", "--lookahead", "1", "-q"])  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = lines(r.stdout)
    assert rows[0]["event"] == "start" and rows[0]["window"] == 3 and rows[-1]["event"] == "summary"
    snips = snippet_lines(rows)
    assert [s["frame"] for s in snips] == [0, 16, 32, 48, 64]
    assert snips[-1]["end_frame"] == 72 and snips[-1]["padded"] == 8
    # each snippet scored with one snippet after it (--lookahead 1), the last at the end
    assert [s["window"] for s in snips] == [2, 3, 3, 3, 3]
    assert [s.get("warmup", False) for s in snips] == [True, True, False, False, False]
    assert rows[-1]["snippets"] == 5 and rows[-1]["dropped"] == 0 and rows[-1]["frames"] == 72
    # the same numbers from offline features of the same video
    loaded = load_run(run, device="cpu")
    opts = ExtractOptions.from_record(loaded.meta["extraction"], device="cpu", patches=False)
    extract_videos([video], root / "f", opts)
    src = Source("clip", root / "f" / "clip.npy")
    clip, _ = load_source(src, patches=False)
    scorer = WindowScorer(loaded, 3)
    want = window_scores(scorer, clip, None, 3, lookahead=1)
    np.testing.assert_allclose([s["score"] for s in snips], want, atol=1e-4)
    # a window holding the whole video gives offline `score`'s last snippet
    full = source_scores(loaded.model, src, spec=loaded.spec, device=loaded.device)
    assert window_scores(scorer, clip, None, 99)[-1] == pytest.approx(full[-1], abs=1e-5)


class FakeExtractor:
    """Features that hold the brightness of the square's place; optionally slow."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay

    def snippet_features(self, frames):
        time.sleep(self.delay)
        return np.full((1, 1024), frames[:, 8:24, 8:24].mean() / 255.0, np.float32), None


class BrightnessScorer:
    """The mean brightness as the score: about 0.5 without the square, 1 with it."""

    window, lookahead, pushed, clips = 1, 0, 0, []

    def push(self, clip, patches):
        self.pushed += 1
        return float(clip[0, 0])

    def flush(self):
        return []


def test_alerts_fire_in_the_event_with_hook_and_clip(tiny, tmp_path):
    root, run, _ = tiny
    video = write_video(tmp_path / "ev.mp4", 160)  # the event: frames 40-99
    hook_dir = tmp_path / "hooks"
    hook_dir.mkdir()
    cmd = f"cat > {hook_dir}/$VADKIT_EVENT.json"
    opts = WatchOptions(rule=AlertRule(0.9, 0.0, 0.5), on_alert=cmd, save_clips=tmp_path / "c",
                        clip_context=0.4)  # fmt: skip
    w = Watcher(load_run(run, device="cpu"), FakeExtractor(), parse_source(str(video)), opts)
    w.scorer = BrightnessScorer()
    out: list[dict] = []
    w.run_loop(out.append, lambda m: None)
    summary = w.finish()
    starts = [r for r in out if r["event"] == "alert_start"]
    assert len(starts) == 1 and summary["alerts"] == 1 and summary["clips"] == 1
    snips = snippet_lines(out)
    # the first snippet wholly inside the event (48-63) fires; none before the event
    assert [s["frame"] for s in snips if s["alert"]] == [48, 64, 80]
    assert starts[0]["start_frame"] == 48 and starts[0]["fired_time"] == pytest.approx(64 / 25)
    end = next(r for r in out if r["event"] == "alert_end")
    assert end["end_frame"] == 96  # the last high snippet's end; closed after 0.5 s cooldown
    clip_line = next(r for r in out if r["event"] == "alert_clip")
    cap = cv2.VideoCapture(clip_line["path"])
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    # 0.4 s (10 frames) of context each side, in whole snippets: frames 32-111
    assert clip_line["frames"] == n == 80 and clip_line["start_frame"] == 32
    assert not [p for p in (tmp_path / "c").iterdir() if p.name.startswith(".tmp-")]
    for name in ("alert_start", "alert_end", "alert_clip"):
        ev = json.loads((hook_dir / f"{name}.json").read_text())
        assert ev["event"] == name and ev["index"] == 0


def test_a_slow_model_drops_snippets_and_the_lag_stays_bounded(tiny, tmp_path):
    """200 fps at --realtime: a snippet every 0.08 s, scored in 0.25 s; --max-lag 0.16 s."""
    root, run, _ = tiny
    video = write_video(tmp_path / "fast.mp4", 320, fps=200.0)
    opts = WatchOptions(reader=ReaderOptions(realtime=True, max_lag=0.16), lookahead=1)
    w = Watcher(load_run(run, device="cpu"), FakeExtractor(0.25), parse_source(str(video)), opts)
    out: list[dict] = []
    log: list[str] = []
    w.run_loop(out.append, log.append)
    s = w.finish()
    snips = snippet_lines(out)
    assert [x["snippet"] for x in snips] == list(range(20))  # every snippet: scored or dropped
    dropped = [x for x in snips if x.get("dropped")]
    assert s["dropped"] == len(dropped) > 5 and s["snippets"] == 20 - len(dropped)
    assert out[0]["max_lag_snippets"] == 2
    # waiting at most 2 snippets plus the one in hand: 3 x 0.25 s (+ slack for a busy CPU)
    assert s["latency_max"] < 3 * 0.25 + 0.6
    assert any("cannot keep up" in m for m in log)


def test_mailbox_waits_for_a_file_and_drops_the_oldest_for_a_live_source():
    def snip(i):
        return Snippet(i, 16 * i, 16 * i + 16, np.zeros((16, 2, 2, 3), np.uint8), 16, 0.0, 0.0)

    box = Mailbox(2)
    for i in range(4):
        box.put(snip(i), drop=True)
    kinds = [type(box.get(0.1)).__name__ for _ in range(4)]
    assert kinds == ["Dropped", "Dropped", "Snippet", "Snippet"] and box.dropped == 2
    assert box.get(0.05) is None


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """A static file server with byte ranges (FFmpeg seeks an mp4 over http)."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        try:
            data = Path(self.translate_path(self.path)).read_bytes()
        except OSError:
            self.send_error(404)
            return
        m = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        start, end = 0, len(data) - 1
        if m:
            start, end = int(m[1]), int(m[2]) if m[2] else end
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        try:
            self.wfile.write(data[start : end + 1])
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def http_server(tiny):
    root = tiny[0]
    handler = functools.partial(RangeHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_loopback_http_stream_scores_like_the_file(tiny, http_server):
    root, run, video = tiny
    _, base = http_server
    args = ["--run", str(run), "--device", "cpu", "--window", "3", "--lookahead", "0", "-q"]
    by_url = runner.invoke(app, ["watch", f"{base}/clip.mp4", *args])
    by_file = runner.invoke(app, ["watch", str(video), *args])
    assert by_url.exit_code == 0, by_url.output
    url_rows, file_rows = lines(by_url.stdout), lines(by_file.stdout)
    # a URL of a file (its length known) is waited for like a file, never dropped from
    assert url_rows[0]["kind"] == "url" and not url_rows[0]["live"] and url_rows[0]["fps"] == 25.0
    assert [s["score"] for s in snippet_lines(url_rows)] == [
        s["score"] for s in snippet_lines(file_rows)
    ]
    end = next(x for x in url_rows if x["event"] == "end")
    assert "the stream ended" in end["message"] and url_rows[-1]["event"] == "summary"


def test_reconnect_continues_the_stream_then_gives_up_when_the_server_is_gone(tiny, http_server):
    root, run, _ = tiny
    server, base = http_server
    args = ["watch", f"{base}/clip.mp4", "--run", str(run), "--device", "cpu", "--reconnect",
            "--reconnect-delay", "0.05", "--reconnect-limit", "2", "-q"]  # fmt: skip
    r = runner.invoke(app, [*args, "--max-snippets", "7"])
    assert r.exit_code == 0, r.output
    rows = lines(r.stdout)
    assert [x["event"] for x in rows].count("reconnect") == 1
    assert [s["frame"] for s in snippet_lines(rows)] == [0, 16, 32, 48, 64, 72, 88]
    assert rows[-1]["reconnects"] == 1 and "--max-snippets" in rows[-1]["ended"]
    server.shutdown()
    server.server_close()
    r = runner.invoke(app, [*args, "--timeout", "1"])
    assert r.exit_code == 1
    assert r.stderr.strip().splitlines()[-1].startswith("Error: ") and "gave up" in r.stderr


def test_ctrl_c_ends_cleanly_with_a_summary(tiny):
    root, run, video = tiny
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "vadkit", "watch", str(video), "--run", str(run), "--device",
           "cpu", "--realtime", "--fps", "5", "--threads", "1", "--lookahead", "0"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = [proc.stdout.readline() for _ in range(2)]  # start + the first snippet
        assert json.loads(first[1])["event"] == "snippet"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["event"] == "summary" and summary["ended"] == "interrupted"
    assert summary["snippets"] >= 1 and "Traceback" not in err and "interrupted" in err


def test_watch_refuses_a_run_without_extraction_settings_and_bad_sources(tmp_path, tiny):
    root, run, video = tiny
    r = runner.invoke(app, ["watch", str(tmp_path / "nope.mp4"), "--run", str(run)])
    assert r.exit_code == 1 and r.stderr.startswith("Error: ") and "no such video" in r.stderr
    loaded = load_run(run, device="cpu")
    loaded.meta = {**loaded.meta, "extraction": None}
    with pytest.raises(VadkitError, match="records no extraction settings"):
        load_extractor(loaded)
    r = runner.invoke(app, ["watch", str(video), "--run", str(run), "--threshold", "0.3",
                            "--release", "0.6"])  # fmt: skip
    assert r.exit_code == 2 and "release" in r.stderr


def test_a_stall_is_reported_once_and_frames_still_arriving_are_no_stall(tiny):
    root, run, video = tiny
    w = Watcher(load_run(run, device="cpu"), FakeExtractor(), parse_source(str(video)),
                WatchOptions(reader=ReaderOptions(timeout=1.0)))  # fmt: skip
    out: list[dict] = []
    w.emit, w.log = out.append, lambda m: None
    w._stalled(1.0)  # a frame was read just now (a slow snippet, not a stall)
    assert out == []
    w.reader.last_frame -= 5
    w._stalled(1.0)
    w._stalled(1.0)
    assert [r["event"] for r in out] == ["stall"] and "no frame for 5 s" in out[0]["message"]
    assert w.finish()["stalls"] == 1
