"""The HTML of `vadkit report` (see `vadkit.report`): inline CSS, SVG and JavaScript, no network.

The page's script sets `data-rendered` on `<body>` to the number of video sections once it has
run, and a handler installed first in `<head>` records any script error (`window.onerror`,
`console.error`) in `data-js-errors` on `<html>`: a headless browser's dumped DOM tells
whether the page rendered cleanly (tests/test_report.py checks both).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vadkit.alerts import Alert
from vadkit.report import Batch, VideoEntry, esc, fmt

# the SVG timeline: viewBox size and the plot area inside it
_W, _H = 1000, 132
_X0, _X1, _Y0, _Y1 = 44, 992, 10, 96
_GT_Y = 102  # the ground-truth band under the plot
_MAX_POINTS = 1800  # longer curves are reduced to a min/max envelope per column

CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;
background:#f4f5f8}
header{background:#1d2330;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#c5cad6}main{padding:16px 24px;max-width:1200px}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 3px #0002;padding:12px 16px;
margin:0 0 16px}
table{border-collapse:collapse;width:100%}th,td{padding:4px 8px;text-align:right;
border-bottom:1px solid #e3e6ec}th:first-child,td:first-child{text-align:left}
th{cursor:pointer;user-select:none;background:#f0f2f6}th.sorted::after{content:" \\25BE"}
tr.hidden{display:none}.num{font-variant-numeric:tabular-nums}
.metrics{display:flex;flex-wrap:wrap;gap:10px}.metric{background:#f0f2f6;border-radius:6px;
padding:6px 12px}.metric b{display:block;font-size:18px}
svg.timeline{width:100%;height:auto;display:block}.note{color:#6a7285;font-size:13px}
.alerts{display:flex;flex-wrap:wrap;gap:12px;margin-top:8px}
.alert{border:1px solid #e3e6ec;border-radius:6px;padding:6px;width:244px;font-size:13px}
.alert img{width:240px;display:block;border-radius:3px}.noimg{width:240px;height:60px;
background:#eef0f4;color:#6a7285;display:flex;align-items:center;justify-content:center}
.badge{display:inline-block;border-radius:4px;padding:0 6px;font-size:12px;color:#fff}
.b-alert{background:#c0392b}.b-ok{background:#7f8c8d}.b-gt{background:#27ae60}
h2{font-size:16px;margin:0 0 6px}a{color:#2256c9}#filter{padding:4px 8px;width:240px}
"""

# installed first: records script errors in the DOM, for a headless browser to read
ERROR_HOOK = """
(function(){var errs=[];function note(m){errs.push(String(m));
document.documentElement.setAttribute('data-js-errors',errs.join(' | '));}
window.onerror=function(m,src,line){note(m+' (line '+line+')');};
var ce=console.error;console.error=function(){note(Array.prototype.join.call(arguments,' '));
return ce.apply(console,arguments);};})();
"""

SCRIPT = """
(function(){
var table=document.getElementById('summary');
var body=table.tBodies[0];
Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,col){
  th.addEventListener('click',function(){
    var rows=Array.prototype.slice.call(body.rows);
    var asc=th.getAttribute('data-asc')==='1';
    rows.sort(function(a,b){
      var x=a.cells[col].getAttribute('data-v'),y=b.cells[col].getAttribute('data-v');
      var nx=parseFloat(x),ny=parseFloat(y);
      var c=(isNaN(nx)||isNaN(ny))?String(x).localeCompare(String(y)):nx-ny;
      return asc?c:-c;});
    rows.forEach(function(r){body.appendChild(r);});
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(h){h.className='';});
    th.className='sorted';th.setAttribute('data-asc',asc?'0':'1');});});
var filter=document.getElementById('filter');
filter.addEventListener('input',function(){
  var q=filter.value.toLowerCase();
  Array.prototype.forEach.call(body.rows,function(r){
    r.className=r.getAttribute('data-video').toLowerCase().indexOf(q)<0?'hidden':'';});
  document.querySelectorAll('section.video').forEach(function(s){
    s.style.display=s.id.slice(2).toLowerCase().indexOf(q)<0?'none':'';});});
document.body.setAttribute('data-rendered',
  String(document.querySelectorAll('section.video svg.timeline').length));
})();
"""


