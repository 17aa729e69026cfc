"""The kept funnel state: ``ops.lead_state`` and the TRIPS_NO_CLAIM worklist, recomputed for exactly
the marked leads (:mod:`cabinet_leads.engine.changes`), chunk by chunk, each chunk one transaction
that takes its marks, so a failure puts them back; and :func:`verify`, which compares the kept state
with the live views in full."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Connection

from cabinet_leads.engine.session import WorkSession

REFRESH_CHUNK = 20_000  # leads recomputed per transaction (one set-based statement)


def refresh_marked(
    session: WorkSession, conn: Connection, run_id: int, *, lo: int | None = None, hi: int | None = None,
    chunk: int = REFRESH_CHUNK,
) -> dict[str, int]:
    """Recompute the marked leads of ``[lo, hi]`` (all when unbounded) until none is left."""
    stats = dict.fromkeys(
        ("state_refreshed", "newly_driver_mapped", "worklist_opened", "worklist_resolved", "worklist_closed"), 0)
    first = True
    while True:
        with session.tx(conn):
            ids = [r.lead_id for r in session.run_file(conn, "funnel_state/take_marks",
                                                        {"lo": lo, "hi": hi, "n": chunk})]
            if not ids:
                return stats
            if first and len(ids) == chunk:
                # a big backlog (a cold run): the tables it filled have stale statistics (V015)
                session.run_file(conn, "funnel_state/analyze_written")
            first = False
            moved = recompute(session, conn, ids, run_id=run_id)
        stats["state_refreshed"] += len(ids)
        for key in ("newly_driver_mapped", "worklist_opened", "worklist_resolved", "worklist_closed"):
            stats[key] += moved[key]


def recompute(session: WorkSession, conn: Connection, lead_ids: list[int], *, run_id: int | None) -> dict[str, int]:
    """Recompute the kept state and worklist of ``lead_ids`` from the live definition, one set-based
    statement inside the caller's transaction; what moved (``funnel_state/refresh_marked.sql``)."""
    return session.run_file(conn, "funnel_state/refresh_marked", {"ids": lead_ids, "run_id": run_id}).fetchone()._asdict()


@dataclass(frozen=True)
class Difference:
    """One lead (or lead and milestone) where the kept state differs from the live views."""

    what: str  # 'lead_state' or 'worklist'
    lead_id: int
    milestone: int | None
    live: dict | None
    kept: dict | None


def verify(session: WorkSession, conn: Connection, *, max_rows: int = 100) -> tuple[int, list[Difference]]:
    """(number of differences, the first ``max_rows`` of them) between the kept state and the live views."""
    with session.tx(conn):
        rows = session.run_file(conn, "funnel_state/verify", {"max_rows": max_rows}).fetchall()
    total = int(rows[0].total) if rows else 0
    return total, [Difference(r.what, r.lead_id, r.milestone, r.live, r.kept) for r in rows]
