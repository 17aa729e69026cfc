"""Which leads an upstream change touches: every input of a lead's funnel stage that changed marks
the lead in ``ops.lead_marks`` (include/sql/funnel_state/mark_changes.sql says what counts);
:mod:`cabinet_leads.engine.funnel_state` recomputes exactly the marked leads."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Connection

from cabinet_leads.engine.session import WorkSession


def mark_changes(session: WorkSession, conn: Connection) -> dict[str, int]:
    """Mark the leads whose own row, person's driver accounts, trips or claims, or the milestone
    configuration changed since their state was kept (one set-based statement, its own transaction)."""
    with session.tx(conn):
        row = session.run_file(conn, "funnel_state/mark_changes").fetchone()
    return {"leads_marked": row.leads_marked, "persons_changed": row.persons_changed,
            "config_changed": row.config_changed}


def mark_leads(session: WorkSession, conn: Connection, lead_ids: Sequence[int]) -> None:
    """Mark leads whose link the current transaction may have written (inside the caller's transaction)."""
    session.run_file(conn, "funnel_state/mark_leads", {"ids": list(lead_ids)})