def _x(frame: float, n: int) -> float:
    return _X0 + (_X1 - _X0) * frame / max(n, 1)


def _envelope(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frame positions, values) of the curve: every frame, or for a long curve each column's
    minimum and maximum in the order they occur (peaks and dips survive)."""
    n = scores.shape[0]
    if n <= _MAX_POINTS:
        return np.arange(n) + 0.5, scores.astype(np.float64)
    width = -(-n // (_MAX_POINTS // 2))  # frames per column
    cols = -(-n // width)
    padded = np.full(cols * width, scores[-1], dtype=np.float64)
    padded[:n] = scores
    grid = padded.reshape(cols, width)
    lo, hi = grid.argmin(axis=1), grid.argmax(axis=1)
    first, second = np.minimum(lo, hi), np.maximum(lo, hi)
    base = np.arange(cols) * width
    pos = np.stack([base + first, base + second], axis=1).reshape(-1)
    pos = np.minimum(pos, n - 1)
    return pos + 0.5, scores[pos].astype(np.float64)


def _tick_step(seconds: float) -> float:
    """A round tick spacing giving 4 to 10 ticks over `seconds`."""
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if seconds / step <= 10:
            return step
    return 10 ** math.ceil(math.log10(seconds / 10))


def _rect(x: float, y: float, w: float, h: float, attrs: str, title: str = "") -> str:
    t = f"<title>{esc(title)}</title>" if title else ""
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" {attrs}>{t}</rect>'


def _label(x: float, y: float, text: str, cls: str, anchor: str = "start") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="{cls}">{esc(text)}</text>'


def _axes(n: int, fps: float, lo: float, hi: float, y) -> list[str]:
    out = [_rect(_X0, _Y0, _X1 - _X0, _Y1 - _Y0, 'fill="#fafbfc" stroke="#d5d9e0"')]
    for v in sorted({lo, hi, 0.5} if lo <= 0.5 <= hi else {lo, hi}):
        out.append(_label(_X0 - 4, y(v) + 4, f"{v:g}", "ax", "end"))
    seconds = n / fps
    step = _tick_step(seconds)
    k = 0
    while k * step <= seconds + 1e-9:
        x = _x(k * step * fps, n)
        label = f"{k * step:g}s" if step < 60 else f"{k * step / 60:g}min"
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_Y1}" y2="{_Y1 + 3}" stroke="#8a93a6"/>')
        out.append(_label(x, _H - 10, label, "ax", "middle"))
        k += 1
    return out


def _bands(entry: VideoEntry, n: int) -> list[str]:
    """Ground truth (green, and a bar under the plot) and alerts (red, numbered)."""
    out = []
    plot_h = _Y1 - _Y0
    for a, b in entry.gt or []:
        x0, x1 = _x(a, n), _x(min(b, n), n)
        out.append(_rect(x0, _Y0, x1 - x0, plot_h, 'fill="#27ae60" opacity="0.13"'))
        title = f"ground truth: frames {a}-{b - 1}"
        out.append(_rect(x0, _GT_Y, x1 - x0, 5, 'fill="#27ae60"', title))
    for a in sorted(entry.alerts, key=lambda a: a.start_frame):
        x0, x1 = _x(a.start_frame, n), _x(a.end_frame if a.end_frame is not None else n, n)
        end = f"{a.end_time:.2f}" if a.end_time is not None else "end"
        title = f"alert {a.index + 1}: {a.start_time:.2f}-{end} s, peak {a.peak:.3f}"
        out.append(_rect(x0, _Y0, max(x1 - x0, 1), plot_h, 'fill="#c0392b" opacity="0.18"', title))
        out.append(_label(x0 + 2, _Y0 + 11, str(a.index + 1), "an"))
    return out


_SVG_STYLE = (
    "<style>.ax{font:11px sans-serif;fill:#5b6478}"
    ".an{font:bold 11px sans-serif;fill:#c0392b}</style>"
)


def timeline_svg(entry: VideoEntry, threshold: float) -> str:
    """The video's timeline: the score curve, the threshold, alerts and ground truth."""
    scores = entry.vs.scores
    n = scores.shape[0]
    lo, hi = min(0.0, float(scores.min())), max(1.0, float(scores.max()))

    def y(v: float) -> float:
        return _Y1 - (_Y1 - _Y0) * (v - lo) / (hi - lo)

    parts = _axes(n, entry.fps, lo, hi, y) + _bands(entry, n)
    ty = y(threshold)
    parts.append(
        f'<line x1="{_X0}" x2="{_X1}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#c0392b" '
        'stroke-dasharray="5 4"/>'
    )
    xs, ys = _envelope(scores)
    px = _X0 + (_X1 - _X0) * xs / max(n, 1)
    py = _Y1 - (_Y1 - _Y0) * (ys - lo) / (hi - lo)
    pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px.tolist(), py.tolist(), strict=True))
    parts.append(
        f'<polyline points="{pts}" fill="none" stroke="#2256c9" stroke-width="1.5" '
        'stroke-linejoin="round"/>'
    )
    return (
        f'<svg class="timeline" viewBox="0 0 {_W} {_H}" xmlns="http://www.w3.org/2000/svg" '
        f'role="img" aria-label="scores of {esc(entry.name)}">{_SVG_STYLE}{"".join(parts)}</svg>'
    )


