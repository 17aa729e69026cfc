"""Run parameters: one table of defaults, bounds and descriptions for the Python API
(``ReconcileCabinetLeadsPipeline``), the command line (``cabinet-leads reconcile``), the DAG's
Params and the environment; plus the one parser for durations (``--max-age 2h``,
``--wait-for-lock 90s``, ``CABINET_LEADS_STATEMENT_TIMEOUT=5min``).

Airflow-free and without database access: the DAG file imports it at parse time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass

from cabinet_leads.funnel import LIMBO_STAGES as STAGE_CHOICES

# unit -> seconds; longer names first so that "ms" and "min" win over "s" and "m"
DURATION_UNITS = {"min": 60.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, *, bare_unit: str = "s", maximum_s: float) -> float:
    """Seconds from ``2h``, ``90m``/``90min``, ``45s``, ``1500ms``, ``3d`` or a bare number in
    ``bare_unit``. Raises ValueError (one readable sentence) unless positive, finite and at most
    ``maximum_s``."""
    value = text.strip().lower()
    number, factor = value, DURATION_UNITS[bare_unit]
    for unit, seconds in DURATION_UNITS.items():
        if value.endswith(unit) and value[: -len(unit)].strip():
            number, factor = value[: -len(unit)].strip(), seconds
            break
    try:
        result = float(number) * factor
    except ValueError:
        raise ValueError(f"expected a duration like 2h, 90m, 45s or 1500ms, got {text!r}") from None
    if not math.isfinite(result) or not 0 < result <= maximum_s:
        raise ValueError(f"a duration must be positive, finite and at most {maximum_s:g} s, got {text!r}")
    return result


@dataclass(frozen=True)
class RunParameter:
    """One run parameter: its name (the API keyword and the DAG Param), default, description and
    either bounds (numbers), choices (a list of stages) or neither (a flag). ``unit`` is "ms" or
    "s" for durations; ``env`` names the environment variable that sets it when the caller does not."""

    name: str
    default: object
    description: str
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    unit: str = ""
    env: str | None = None
    cli: str | None = None  # the option of ``cabinet-leads reconcile``
    dag: bool = False  # a Param of the reconcile DAG

    @property
    def is_flag(self) -> bool:
        return isinstance(self.default, bool)

    def bounds_text(self) -> str:
        """``50–5000``, ``one or more of A, B, C`` or ``true/false``."""
        if self.choices:
            return f"one or more of {', '.join(self.choices)}"
        if self.is_flag:
            return "true/false"
        return f"{self.minimum}–{self.maximum}{' ' + self.unit if self.unit else ''}"

    def check(self, value, *, label: str | None = None):
        """``value`` checked and normalised (bool, int, or a tuple of stages); ValueError (one
        sentence naming ``label``, default the parameter's name) when it is out of bounds."""
        label = label or self.name
        if self.is_flag:
            return bool(value)
        if self.choices:
            return self._check_choices(value, label)
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"{label} must be {'a number' if self.unit else 'a whole number'}, got {value!r}")
        try:
            number = float(value) if self.unit else int(value)  # durations may have fractions
        except ValueError:
            number = None
        if number is None or not math.isfinite(number) or (not self.unit and number != value and not isinstance(value, str)):
            raise ValueError(f"{label} must be {'a number' if self.unit else 'a whole number'}, got {value!r}")
        if isinstance(number, float) and number.is_integer():
            number = int(number)
        if not self.minimum <= number <= self.maximum:
            raise ValueError(f"{label} must be between {self.minimum} and {self.maximum}"
                             f"{' ' + self.unit if self.unit else ''}, got {number}")
        return number

    def _check_choices(self, value, label: str) -> tuple[str, ...]:
        items: Iterable = value.split(",") if isinstance(value, str) else value
        chosen = tuple(str(s).strip().upper() for s in items if str(s).strip())
        if not chosen:
            raise ValueError(f"{label} must name at least one of {', '.join(self.choices)}")
        bad = [s for s in chosen if s not in self.choices]
        if bad:
            raise ValueError(f"unknown {label} value(s) {', '.join(bad)}; choose from {', '.join(self.choices)}")
        return chosen

    def from_env(self, environ=os.environ):
        """The value of ``env`` checked (durations as in ``parse_duration``: bare numbers in
        ``unit``), or the default when it is unset or empty."""
        text = environ.get(self.env, "").strip() if self.env else ""
        if not text:
            return self.default
        if self.unit:
            scale = 1000 if self.unit == "ms" else 1
            try:
                seconds = parse_duration(text, bare_unit=self.unit, maximum_s=self.maximum / scale)
            except ValueError as exc:
                raise ValueError(f"{self.env} must be a duration such as 30s, 5min or 1500 ({self.unit}), "
                                 f"at most {self.maximum // scale // 3600}h ({exc})") from None
            return self.check(max(self.minimum, round(seconds * scale)), label=self.env)
        return self.check(text, label=self.env)


