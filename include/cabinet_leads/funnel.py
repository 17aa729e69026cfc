"""Funnel reports: the limbo distribution and the weekly audit, read from the ops views."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Connection

from cabinet_leads.db import read_sql

STAGES = ("NO_IDENTITY", "NO_DRIVER", "NO_TRIPS_14D", "TRIPS_NO_CLAIM", "OK")
LIMBO_STAGES = ("NO_IDENTITY", "NO_DRIVER", "TRIPS_NO_CLAIM")
AUDIT_COLUMNS = (
    "week_start",
    "leads_total",
    "limbo_no_identity",
    "limbo_no_driver",
    "limbo_no_trips_14d",
    "limbo_trips_no_claim",
    "limbo_ok",
)


@dataclass(frozen=True)
class StageCount:
    limbo_stage: str
    lead_count: int
    recent_count: int


def _query(conn: Connection, name: str, **params) -> list[dict]:
    sql = read_sql(f"funnel/{name}.sql")
    cursor = conn.exec_driver_sql(sql, params)
    return [dict(row._mapping) for row in cursor]


def limbo_distribution(conn: Connection, recent_days: int = 30) -> list[StageCount]:
    """Every stage (zeros included) in funnel order, with the count of recent leads."""
    found = {r["limbo_stage"]: r for r in _query(conn, "limbo_distribution", recent_days=recent_days)}
    return [
        StageCount(stage, found.get(stage, {}).get("lead_count", 0), found.get(stage, {}).get("recent_count", 0))
        for stage in STAGES
    ]


def weekly_audit(conn: Connection, weeks: int = 4) -> list[dict]:
    """The newest `weeks` rows of ops.v_cabinet_14d_funnel_audit_weekly."""
    return _query(conn, "weekly_audit", weeks=weeks)


def deleted_links(conn: Connection) -> dict[str, int]:
    """How many links point to records deleted upstream (kept for audit, counting for nothing)."""
    return _query(conn, "deleted_links")[0]


def format_deleted_links(counts: dict[str, int]) -> str:
    return (f"links to records deleted upstream: {counts['lead_links']} lead(s), {counts['driver_links']} "
            "driver account(s) (kept for audit, counting for nothing)")


def format_distribution(rows: list[StageCount]) -> str:
    total = sum(r.lead_count for r in rows)
    lines = [f"{'limbo_stage':<16}{'count':>10}{'recent':>10}{'share':>8}"]
    for r in rows:
        share = f"{100 * r.lead_count / total:.1f}%" if total else "-"
        lines.append(f"{r.limbo_stage:<16}{r.lead_count:>10}{r.recent_count:>10}{share:>8}")
    lines.append(f"{'total':<16}{total:>10}{sum(r.recent_count for r in rows):>10}")
    return "\n".join(lines)


def format_audit(rows: list[dict]) -> str:
    header = ["week_start", "total", "no_identity", "no_driver", "no_trips_14d", "trips_no_claim", "ok"]
    widths = [12, 8, 12, 10, 13, 15, 8]
    out = ["".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True)))]
    for r in rows:
        cells = [str(r[c]) for c in AUDIT_COLUMNS]
        out.append("".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))))
    return "\n".join(out)