def _alert_card(entry: VideoEntry, a: Alert, rank: int) -> str:
    thumb = entry.thumbs.get(a.index)
    if thumb is not None:
        img = f'<img src="{thumb}" alt="frame {a.peak_frame} of {esc(entry.name)}">'
    else:
        why = "no source video" if entry.source is None else "no thumbnail"
        img = f'<div class="noimg">{why}</div>'
    mean = float(np.mean(a.scores)) if a.scores else a.peak
    end = f"{a.end_time:.2f}" if a.end_time is not None else "end"
    return (
        f'<div class="alert">{img}<div><b>#{rank} alert {a.index + 1}</b> '
        f"{a.start_time:.2f}-{end} s ({(a.duration or 0):.2f} s)<br>peak "
        f"<span class=num>{a.peak:.3f}</span> at {a.peak_time:.2f} s (frame {a.peak_frame}), "
        f"mean <span class=num>{mean:.3f}</span></div></div>"
    )


def video_section(entry: VideoEntry, threshold: float) -> str:
    notes = [f"{entry.vs.scores.shape[0]} frames at {entry.fps:g} fps"]
    if entry.fps_from == "assumed":
        notes.append(f"(frame rate unknown: {entry.fps:g} fps assumed)")
    notes.append(
        f"source: {esc(entry.source)}" if entry.source else "no source video: no thumbnails"
    )
    if entry.vs.evidence is not None:
        notes.append("evidence heatmap on the thumbnails")
    if entry.gt is not None:
        notes.append(f"ROC AUC {fmt(entry.roc_auc)}" if entry.roc_auc is not None else "")
    meta = entry.vs.meta
    if meta is not None and meta.model:
        notes.append(f"model {esc(meta.model)}")
    cards = "".join(_alert_card(entry, a, r + 1) for r, a in enumerate(entry.alerts))
    cards = cards or '<p class="note">no alert</p>'
    return (
        f'<section class="video card" id="v-{esc(entry.name)}">'
        f"<h2>{esc(entry.name)} {_badges(entry)}</h2>"
        f'<p class="note">{"; ".join(n for n in notes if n)}</p>{timeline_svg(entry, threshold)}'
        f'<div class="alerts">{cards}</div></section>'
    )


def _badges(entry: VideoEntry) -> str:
    k = len(entry.alerts)
    out = (
        f'<span class="badge {"b-alert" if k else "b-ok"}">{k} alert{"s" if k != 1 else ""}</span>'
    )
    if entry.anomalous:
        out += ' <span class="badge b-gt">anomalous (GT)</span>'
    return out


def _cell(value, text: str | None = None) -> str:
    v = "" if value is None else value
    return f'<td class="num" data-v="{esc(v)}">{esc(text if text is not None else v)}</td>'


