"""The progress reporter's arithmetic and renderers, on a fake clock (no sleeping)."""

from __future__ import annotations

import io
import logging

import pytest

from cabinet_leads.engine.progress import (
    LogLines,
    PlainLines,
    Progress,
    TerminalBar,
    for_stream,
    format_seconds,
)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_rate_and_eta_arithmetic():
    clock = Clock()
    p = Progress(clock)
    assert (p.total, p.done, p.rate, p.eta, p.fraction) == (0, 0, None, 0.0, 1.0)
    p.add_total(100_000)
    assert p.rate is None and p.eta is None  # nothing done yet: no rate, no ETA
    clock.now += 5
    p.advance(12_000)
    assert p.rate == pytest.approx(2400.0)  # 12,000 leads in 5 s
    assert p.eta == pytest.approx(88_000 / 2400)
    assert p.fraction == pytest.approx(0.12)
    assert p.summary() == "12,000/100,000 leads (12%), 2,400 leads/s, ETA 37 s"
    clock.now += 5
    p.add_total(20_000)  # a second step: the total grows, the rate counts from the first step
    p.advance(8_000)
    assert p.rate == pytest.approx(2000.0)
    assert p.eta == pytest.approx(100_000 / 2000)
    assert p.summary() == "20,000/120,000 leads (17%), 2,000 leads/s, ETA 50 s"


@pytest.mark.parametrize(("seconds", "text"), [(None, "?"), (0, "0 s"), (42.4, "42 s"), (200, "3 min 20 s"),
                                               (7500, "2 h 05 min")])
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


def test_bar_rendering_fits_the_terminal():
    clock = Clock()
    bar = TerminalBar(io.StringIO(), clock=clock, columns=lambda: 100)
    bar.add_total(1000)
    clock.now += 2
    bar.advance(250)
    line = bar.render()
    assert line == "[#######.......................] 250/1,000 leads  25% 125/s ETA 6 s"
    clock.now += 1000
    bar.advance(749)
    assert bar.render() == "[#############################.] 999/1,000 leads 100% 1/s ETA 1 s"  # same width
    narrow = TerminalBar(io.StringIO(), clock=clock, columns=lambda: 80)
    narrow.add_total(1000)
    clock.now += 2
    narrow.advance(500)
    assert narrow.render() == "[##########..........] 500/1,000 leads  50% 250/s ETA 2 s"  # the bar shrinks
    big = TerminalBar(io.StringIO(), clock=clock, columns=lambda: 80)
    big.add_total(2_000_000)
    clock.now += 1000
    big.advance(1_000_000)
    assert len(big.render()) <= 79 and big.render().endswith("ETA 16 min 40 s")  # millions fit in 80 columns
    tiny = TerminalBar(io.StringIO(), clock=clock, columns=lambda: 30)
    tiny.add_total(10)
    assert tiny.render() == "0/10 leads   0% ?/s ETA ?"  # no room for a bar: the text alone
    tiny.total = 10**9
    assert tiny.render() == "0/1,000,000,000 leads   0% ?/"  # cut to the width, the last column left free


def test_bar_redraws_in_place_at_most_every_tenth_of_a_second_and_ends_its_line():
    clock, out = Clock(), io.StringIO()
    bar = TerminalBar(out, clock=clock, columns=lambda: 120)
    bar.add_total(500)  # first draw
    for _ in range(4):  # four batches within 0.1 s of the first draw: not redrawn
        clock.now += 0.01
        bar.advance(100)
    assert out.getvalue().count("\r") == 1
    clock.now += 0.2
    bar.advance(100)  # redrawn
    assert out.getvalue().count("\r") == 2
    bar.close()  # the final state, then the end of the line
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("500/500 leads 100% 2,083/s ETA 0 s\n")
    assert "\n" not in text[:-1]  # one line, redrawn


def test_bar_shows_nothing_for_a_step_without_leads():
    out = io.StringIO()
    bar = TerminalBar(out, clock=Clock(), columns=lambda: 80)
    bar.add_total(0)
    bar.close()
    assert out.getvalue() == ""


def test_plain_lines_at_each_tenth_every_interval_and_at_a_step_end():
    clock, out = Clock(), io.StringIO()
    p = PlainLines(out, every_s=10.0, clock=clock)
    p.add_total(10_000)
    for _ in range(100):  # 100 batches of 100 leads, 0.05 s each: a line per tenth
        clock.now += 0.05
        p.advance(100)
    lines = out.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[0] == "progress: 1,000/10,000 leads (10%), 2,000 leads/s, ETA 4 s"
    assert lines[-1] == "progress: 10,000/10,000 leads (100%), 2,000 leads/s, ETA 0 s"
    out.truncate(0), out.seek(0)
    p.add_total(1_000_000)  # a slow second step: lines every 10 s between the tenths
    for _ in range(30):
        clock.now += 1.0
        p.advance(100)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].startswith("progress: 11,000/1,010,000 leads (1%)")


def test_plain_lines_say_nothing_before_work_is_done():
    out = io.StringIO()
    p = PlainLines(out, clock=Clock())
    p.add_total(0)
    p.add_total(500)
    assert out.getvalue() == ""


def test_log_lines_go_through_logging(caplog):
    clock = Clock()
    p = LogLines("reconcile_limbo_batch 1-300", every_s=10.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="cabinet_leads.progress"):
        p.add_total(300)
        for _ in range(3):
            clock.now += 1
            p.advance(100)
    assert [r.getMessage() for r in caplog.records] == [
        "reconcile_limbo_batch 1-300: progress: 100/300 leads (33%), 100 leads/s, ETA 2 s",
        "reconcile_limbo_batch 1-300: progress: 200/300 leads (67%), 100 leads/s, ETA 1 s",
        "reconcile_limbo_batch 1-300: progress: 300/300 leads (100%), 100 leads/s, ETA 0 s",
    ]
    assert {r.name for r in caplog.records} == {"cabinet_leads.progress"}


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_on_a_terminal_lines_elsewhere():
    assert type(for_stream(_Tty())) is TerminalBar
    assert type(for_stream(io.StringIO())) is PlainLines
    assert type(for_stream(_Tty(), bar=False)) is PlainLines
