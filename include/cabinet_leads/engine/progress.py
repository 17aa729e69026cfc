"""How far a run's lead work is: leads done of the leads known so far, rate, ETA.

The pipeline tells a :class:`Progress` how many leads a step will work through (``add_total``,
once per step: the recent window, the limbo backlog or one mapped range) and how many each batch
did (``advance``). A renderer shows it:

- :class:`TerminalBar`: one line redrawn with ``\\r`` on a terminal (``cabinet-leads reconcile``
  when stderr is a TTY), at most ten times a second, fitted to the terminal's width;
- :class:`PlainLines`: ``progress: 12,000/100,000 leads (12%), 2,100 leads/s, ETA 42 s`` lines
  to a stream (stderr that is not a terminal);
- :class:`LogLines`: the same lines through :mod:`logging` (an Airflow task's log).

Line renderers write a line when the work crosses another tenth of the total, when ``every_s``
seconds passed since the last line, and when a step's last batch is done; so a step of a few
batches logs every batch and a long one every few batches, never a flood.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    """Leads done of ``total`` (the leads of the steps begun so far), the rate since the first step
    began, and the time left at that rate. ``clock`` is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.total = 0
        self.done = 0
        self.batches = 0
        self.started: float | None = None

    # ---------------------------------------------------------------- what the pipeline calls

    def add_total(self, leads: int) -> None:
        """A step begins that will work through ``leads`` leads."""
        if self.started is None:
            self.started = self.clock()
        self.total += leads
        self.changed(step_done=False)

    def advance(self, leads: int) -> None:
        """A batch of ``leads`` leads is done."""
        self.done += leads
        self.batches += 1
        self.changed(step_done=self.done >= self.total)

    def close(self) -> None:
        """The work is over (the renderer ends its line)."""

    def changed(self, *, step_done: bool) -> None:
        """Called after every change: renderers override it."""

    # ---------------------------------------------------------------- arithmetic

    @property
    def elapsed(self) -> float:
        return 0.0 if self.started is None else max(0.0, self.clock() - self.started)

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 1.0

    @property
    def rate(self) -> float | None:
        """Leads per second since the first step began (None before any time has passed)."""
        elapsed = self.elapsed
        return self.done / elapsed if elapsed > 0 and self.done else None

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate (0 when all known work is done, None when unknown)."""
        left = max(0, self.total - self.done)
        if not left:
            return 0.0
        rate = self.rate
        return left / rate if rate else None

    def summary(self) -> str:
        """``12,000/100,000 leads (12%), 2,100 leads/s, ETA 42 s``."""
        rate = self.rate
        return (f"{self.done:,}/{self.total:,} leads ({self.fraction:.0%}), "
                f"{f'{rate:,.0f}' if rate is not None else '?'} leads/s, ETA {format_seconds(self.eta)}")


def format_seconds(seconds: float | None) -> str:
    """``42 s``, ``3 min 20 s``, ``2 h 05 min``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class _Lines(Progress):
    """A line when another tenth of the total is done, every ``every_s`` seconds, and at a step's end."""

    def __init__(self, *, every_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.every_s = every_s
        self.last_line: float | None = None
        self.last_tenth = 0
        self.last_done = 0
        self.seen_total = 0

    def changed(self, *, step_done: bool) -> None:
        now = self.clock()
        if self.last_line is None:
            self.last_line = now
        tenth = int(self.fraction * 10)
        if self.total != self.seen_total:  # a step began: count tenths of the new total from here
            self.seen_total, self.last_tenth = self.total, tenth
        if self.done == self.last_done:
            return  # no line without new work
        if step_done or tenth > self.last_tenth or now - self.last_line >= self.every_s:
            self.last_line, self.last_tenth, self.last_done = now, tenth, self.done
            self.line(f"progress: {self.summary()}")

    def line(self, text: str) -> None:
        raise NotImplementedError


class PlainLines(_Lines):
    """Progress lines on a stream (stderr when it is not a terminal)."""

    def __init__(self, stream: TextIO | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.stream = stream

    def line(self, text: str) -> None:
        stream = self.stream or sys.stderr
        print(text, file=stream, flush=True)


class LogLines(_Lines):
    """Progress lines through logging (INFO on ``cabinet_leads.progress``), prefixed by ``label``."""

    def __init__(self, label: str = "", logger: logging.Logger | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.label = label
        self.logger = logger or logging.getLogger("cabinet_leads.progress")

    def line(self, text: str) -> None:
        self.logger.info("%s%s", f"{self.label}: " if self.label else "", text)


class TerminalBar(Progress):
    """One line redrawn in place: ``[#####.....] 12,000/100,000 leads  12% 2,100/s ETA 42 s``."""

    def __init__(self, stream: TextIO | None = None, *, every_s: float = 0.1,
                 clock: Callable[[], float] = time.monotonic, columns: Callable[[], int] | None = None) -> None:
        super().__init__(clock)
        self.stream = stream
        self.every_s = every_s
        self.columns = columns or (lambda: terminal_columns(self.stream or sys.stderr))
        self.drawn: float | None = None
        self.width = 0

    def render(self) -> str:
        """The line for a terminal of ``columns()`` columns: a bar of a width that depends on the
        terminal only (it does not jump as the numbers grow), narrower on a narrow terminal, none
        on a very narrow one."""
        rate = self.rate
        text = (f"{self.done:,}/{self.total:,} leads {self.fraction:4.0%} "
                f"{f'{rate:,.0f}' if rate is not None else '?'}/s ETA {format_seconds(self.eta)}")
        room = self.columns() - 1  # never the last column: some terminals wrap there
        bar_width = min(30, room - 59)  # 59: the text of a run of millions of leads, and the brackets
        if bar_width >= 10:
            filled = int(self.fraction * bar_width)
            text = f"[{'#' * filled}{'.' * (bar_width - filled)}] {text}"
        return text[:room]

    def changed(self, *, step_done: bool) -> None:
        if not self.total:
            return  # nothing to show for a step without leads
        now = self.clock()
        if step_done or self.drawn is None or now - self.drawn >= self.every_s:
            self.drawn = now
            text = self.render()
            stream = self.stream or sys.stderr
            stream.write("\r" + text + " " * max(0, self.width - len(text)))
            stream.flush()
            self.width = len(text)

    def close(self) -> None:
        if self.drawn is not None:
            self.changed(step_done=True)
            (self.stream or sys.stderr).write("\n")
            (self.stream or sys.stderr).flush()
            self.drawn = None


def terminal_columns(stream: TextIO) -> int:
    """The width of the terminal ``stream`` writes to (stdout may be redirected while stderr is not);
    else COLUMNS or 80, as ``shutil.get_terminal_size`` decides."""
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, OSError, ValueError):
        return shutil.get_terminal_size((80, 24)).columns


def for_stream(stream: TextIO | None = None, *, bar: bool = True) -> Progress:
    """A bar when ``stream`` (default stderr) is a terminal and ``bar`` is true, plain lines otherwise."""
    stream = stream or sys.stderr
    isatty = getattr(stream, "isatty", None)
    return TerminalBar(stream) if bar and isatty and isatty() else PlainLines(stream)