def summary_table(entries: Sequence[VideoEntry], with_gt: bool) -> str:
    heads = ["video", "frames", "seconds", "max score", "mean score", "alerts", "top alert"]
    heads += ["anomalous (GT)", "ROC AUC"] if with_gt else []
    rows = []
    for e in sorted(entries, key=lambda e: (-e.peak, e.name)):
        s = e.vs.scores
        top = e.alerts[0].peak if e.alerts else None
        cells = [
            f'<td data-v="{esc(e.name)}"><a href="#v-{esc(e.name)}">{esc(e.name)}</a></td>',
            _cell(s.shape[0]),
            _cell(round(s.shape[0] / e.fps, 2)),
            _cell(round(e.peak, 4), fmt(e.peak)),
            _cell(round(float(s.mean()), 4), fmt(float(s.mean()))),
            _cell(len(e.alerts)),
            _cell(top, fmt(top) if top is not None else "-"),
        ]
        if with_gt:
            cells += [_cell(int(bool(e.anomalous)), "yes" if e.anomalous else "no")]
            cells += [_cell(e.roc_auc, fmt(e.roc_auc))]
        rows.append(f'<tr data-video="{esc(e.name)}">{"".join(cells)}</tr>')
    head = "".join(f"<th{' class=sorted' if h == 'max score' else ''}>{h}</th>" for h in heads)
    return (
        f'<table id="summary"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def metrics_block(batch: Batch) -> str:
    m = batch.metrics
    if m is None:
        return '<p class="note">No ground truth given (-a): no metrics.</p>'
    items = [
        ("ROC AUC", m["roc_auc"]),
        ("average precision", m["average_precision"]),
        ("PR AUC (trapezoid)", m["pr_auc_trapezoid"]),
        ("ROC AUC, anomalous videos", m["roc_auc_abnormal"]),
        (f"false-alarm rate @{m['threshold']:g}", m["false_alarm_rate"]),
    ]
    cells = "".join(f'<div class="metric">{esc(k)}<b>{fmt(v, 4)}</b></div>' for k, v in items)
    what = (
        f"{m['videos']} videos ({m['abnormal_videos']} anomalous), {m['frames']} frames "
        f"({m['anomalous_frames']} anomalous), ground truth {esc(batch.annotations)}"
    )
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in m.get("notes", []))
    return f'<div class="metrics">{cells}</div><p class="note">{what}</p>{notes}'


def _intro(batch: Batch) -> str:
    entries = list(batch.entries.values())
    r = batch.rule
    rule = (
        f"threshold {r.threshold:g}, min-duration {r.min_duration:g} s, cooldown {r.cooldown:g} s"
    )
    rule += f", release {r.release:g}" if r.release is not None else ""
    missing = sum(e.source is None for e in entries)
    if batch.videos_dir is None:
        src = "No --videos directory given: no thumbnails."
    else:
        src = f"Videos from {esc(batch.videos_dir)}"
        src += (
            f"; {missing} of {len(entries)} have no source video there (no thumbnails)."
            if missing
            else "."
        )
    alerts = sum(len(e.alerts) for e in entries)
    return (
        f"<p>{len(entries)} videos, {alerts} alerts ({esc(rule)}), ranked by {esc(batch.rank_by)} "
        f"score. {src}</p>"
    )


def page(batch: Batch) -> str:
    """The whole HTML document."""
    entries = list(batch.entries.values())
    with_gt = batch.metrics is not None
    sections = "".join(
        video_section(e, batch.rule.threshold)
        for e in sorted(entries, key=lambda e: (-e.peak, e.name))
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>vadkit report: {esc(batch.scores_dir)}</title><script>{ERROR_HOOK}</script>"
        f"<style>{CSS}</style></head><body><header><h1>vadkit report</h1>"
        f"<p>scores {esc(batch.scores_dir)}</p></header><main>"
        f'<div class="card">{_intro(batch)}{metrics_block(batch)}</div>'
        '<div class="card"><p><input id="filter" type="search" placeholder="filter videos by '
        'name"> <span class="note">click a column to sort</span></p>'
        f"{summary_table(entries, with_gt)}</div>"
        f"{sections}</main><script>{SCRIPT}</script></body></html>\n"
    )
