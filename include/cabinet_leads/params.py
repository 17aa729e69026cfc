"""Run parameters shared by the command line, the Python API and the environment: one parser for
durations (``--max-age 2h``, ``--wait-for-lock 90s``, ``CABINET_LEADS_STATEMENT_TIMEOUT=5min``)."""

from __future__ import annotations

import math

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