PROCESS_RECENT = RunParameter("process_recent", True, "Reconcile leads of the recent window",
                              cli="--process-recent", dag=True)
RECENT_DAYS = RunParameter("recent_days", 30, "Recent window in days", minimum=1, maximum=365,
                           cli="--recent-days", dag=True)
PROCESS_LIMBO = RunParameter("process_limbo", True, "Work through the limbo backlog", cli="--process-limbo", dag=True)
LIMBO_STAGES = RunParameter("limbo_stages", STAGE_CHOICES, "Limbo stages whose leads are reconciled",
                            choices=STAGE_CHOICES, cli="--limbo-stages", dag=True)
# 50-5000: what the runbook's interfaces always took; below 50 the per-transaction overhead
# dominates, above 5000 one transaction holds its locks and memory too long
BATCH_SIZE = RunParameter("batch_size", 500, "Leads per transaction", minimum=50, maximum=5000,
                          cli="--batch-size", dag=True)
DRY_RUN = RunParameter("dry_run", False, "Compute statistics and roll the work back", cli="--dry-run", dag=True)
FULL = RunParameter("full", False, "Re-read every source row; reprocess rows whose fingerprint changed "
                    "even when their updated_at did not (daily is enough)", cli="--full")
RUN_LOCK_WAIT = RunParameter("run_lock_timeout", 600, "How long to wait for a running run to finish "
                             "before giving up", minimum=1, maximum=86_400, unit="s", cli="--wait-for-lock")
STATEMENT_TIMEOUT = RunParameter("statement_timeout_ms", None, "Longest SQL statement of the job "
                                 "(default: the server's or role's statement_timeout)", minimum=1,
                                 maximum=86_400_000, unit="ms", env="CABINET_LEADS_STATEMENT_TIMEOUT")
# A key value carried by records showing more than this many distinct first given names or DOCs is
# "hot" (a placeholder or hub value): no link through it.
HOT_KEY_LIMIT = RunParameter("hot_key_limit", 5, "Distinct given names or DOCs above which a key value "
                             "links nobody", minimum=1, maximum=1000, env="CABINET_LEADS_HOT_KEY_LIMIT")

RUN_PARAMETERS = {p.name: p for p in (PROCESS_RECENT, RECENT_DAYS, PROCESS_LIMBO, LIMBO_STAGES, BATCH_SIZE,
                                      DRY_RUN, FULL, RUN_LOCK_WAIT, STATEMENT_TIMEOUT, HOT_KEY_LIMIT)}


def validate_stages(stages: Iterable[str]) -> tuple[str, ...]:
    """The limbo stages named (upper-cased), or ValueError naming the unknown ones."""
    return LIMBO_STAGES.check(stages)


def markdown_table() -> str:
    """The README's table of run parameters (name, default, bounds, description)."""
    rows = ["| API | CLI (`reconcile`) | DAG Param | default | accepted | meaning |", "|---|---|---|---|---|---|"]
    for p in RUN_PARAMETERS.values():
        default = ",".join(p.default) if p.choices else str(p.default).lower() if p.is_flag else p.default
        cli = f"`{p.cli}`" if p.cli else f"env `{p.env}`" if p.env else "–"
        rows.append(f"| `{p.name}` | {cli} | {'yes' if p.dag else '–'} | {default if default is not None else '–'} "
                    f"| {p.bounds_text()} | {p.description} |")
    return "\n".join(rows)
