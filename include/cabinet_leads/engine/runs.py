"""Runs: the run lock (one reconcile run at a time), the durable run records in
``ops.reconcile_runs``, the run's statistics and how a statement timeout is reported."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator

import psycopg
import sqlalchemy.exc
from sqlalchemy.engine import Connection

from cabinet_leads.db import DatabaseError
from cabinet_leads.engine.session import WorkSession

log = logging.getLogger("cabinet_leads.pipeline")

RUN_LOCK_KEY = 0x43414232  # "CAB2": one reconcile run at a time

STAT_KEYS = ("processed", "newly_linked", "newly_driver_mapped", "still_no_candidates", "conflicts", "errors")
EXTRA_KEYS = (
    "new_persons",
    "drivers_processed",
    "drivers_linked",
    "driver_conflicts",
    "worklist_opened",
    "worklist_resolved",
    "worklist_closed",
    "link_conflicts",
    "state_refreshed",
    "leads_marked",
    "unmatched_carried_forward",
    "record_keys_stored",
    "batches",
    "retries",
)


class RunLockTimeout(RuntimeError):
    """Another reconcile run holds the run lock for longer than we were willing to wait."""


class RunSkipped(RuntimeError):
    """Another reconcile run holds the run lock and the caller asked not to wait (skip_if_running)."""


class StatementTimeout(DatabaseError):
    """A statement hit the job's (or the server's) statement_timeout: names the step and the limit."""


def empty_stats() -> dict:
    """Every count at 0, and the seconds waited for the identity lock (summed over batches)."""
    return {**dict.fromkeys(STAT_KEYS + EXTRA_KEYS, 0), "identity_lock_wait_s": 0.0}


def add_stats(total: dict, part: dict) -> dict:
    """``total`` with ``part``'s numbers (counts, seconds waited) added and its other values
    (snapshots, metrics) set."""
    for key, value in part.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value
        else:
            total[key] = value
    return total


@contextlib.contextmanager
def run_lock(session: WorkSession, conn: Connection, *, timeout: float, skip_if_running: bool) -> Iterator[float]:
    """Session-level advisory lock held for the whole run; yields the seconds waited for it. When
    another run holds it: skip at once (``skip_if_running``), or say once which run we wait for and
    wait up to ``timeout`` seconds."""
    started = time.monotonic()
    announced = waited = False
    while True:
        with session.tx(conn, bookkeeping=True):
            got = session.exec(conn, "select pg_try_advisory_lock(%(k)s)", {"k": RUN_LOCK_KEY}).fetchone()[0]
        if got:
            break
        waited = True
        holder = running_run(session, conn)
        if skip_if_running:
            raise RunSkipped(f"skipped: {holder} is running")
        if time.monotonic() - started >= timeout:
            raise RunLockTimeout(f"gave up after waiting {timeout:g} s for {holder} to finish")
        if not announced:
            log.warning("waiting up to %g s for %s to finish", timeout, holder)
            announced = True
        time.sleep(0.2)
    try:
        yield time.monotonic() - started if waited else 0.0  # exactly 0 when the lock was free
    finally:
        with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError, psycopg.Error):
            if conn.in_transaction():
                conn.rollback()
            with session.tx(conn, bookkeeping=True):
                session.exec(conn, "select pg_advisory_unlock(%(k)s)", {"k": RUN_LOCK_KEY})


def running_run(session: WorkSession, conn: Connection) -> str:
    """'run 12 (cli, started 2026-03-20 12:00 UTC)': the run record of the run holding the lock."""
    with session.tx(conn, bookkeeping=True):
        row = session.run_file(conn, "reconcile/running_run").fetchone()
    if row is None:
        return "another reconcile run"
    return f"run {row.run_id} ({row.triggered_by}, started {row.started_at:%Y-%m-%d %H:%M:%S %Z})"


def start_run(session: WorkSession, conn: Connection, params: dict, *, triggered_by: str,
              external_run_id: str | None, dry_run: bool = False) -> int:
    """Record the run (committed at once and durably: run records are logs, dry runs are recorded too)."""
    with session.tx(conn, bookkeeping=True):
        return session.run_file(
            conn,
            "reconcile/start_run",
            {
                "triggered_by": triggered_by,
                "external_run_id": external_run_id,
                "dry_run": dry_run,
                "parameters": json.dumps(params, default=str),
            },
        ).fetchone()[0]


def finish_run(session: WorkSession, conn: Connection, run_id: int, status: str, stats: dict,
               error: str | None = None) -> None:
    if conn.in_transaction():
        conn.rollback()
    with session.tx(conn, bookkeeping=True):
        session.run_file(
            conn,
            "reconcile/finish_run",
            {"run_id": run_id, "status": status, "stats": json.dumps(stats, default=str), "error": error},
        )


def as_timeout(session: WorkSession, exc: BaseException) -> StatementTimeout | None:
    """A statement timeout as one line naming the step and the limit; None for any other error."""
    orig = exc.orig if isinstance(exc, sqlalchemy.exc.DBAPIError) else exc
    if not isinstance(orig, psycopg.errors.QueryCanceled):
        return None
    limit = (f"{session.statement_timeout_ms} ms (CABINET_LEADS_STATEMENT_TIMEOUT)"
             if session.statement_timeout_ms is not None else "the server's or role's statement_timeout")
    return StatementTimeout(f"statement timeout: {session.last_statement} was cancelled after {limit}")
