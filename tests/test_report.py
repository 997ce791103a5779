"""`vadkit report`: the page's content on a tiny synthetic batch, and the page in a real
headless Chromium (it loads without script errors and shows every video)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from review_data import Clip, make_batch
from typer.testing import CliRunner

from vadkit.alerts import Alert
from vadkit.cli import app
from vadkit.errors import VadkitError
from vadkit.opencv import cv2
from vadkit.report import rank_alerts

runner = CliRunner()
CLIPS = [Clip("abn_a", (16, 32)), Clip("abn_b", (4, 20)), Clip("nrm_c", None)]


def _report(tmp_path, *extra, clips=CLIPS, evidence=False, drop_source="nrm_c"):
    sdir, vdir, ann = make_batch(tmp_path, clips, evidence=evidence)
    if drop_source:
        (vdir / f"{drop_source}.mp4").unlink()
    out = tmp_path / "site" / "report.html"
    args = ["report", str(sdir), "-o", str(out), "--videos", str(vdir), "--json", "-q", *extra]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    return out, json.loads(r.stdout), sdir, ann


def test_report_shows_every_video_alerts_thumbnails_and_metrics(tmp_path):
    out, summary, sdir, ann = _report(tmp_path, "-a", str(tmp_path / "annotations.csv"))
    page = out.read_text()
    assert summary["videos"] == 3 and summary["alerts"] == 2 and summary["videos_with_source"] == 2
    for c in CLIPS:
        assert f'id="v-{c.name}"' in page and f'data-video="{c.name}"' in page
    assert page.count('<svg class="timeline"') == 3
    rows = re.findall(r'<tr data-video="([^"]+)"', page)
    assert rows == ["abn_a", "abn_b", "nrm_c"]  # highest peak first (then by name)
    assert page.count('src="data:image/jpeg;base64,') == 2  # one per alert with a source
    assert "1 of 3 have no source video there" in page and "no source video: no thumbnails" in page
    # self-contained: no reference to anything outside the file
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", page)
    # the metrics are `vadkit eval`'s
    r = runner.invoke(app, ["eval", str(sdir), "-a", str(ann), "--json"])
    assert r.exit_code == 0, r.output
    auc = json.loads(r.stdout)["roc_auc"]
    assert summary["metrics"]["roc_auc"] == pytest.approx(auc)
    assert f"<b>{auc:.4f}</b>" in page
    assert page.count("<title>ground truth: frames") == 2  # GT drawn on the two anomalous videos
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]
    # the keyframe is the alert's peak frame: the event's bright quarter is in it
    uri = re.search(r'src="data:image/jpeg;base64,([^"]+)"', page).group(1)
    img = cv2.imdecode(np.frombuffer(base64.b64decode(uri), np.uint8), cv2.IMREAD_COLOR)
    h, w = img.shape[:2]
    assert img[h * 3 // 4, w * 3 // 4].mean() > img[h // 4, w // 4].mean() + 40


def test_report_without_videos_or_gt_and_with_evidence(tmp_path, monkeypatch):
    sdir, _, _ = make_batch(tmp_path / "a", CLIPS, videos=False)
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["report", str(sdir), "-o", str(out), "-q", "--fps", "10"])
    assert r.exit_code == 0, r.output
    page = out.read_text()
    assert "No --videos directory given" in page and "No ground truth given" in page
    assert "10 fps assumed" in page and "data:image" not in page
    plain, _, _, _ = _report(tmp_path / "p", drop_source=None)
    heat, s, _, _ = _report(tmp_path / "e", evidence=True, drop_source=None)
    assert (
        s["videos_with_evidence"] == 3 and "evidence heatmap on the thumbnails" in heat.read_text()
    )
    thumbs = [re.findall(r'src="(data:[^"]+)"', p.read_text()) for p in (plain, heat)]
    assert len(thumbs[0]) == len(thumbs[1]) == 2 and thumbs[0] != thumbs[1]


def test_report_errors(tmp_path):
    sdir, vdir, _ = make_batch(tmp_path, CLIPS[:1])
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["report", str(tmp_path / "none"), "-o", str(out)])
    assert (
        r.exit_code == 1
        and r.stderr.startswith("Error:")
        and "score directory not found" in r.stderr
    )
    r = runner.invoke(app, ["report", str(sdir), "-o", str(out), "--videos", str(tmp_path / "nov")])
    assert r.exit_code == 1 and "video directory not found" in r.stderr
    gt = tmp_path / "other.csv"
    gt.write_text("video,start,end,class\nsomething_else,1,5,Fighting\n")
    r = runner.invoke(app, ["report", str(sdir), "-o", str(out), "-a", str(gt)])
    assert r.exit_code == 1 and "abn_a" in r.stderr
    r = runner.invoke(app, ["report", str(sdir), "-o", str(out), "--rank", "median"])
    assert r.exit_code == 2
    r = runner.invoke(app, ["report", str(sdir), "-o", str(tmp_path)])
    assert r.exit_code == 2 and "is a directory" in r.output
    assert not out.exists()


def test_rank_alerts_by_peak_or_mean():
    a = Alert(0, 0.0, 0, 0.1, 0.9, 0.0, 0, 1.0, 10, scores=[0.9, 0.5, 0.5])
    b = Alert(1, 2.0, 20, 2.1, 0.8, 2.0, 20, 3.0, 30, scores=[0.8, 0.8, 0.8])
    assert [x.index for x in rank_alerts([b, a], "peak")] == [0, 1]
    assert [x.index for x in rank_alerts([a, b], "mean")] == [1, 0]
    with pytest.raises(VadkitError, match="peak, mean"):
        rank_alerts([a], "median")


# -- the page in a real browser -----------------------------------------------------------------


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(
        "no Chromium on PATH and none installable here (.ci/run installs it with "
        "`apt-get install -y chromium`)"
    )


def load_in_chromium(page, tmp_path) -> tuple[str, list[str]]:
    """(the DOM after the page's scripts ran, console errors Chromium logged)."""
    cmd = [
        _chromium(),
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    console = [
        line
        for line in p.stderr.splitlines()
        if ":CONSOLE" in line and ("Uncaught" in line or "rror" in line)
    ]
    return p.stdout, console


def _dom_errors(dom: str) -> str | None:
    m = re.search(r'<html[^>]*data-js-errors="([^"]*)"', dom)
    return m.group(1) if m else None


def test_report_loads_in_headless_chromium_and_shows_every_video(tmp_path):
    clips = [Clip(f"abn_{i:02d}", (4 + i, 24)) for i in range(4)] + [Clip("nrm_x", None)]
    out, summary, _, _ = _report(
        tmp_path, "-a", str(tmp_path / "annotations.csv"), clips=clips, drop_source="abn_03"
    )
    dom, console = load_in_chromium(out, tmp_path)
    assert _dom_errors(dom) is None and not console, (_dom_errors(dom), console)
    m = re.search(r'<body[^>]*data-rendered="(\d+)"', dom)
    assert (
        m and int(m.group(1)) == len(clips) == summary["videos"]
    )  # the page's script ran to the end
    for c in clips:
        assert f'id="v-{c.name}"' in dom


def test_browser_check_catches_script_errors(tmp_path):
    """The check above can fail: a page whose script throws is caught both ways."""
    from vadkit.report_html import ERROR_HOOK

    bad = tmp_path / "bad.html"
    bad.write_text(
        f"<!DOCTYPE html><html><head><script>{ERROR_HOOK}</script></head><body>"
        "<script>console.error('logged');document.body.setAttribute('data-rendered','1');"
        "notDefined();</script></body></html>"
    )
    dom, console = load_in_chromium(bad, tmp_path)
    assert "notDefined is not defined" in (_dom_errors(dom) or "") and "logged" in _dom_errors(dom)
    assert any("Uncaught ReferenceError" in line for line in console)
