"""The one progress reporter: plain timed lines off a terminal, a bar on one, silence if quiet."""

from __future__ import annotations

import io
import subprocess
import sys

from vadkit.cli.progress import ProgressReporter, format_seconds


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def _reporter(**kw):
    clock, stream = FakeClock(), io.StringIO()
    kw.setdefault("tty", False)
    return ProgressReporter("extract", stream=stream, clock=clock, **kw), clock, stream


def test_plain_lines_every_interval_with_time_left():
    p, clock, stream = _reporter(total=48, unit="videos", interval=10)
    for _ in range(12):
        clock.t += 95 / 12
        p.advance()
    # a line once 10 s have passed since the last one: every second video here (7.9 s each)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 6, lines
    assert lines[0] == "extract: 2/48 videos, 16 s elapsed, ~364 s left"
    assert lines[-1] == "extract: 12/48 videos, 95 s elapsed, ~285 s left"
    clock.t += 5
    p.advance(0)  # 5 s after the last line: nothing
    assert len(stream.getvalue().splitlines()) == 6
    clock.t += 5
    p.advance(0)
    p.close()
    last = stream.getvalue().splitlines()
    assert last[-2] == "extract: 12/48 videos, 105 s elapsed, ~315 s left"
    assert last[-1] == "extract: 12/48 videos, 105 s elapsed, stopped"


def test_no_line_before_the_interval_and_a_final_line():
    p, clock, stream = _reporter(total=3, unit="videos", interval=10)
    for _ in range(3):
        clock.t += 1
        p.advance()
    assert stream.getvalue() == ""
    p.close()
    p.close()  # idempotent
    assert stream.getvalue() == "extract: 3/3 videos, 3 s elapsed, done\n"


def test_per_item_lines_and_work_rate():
    p, clock, stream = _reporter(
        total=4, unit="videos", work_total=400, work_unit="snippets", per_item=True, interval=1e9
    )
    clock.t += 50
    p.add_work(100)
    assert stream.getvalue() == ""  # work inside an item prints nothing with a long interval
    p.advance(item="vid_000")
    out = stream.getvalue().splitlines()
    assert out == ["extract: 1/4 videos, vid_000, 50 s elapsed, ~150 s left (2.00 snippets/s)"]


def test_unknown_total_and_messages():
    p, clock, stream = _reporter(unit="steps", interval=10)
    clock.t += 11
    p.advance(5)
    p.message("note: sampling with replacement")
    p.close()
    assert stream.getvalue().splitlines() == [
        "extract: 5 steps, 11 s elapsed",
        "note: sampling with replacement",
        "extract: 5 steps, 11 s elapsed, done",
    ]


def test_quiet_prints_nothing_on_or_off_a_terminal():
    for tty in (False, True):
        p, clock, stream = _reporter(total=10, quiet=True, tty=tty, per_item=True, interval=0)
        for i in range(10):
            clock.t += 30
            p.describe(f"v{i}")
            p.advance(item=f"v{i}", work=3)
        p.message("hidden")
        p.set_total(11)
        p.close()
        assert stream.getvalue() == ""


def test_terminal_draws_a_bar_on_the_stream():
    p, clock, stream = _reporter(total=2, unit="videos", tty=True)
    p.describe("vid_000")
    clock.t += 1
    p.advance()
    p.message("failed vid_001: unreadable")
    p.advance()
    p.close()
    out = stream.getvalue()
    assert "2/2 videos" in out and "failed vid_001: unreadable" in out


def test_default_stream_is_stderr_never_stdout():
    code = (
        "from vadkit.cli.progress import ProgressReporter\n"
        "with ProgressReporter('score', total=2, unit='videos', interval=0) as p:\n"
        "    p.advance(); p.advance()\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout == ""
    assert r.stderr.splitlines()[-1].startswith("score: 2/2 videos, ")


def test_format_seconds():
    assert [format_seconds(s) for s in (-1, 95.4, 720, 40_000)] == [
        "0 s",
        "95 s",
        "12 min",
        "11.1 h",
    ]


def test_a_resumed_count_is_shown_but_not_in_the_rate():
    p, clock, stream = _reporter(total=100, unit="steps", initial=60, interval=10)
    clock.t += 10
    p.advance(10)  # 10 steps in 10 s, 30 left: 30 s, not 10 s · 30 / 70
    assert stream.getvalue() == "extract: 70/100 steps, 10 s elapsed, ~30 s left\n"
