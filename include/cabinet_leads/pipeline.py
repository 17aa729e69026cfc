"""ReconcileCabinetLeadsPipeline: the runbook's job, set-based and C0-safe.

A run (``run_reconcile``) is: take the run lock, record the run, snapshot the limbo distribution,
carry yesterday's unmatched records into today's snapshot, link new or changed driver accounts,
then work through the leads of the run's scope in batches, snapshot again and record the result.

A batch (``reconcile_batch``) is one transaction with a constant number of SQL statements,
whatever its size: load the records, store keys of changed records (normalised once per change),
look up every owner of the batch's keys, decide in Python (``identity.match_batch``), write
persons, keys, links and unmatched outcomes with one statement each, then refresh the funnel
state and the claim worklist of its leads. Batches serialise their identity writes on a
transaction-level advisory lock, so parallel batches of one run (Airflow mapped tasks) and
overlapping runs decide against each other's committed persons; the unique constraints
(C0.1, C0.2) are the last line, and a batch that still hits one is retried.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import time
import zoneinfo
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import psycopg
import sqlalchemy.exc
from sqlalchemy.engine import Connection

from cabinet_leads import identity
from cabinet_leads.db import DatabaseError, DbLike, read_sql
from cabinet_leads.engine import changes, funnel_state
from cabinet_leads.engine.progress import Progress
from cabinet_leads.engine.session import DRIVERS, LEADS, StatementCounter, WorkSession
from cabinet_leads.funnel import LIMBO_STAGES, STAGES
from cabinet_leads.normalize import MAX_FIELD_LENGTH, normalize_record
from cabinet_leads.params import (
    BATCH_SIZE,
    HOT_KEY_LIMIT,
    RECENT_DAYS,
    RUN_LOCK_WAIT,
    STATEMENT_TIMEOUT,
    validate_stages,
)

log = logging.getLogger(__name__)

LIMA = zoneinfo.ZoneInfo("America/Lima")
RUN_LOCK_KEY = 0x43414232  # "CAB2": one reconcile run at a time
IDENTITY_LOCK_KEY = 0x43414233  # "CAB3": identity decisions of concurrent batches serialise
DEFAULT_BATCH_SIZE = BATCH_SIZE.default
FIELDS = ("first_name", "last_name", "phone", "document_number", "license_number", "plate")
BATCH_RETRIES = 3
HOT_KEY_SCAN = 1000  # records looked at per key value to decide

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
    "batches",
    "retries",
)


class RunLockTimeout(RuntimeError):
    """Another reconcile run holds the run lock for longer than we were willing to wait."""


class RunSkipped(RuntimeError):
    """Another reconcile run holds the run lock and the caller asked not to wait (skip_if_running)."""


class StatementTimeout(DatabaseError):
    """A statement hit the job's (or the server's) statement_timeout: names the step and the limit."""


def empty_stats() -> dict[str, int]:
    return dict.fromkeys(STAT_KEYS + EXTRA_KEYS, 0)


def add_stats(total: dict, part: dict) -> dict:
    """``total`` with ``part``'s counts added and its other values (snapshots, metrics) set."""
    for key, value in part.items():
        if isinstance(value, int) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value
        else:
            total[key] = value
    return total


@dataclass(frozen=True)
class LeadRange:
    """A contiguous range of lead ids holding ``leads`` leads that need work (one Airflow task)."""

    lo: int
    hi: int
    leads: int


@dataclass
class _Row:
    source_pk: str
    updated_at: str  # the source's updated_at as PostgreSQL's text (any timestamp round-trips)
    keys: dict | None
    linked_person_key: int | None
    fingerprint: int | None = None  # of the fields the job uses (ops.lead_fingerprint / driver_fingerprint)
    renormalised: bool = False  # new or changed upstream: its keys were normalised in this batch


class ReconcileCabinetLeadsPipeline:
    """``ReconcileCabinetLeadsPipeline(db).run_reconcile(...)`` as the runbook calls it.

    ``db`` may be a SQLAlchemy ``Session`` (the job then works on the engine the session is bound
    to), ``Connection`` or ``Engine``. Each batch is committed on its own, as the runbook's job
    committed its work; ``dry_run=True`` runs everything in one transaction and rolls it back.
    """

    def __init__(
        self,
        db: DbLike,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        triggered_by: str = "cli",
        external_run_id: str | None = None,
        run_lock_timeout: float = RUN_LOCK_WAIT.default,
        skip_if_running: bool = False,
        full: bool = False,
        statement_timeout_ms: int | None = None,
        hot_key_limit: int | None = None,
        progress: Progress | None = None,
    ) -> None:
        # bounds and environment variables: cabinet_leads.params (shared with the CLI and the DAG)
        statement_timeout_ms = (STATEMENT_TIMEOUT.from_env() if statement_timeout_ms is None
                                else STATEMENT_TIMEOUT.check(statement_timeout_ms))
        self.session = WorkSession(db, statement_timeout_ms=statement_timeout_ms)
        self.db = db
        self.batch_size = BATCH_SIZE.check(batch_size)
        self.hot_key_limit = HOT_KEY_LIMIT.from_env() if hot_key_limit is None else HOT_KEY_LIMIT.check(hot_key_limit)
        self.triggered_by = triggered_by
        self.external_run_id = external_run_id
        self.run_lock_timeout = RUN_LOCK_WAIT.check(run_lock_timeout)
        self.progress = progress or Progress()  # told the leads of each step and of each batch done
        self.skip_if_running = skip_if_running
        # re-read every source row: a row whose fingerprint changed is changed, whatever its updated_at
        self.full = full
        self.lock_wait_s = 0.0
        self.last_alert_metrics: dict[str, int] | None = None

    # ------------------------------------------------------------------ connections (engine.session)

    @property
    def statements(self) -> StatementCounter:
        return self.session.statements

    def _connect(self):
        return self.session.connect()

    def _tx(self, conn: Connection):
        return self.session.tx(conn)

    def _work(self, conn: Connection, dry_run: bool):
        return self.session.work(conn, dry_run)

    def _exec(self, conn: Connection, sql: str, params: dict | None = None) -> psycopg.Cursor:
        return self.session.exec(conn, sql, params)

    def _run_file(self, conn: Connection, name: str, params: dict | None = None) -> psycopg.Cursor:
        return self.session.run_file(conn, f"reconcile/{name}", params)

    # ------------------------------------------------------------------ the runbook API

    def run_reconcile(
        self,
        process_recent: bool = True,
        recent_days: int = 30,
        process_limbo: bool = True,
        limbo_stages: Sequence[str] = LIMBO_STAGES,
        *,
        anchor: dt.datetime | None = None,
        dry_run: bool = False,
        snapshots: bool = True,
    ) -> dict:
        """Run the whole job; return the statistics (the runbook's keys and a few more)."""
        stages = validate_stages(limbo_stages)
        recent_days = RECENT_DAYS.check(recent_days)
        anchor = _aware(anchor) if anchor else dt.datetime.now(dt.UTC)
        params = {
            "process_recent": bool(process_recent),
            "recent_days": int(recent_days),
            "process_limbo": bool(process_limbo),
            "limbo_stages": list(stages),
            "anchor": anchor.isoformat(),
            "batch_size": self.batch_size,
            "dry_run": dry_run,
            "full": self.full,
        }
        try:
            stats = self._run(params, anchor, recent_days, process_recent, process_limbo, stages, dry_run, snapshots)
        except (sqlalchemy.exc.DBAPIError, psycopg.Error) as exc:
            timeout = self._as_timeout(exc)
            if timeout:
                raise timeout from exc
            raise
        log.info("run %s finished: %s", stats["run_id"], {k: stats[k] for k in STAT_KEYS})
        return stats

    def _run(self, params: dict, anchor: dt.datetime, recent_days: int, process_recent: bool,
             process_limbo: bool, stages: Sequence[str], dry_run: bool, snapshots: bool) -> dict:
        with self._connect() as conn, self._run_lock(conn):
            started = time.monotonic()  # after the lock: the duration excludes waiting for another run
            run_id = self.start_run(conn, params, dry_run=dry_run)
            stats = empty_stats()
            stats["lock_wait_s"] = round(self.lock_wait_s, 3)
            try:
                with self._work(conn, dry_run):
                    if snapshots:
                        stats["limbo_before"] = self.snapshot_limbo(conn, run_id, "before", anchor, recent_days)
                    add_stats(stats, self._recent_step(conn, run_id, anchor, recent_days, process_recent))
                    if process_limbo:
                        add_stats(stats, self._range_step(conn, None, None, run_id=run_id, anchor=anchor,
                                                            process_recent=False, process_limbo=True,
                                                            limbo_stages=stages))
                    add_stats(stats, self._finish_work(conn, run_id, anchor, recent_days, snapshots=snapshots))
            except BaseException as exc:
                timeout = self._as_timeout(exc)
                error = str(timeout) if timeout else f"{type(exc).__name__}: {exc}"
                self.finish_run(conn, run_id, "failed", stats, error=error)
                if timeout:
                    raise timeout from exc
                raise
            stats["run_id"] = run_id
            stats["seconds"] = round(time.monotonic() - started, 3)
            self.finish_run(conn, run_id, "success", stats)
        return stats

    # One run sequence, composed of the same steps whether run_reconcile runs them in one process or
    # the DAG runs them as tasks: (1) driver accounts, then mark what changed upstream, then the
    # recent leads; (2) the limbo backlog, one lead-id range per mapped task (run_reconcile: one range);
    # (3) finish. Lead batches write identities and mark their leads; each step then recomputes the
    # marked leads of its own id range, and finish recomputes whatever marks are left.

    def _recent_step(
        self, conn: Connection, run_id: int, anchor: dt.datetime, recent_days: int, include_leads: bool
    ) -> dict:
        stats = self.reconcile_drivers(conn, run_id, anchor)
        add_stats(stats, changes.mark_changes(self.session, conn))
        if include_leads:
            ids = self.select_work_leads(
                conn, anchor=anchor, recent_days=recent_days, process_recent=True, process_limbo=False
            )
            add_stats(stats, self._lead_batches(conn, ids, run_id, anchor))
        return stats

    def _range_step(self, conn: Connection, lo: int | None, hi: int | None, *, run_id: int, anchor: dt.datetime,
                    **scope) -> dict:
        ids = self.select_work_leads(conn, anchor=anchor, lo=lo, hi=hi, **scope)
        return self._lead_batches(conn, ids, run_id, anchor, lo=lo, hi=hi)

    def _lead_batches(self, conn: Connection, ids: Sequence[int], run_id: int, anchor: dt.datetime,
                      lo: int | None = None, hi: int | None = None) -> dict:
        """Identity work in batches, then the funnel state of the marked leads of [lo, hi] (default: the
        span of ``ids``)."""
        stats = empty_stats()
        self.progress.add_total(len(ids))
        for batch in chunks(ids, self.batch_size):
            add_stats(stats, self.reconcile_batch(conn, batch, run_id=run_id, anchor=anchor))
            self.progress.advance(len(batch))
        if lo is None and hi is None:
            if not ids:
                return stats
            lo, hi = ids[0], ids[-1]  # select_work_leads returns ids in order
        return add_stats(stats, funnel_state.refresh_marked(self.session, conn, run_id, lo=lo, hi=hi))

    def _finish_work(
        self, conn: Connection, run_id: int, anchor: dt.datetime, recent_days: int, *, snapshots: bool = True
    ) -> dict:
        """After the lead work: recompute every lead still marked, carry unlinked records into today's
        unmatched snapshot, take the after-snapshot and the alert metrics."""
        out: dict = funnel_state.refresh_marked(self.session, conn, run_id)
        out["unmatched_carried_forward"] = self.carry_forward_unmatched(conn, run_id, anchor)
        if snapshots:
            out["limbo_after"] = self.snapshot_limbo(conn, run_id, "after", anchor, recent_days)
            out["alert_metrics"] = self.last_alert_metrics
        else:
            out["alert_metrics"] = self.alert_metrics(conn, anchor)
        return out

    def verify(self, max_rows: int = 100) -> tuple[int, list[funnel_state.Difference]]:
        """Compare the kept funnel state with the live views in full: (differences, the first of them)."""
        with self._connect() as conn:
            return funnel_state.verify(self.session, conn, max_rows=max_rows)

    # ------------------------------------------------------------------ step API (one Airflow task each)
    # Each step opens its own connection (from the Engine) and commits its own work; with
    # dry_run=True it rolls its work back (run records and snapshots are still written).

    def begin_run(self, params: dict, *, dry_run: bool = False) -> int:
        with self._connect() as conn:
            return self.start_run(conn, params, dry_run=dry_run)

    def end_run(self, run_id: int, status: str, stats: dict, error: str | None = None) -> None:
        with self._connect() as conn:
            self.finish_run(conn, run_id, status, stats, error=error)

    def take_snapshot(self, run_id: int, phase: str, anchor: dt.datetime, recent_days: int = 30) -> dict[str, int]:
        with self._connect() as conn:
            return self.snapshot_limbo(conn, run_id, phase, anchor, recent_days)

    def reconcile_recent(
        self,
        run_id: int,
        anchor: dt.datetime,
        recent_days: int = 30,
        *,
        include_leads: bool = True,
        dry_run: bool = False,
    ) -> dict[str, int]:
        """Driver accounts first, then mark what changed upstream, then (unless ``include_leads`` is
        false) the leads of [anchor - recent_days, anchor) that need work."""
        with self._connect() as conn, self._work(conn, dry_run):
            return self._recent_step(conn, run_id, anchor, recent_days, include_leads)

    def plan_limbo(
        self, anchor: dt.datetime, limbo_stages: Sequence[str] = LIMBO_STAGES, *, max_ranges: int = 64
    ) -> list[LeadRange]:
        """The limbo backlog that needs work, cut into at most ``max_ranges`` ranges of whole batches."""
        with self._connect() as conn:
            ids = self.select_work_leads(
                conn, anchor=anchor, process_recent=False, process_limbo=True,
                limbo_stages=validate_stages(limbo_stages),
            )
        return self.plan_lead_ranges(ids, max_ranges)

    def reconcile_limbo_range(
        self,
        run_id: int,
        lead_range: LeadRange,
        anchor: dt.datetime,
        limbo_stages: Sequence[str] = LIMBO_STAGES,
        *,
        dry_run: bool = False,
    ) -> dict[str, int]:
        with self._connect() as conn, self._work(conn, dry_run):
            return self._range_step(
                conn, lead_range.lo, lead_range.hi, run_id=run_id, anchor=anchor, process_recent=False,
                process_limbo=True, limbo_stages=validate_stages(limbo_stages),
            )

    def finish_work(self, run_id: int, anchor: dt.datetime, recent_days: int = 30, *, dry_run: bool = False) -> dict:
        with self._connect() as conn, self._work(conn, dry_run):
            return self._finish_work(conn, run_id, anchor, recent_days)

    def alert_metrics(self, conn: Connection, anchor: dt.datetime) -> dict[str, int]:
        with self._tx(conn):
            row = self._exec(conn, read_sql("funnel/alert_metrics.sql"), {"anchor": anchor}).fetchone()
        return row._asdict()

    def previous_alert_metrics(self, run_id: int) -> dict[str, int] | None:
        with self._connect() as conn, self._tx(conn):
            row = self._run_file(conn, "previous_alert_metrics", {"run_id": run_id}).fetchone()
        return row.alert_metrics if row else None

    # ------------------------------------------------------------------ run records and locks

    @contextlib.contextmanager
    def _run_lock(self, conn: Connection) -> Iterator[None]:
        """Session-level advisory lock held for the whole run. When another run holds it: skip at once
        (``skip_if_running``), or say once which run we wait for and wait up to ``run_lock_timeout``
        seconds. ``lock_wait_s`` is how long we waited."""
        started = time.monotonic()
        announced = False
        while True:
            with self.session.tx(conn, bookkeeping=True):
                got = self._exec(conn, "select pg_try_advisory_lock(%(k)s)", {"k": RUN_LOCK_KEY}).fetchone()[0]
            if got:
                break
            holder = self._running_run(conn)
            if self.skip_if_running:
                raise RunSkipped(f"skipped: {holder} is running")
            if time.monotonic() - started >= self.run_lock_timeout:
                raise RunLockTimeout(f"gave up after waiting {self.run_lock_timeout:g} s for {holder} to finish")
            if not announced:
                log.warning("waiting up to %g s for %s to finish", self.run_lock_timeout, holder)
                announced = True
            time.sleep(0.2)
        self.lock_wait_s = time.monotonic() - started
        try:
            yield
        finally:
            with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError, psycopg.Error):
                if conn.in_transaction():
                    conn.rollback()
                with self.session.tx(conn, bookkeeping=True):
                    self._exec(conn, "select pg_advisory_unlock(%(k)s)", {"k": RUN_LOCK_KEY})

    def _running_run(self, conn: Connection) -> str:
        """'run 12 (cli, started 2026-03-20 12:00 UTC)': the run record of the run holding the lock."""
        with self.session.tx(conn, bookkeeping=True):
            row = self._run_file(conn, "running_run").fetchone()
        if row is None:
            return "another reconcile run"
        return f"run {row.run_id} ({row.triggered_by}, started {row.started_at:%Y-%m-%d %H:%M:%S %Z})"

    def _as_timeout(self, exc: BaseException) -> StatementTimeout | None:
        orig = exc.orig if isinstance(exc, sqlalchemy.exc.DBAPIError) else exc
        if not isinstance(orig, psycopg.errors.QueryCanceled):
            return None
        limit = (f"{self.session.statement_timeout_ms} ms (CABINET_LEADS_STATEMENT_TIMEOUT)"
                 if self.session.statement_timeout_ms is not None else "the server's or role's statement_timeout")
        return StatementTimeout(f"statement timeout: {self.session.last_statement} was cancelled after {limit}")

    def start_run(self, conn: Connection, params: dict, *, dry_run: bool = False) -> int:
        """Record the run (committed at once and durably: run records are logs, dry runs are recorded too)."""
        with self.session.tx(conn, bookkeeping=True):
            return self._run_file(
                conn,
                "start_run",
                {
                    "triggered_by": self.triggered_by,
                    "external_run_id": self.external_run_id,
                    "dry_run": dry_run,
                    "parameters": json.dumps(params, default=str),
                },
            ).fetchone()[0]

    def finish_run(self, conn: Connection, run_id: int, status: str, stats: dict, error: str | None = None) -> None:
        if conn.in_transaction():
            conn.rollback()
        with self.session.tx(conn, bookkeeping=True):
            self._run_file(
                conn,
                "finish_run",
                {"run_id": run_id, "status": status, "stats": json.dumps(stats, default=str), "error": error},
            )

    # ------------------------------------------------------------------ pieces on one connection

    def snapshot_limbo(
        self, conn: Connection, run_id: int, phase: str, anchor: dt.datetime, recent_days: int = 30
    ) -> dict[str, int]:
        """Record and return the limbo distribution (stage -> leads) for trends and alerts."""
        with self._tx(conn):
            rows = self._run_file(
                conn,
                "record_snapshot",
                {"run_id": run_id, "phase": phase, "anchor": anchor, "recent_days": recent_days},
            ).fetchall()
        counts = dict.fromkeys(STAGES, 0)
        counts.update({r.limbo_stage: r.lead_count for r in rows})
        week = {r.limbo_stage: r.week_count for r in rows}
        # the same numbers as funnel/alert_metrics.sql, from the snapshot's scan of the view
        self.last_alert_metrics = {
            "limbo_no_identity_last_week": week.get("NO_IDENTITY", 0),
            "limbo_trips_no_claim": counts["TRIPS_NO_CLAIM"],
        }
        return counts

    def carry_forward_unmatched(self, conn: Connection, run_id: int, anchor: dt.datetime) -> int:
        with self._tx(conn):
            return self._run_file(
                conn, "carry_forward_unmatched", {"run_id": run_id, "snapshot_date": lima_date(anchor)}
            ).fetchone()[0]

    def select_work_leads(
        self,
        conn: Connection,
        *,
        anchor: dt.datetime,
        recent_days: int = 30,
        process_recent: bool = True,
        process_limbo: bool = True,
        limbo_stages: Sequence[str] = LIMBO_STAGES,
        lo: int | None = None,
        hi: int | None = None,
    ) -> list[int]:
        """Ids of the leads of a scope that need work, in arrival order."""
        with self._tx(conn):
            rows = self._run_file(
                conn,
                "select_work_leads",
                {
                    "anchor": anchor,
                    "recent_days": recent_days,
                    "process_recent": process_recent,
                    "process_limbo": process_limbo,
                    "limbo_stages": list(limbo_stages),
                    "lo": lo,
                    "hi": hi,
                    "full_check": self.full,
                },
            )
            return [r[0] for r in rows]

    def plan_lead_ranges(self, ids: Sequence[int], max_ranges: int) -> list[LeadRange]:
        """Cut sorted lead ids into at most ``max_ranges`` ranges of whole batches (for mapped tasks)."""
        if not ids:
            return []
        batches = -(-len(ids) // self.batch_size)
        per_range = -(-batches // max(1, max_ranges)) * self.batch_size
        out = []
        for start in range(0, len(ids), per_range):
            part = ids[start : start + per_range]
            out.append(LeadRange(part[0], part[-1], len(part)))
        return out

    def reconcile_drivers(self, conn: Connection, run_id: int, anchor: dt.datetime) -> dict[str, int]:
        """Link new or changed driver accounts into the registry (before leads)."""
        with self._tx(conn):
            ids = [r[0] for r in self._run_file(conn, "select_work_drivers", {"full_check": self.full})]
        stats = empty_stats()
        for batch in chunks(ids, self.batch_size):
            add_stats(stats, self._with_retries(conn, lambda b=batch: self._identity_batch(conn, DRIVERS, b, run_id, anchor)))
        return stats

    def reconcile_batch(
        self, conn: Connection, lead_ids: Sequence[int], *, run_id: int, anchor: dt.datetime | None = None
    ) -> dict[str, int]:
        """One batch of leads: identity, driver mapping, funnel state and claim worklist, one transaction."""
        anchor = _aware(anchor) if anchor else dt.datetime.now(dt.UTC)
        return self._with_retries(conn, lambda: self._identity_batch(conn, LEADS, list(lead_ids), run_id, anchor))

    # ------------------------------------------------------------------ one batch

    def _with_retries(self, conn: Connection, work) -> dict[str, int]:
        for attempt in range(1, BATCH_RETRIES + 1):
            try:
                stats = work()
                stats["retries"] = attempt - 1
                return stats
            except sqlalchemy.exc.DBAPIError as exc:
                retryable = isinstance(
                    exc.orig,
                    psycopg.errors.UniqueViolation | psycopg.errors.SerializationFailure | psycopg.errors.DeadlockDetected
                    | psycopg.errors.LockNotAvailable,
                )
                if not retryable or attempt == BATCH_RETRIES:
                    raise
                log.warning("batch conflicted with a concurrent writer (%s); retrying", type(exc.orig).__name__)
                time.sleep(0.05 * 2 ** attempt)  # backoff
        raise AssertionError("unreachable")

    def _identity_batch(
        self, conn: Connection, table: str, ids: list, run_id: int, anchor: dt.datetime
    ) -> dict[str, int]:
        before = self.statements.n
        stats = empty_stats()
        with self._tx(conn):
            self._exec(conn, "select pg_advisory_xact_lock(%(k)s)", {"k": IDENTITY_LOCK_KEY})
            rows = self._load_batch(conn, table, ids, anchor)
            records = [r for r in rows if r.linked_person_key is None]
            # linked records whose keys changed: the link stays (C0.1), a conflict is surfaced
            edited = [r for r in rows if r.linked_person_key is not None and r.renormalised]
            decisions = self._decide(conn, records, edited)
            self._write_decisions(conn, table, decisions, run_id, anchor)

            counts = Counter(u.reason_code for u in decisions.unmatched)
            stats["link_conflicts"] = counts[identity.LINK_CONFLICT]
            if table == LEADS:
                stats["processed"] = len(rows)
                stats["newly_linked"] = len(decisions.links)
                stats["still_no_candidates"] = counts[identity.NO_CANDIDATES]
                stats["conflicts"] = counts[identity.AMBIGUOUS]
                stats["errors"] = counts[identity.INVALID_DATA]
                changes.mark_leads(self.session, conn, ids)
            else:
                stats["drivers_processed"] = len(rows)
                stats["drivers_linked"] = len(decisions.links)
                stats["driver_conflicts"] = counts[identity.AMBIGUOUS]
                stats["errors"] = counts[identity.INVALID_DATA]
            stats["new_persons"] = len(decisions.new_persons)
            stats["batches"] = 1
        self.statements.per_batch.append(self.statements.n - before)
        return stats

    def _load_batch(self, conn: Connection, table: str, ids: list, anchor: dt.datetime) -> list[_Row]:
        """Load a batch; normalise the records whose source changed and store their keys."""
        name = "load_lead_batch" if table == LEADS else "load_driver_batch"
        rows = []
        stale = []
        keys = [str(i) for i in ids]
        params = {"ids": keys if table == DRIVERS else ids, "keys": keys, "max_len": MAX_FIELD_LENGTH}
        for r in self._run_file(conn, name, params):
            m = r._asdict()
            row = _Row(m["source_pk"], m["updated_at"], None, m["linked_person_key"], m["fingerprint"])
            if m["keys_fresh"]:
                row.keys = {
                    "phone": m["key_phone"],
                    "doc": m["key_doc"],
                    "license": m["key_license"],
                    "plate": m["key_plate"],
                    "name_folded": m["name_folded"],
                    "given_name": m["given_name"],
                    "problems": list(m["problems"] or []),
                    "invalid_reason": m["invalid_reason"],
                }
            else:
                row.keys = normalise_row(m, anchor)
                row.renormalised = True
                stale.append(row)
            rows.append(row)
        if stale:
            self._run_file(
                conn,
                "upsert_record_keys",
                {
                    "source_table": table,
                    "source_pk": [r.source_pk for r in stale],
                    "source_updated_at": [r.updated_at for r in stale],
                    "source_fingerprint": [r.fingerprint for r in stale],
                    "phone": [r.keys["phone"] for r in stale],
                    "doc": [r.keys["doc"] for r in stale],
                    "license": [r.keys["license"] for r in stale],
                    "plate": [r.keys["plate"] for r in stale],
                    "name_folded": [r.keys["name_folded"] for r in stale],
                    "given_name": [r.keys["given_name"] for r in stale],
                    "problems": [json.dumps(r.keys["problems"]) for r in stale],
                    "invalid_reason": [r.keys["invalid_reason"] for r in stale],
                },
            )
        return rows

    def _decide(self, conn: Connection, rows: list[_Row], edited: Sequence[_Row] = ()) -> identity.BatchDecisions:
        records = [_record(r) for r in rows]
        linked = [(_record(r), r.linked_person_key) for r in edited]
        every = records + [rec for rec, _ in linked]
        wanted = sorted({(k, v) for rec in every if not rec.invalid_reason for k, v in rec.keys.items()})
        owners: dict[tuple[str, str], int] = {}
        persons: dict[int, identity.Person] = {}
        hot: dict[tuple[str, str], dict] = {}
        if wanted:
            keys = {"key_types": [k for k, _ in wanted], "key_values": [v for _, v in wanted]}
            for f in self._run_file(conn, "find_key_owners", keys):
                owners[(f.key_type, f.key_value)] = f.person_key
                persons[f.person_key] = identity.Person(f.person_key, f.person_doc, f.name_folded, f.given_name)
            profiled = sorted(set(persons) | {p for _, p in linked})
            if profiled:
                for f in self._run_file(conn, "person_profiles", {"person_keys": profiled}):
                    person = persons.setdefault(f.person_key, identity.Person(f.person_key))
                    person.doc = person.doc or f.doc
                    person.licenses = set(f.licenses)
                    person.names = list(zip(f.given_names, f.full_names, strict=True))
            found = self._run_file(conn, "find_hot_keys", {**keys, "hot_limit": self.hot_key_limit, "scan": HOT_KEY_SCAN})
            for f in found:
                hot[(f.key_type, f.key_value)] = {"records": f.records, "given_names": f.given_names, "docs": f.docs}
        decisions = identity.match_batch(records, owners, persons, hot)
        decisions.unmatched += identity.link_conflicts(linked, owners, persons)
        return decisions

    def _write_decisions(
        self, conn: Connection, table: str, d: identity.BatchDecisions, run_id: int, anchor: dt.datetime
    ) -> None:
        real: dict[int, int] = {}
        if d.new_persons:
            temp_ids = sorted(d.new_persons, reverse=True)  # -1, -2, ...: creation order
            allocated = [r[0] for r in self._run_file(conn, "allocate_person_keys", {"n": len(temp_ids)})]
            real = dict(zip(temp_ids, allocated, strict=True))
            self._run_file(
                conn,
                "insert_persons",
                {
                    "run_id": run_id,
                    "person_key": allocated,
                    "name_folded": [d.new_persons[t].name for t in temp_ids],
                    "given_name": [d.new_persons[t].given_name for t in temp_ids],
                },
            )

        def key_of(p: int) -> int:
            return real.get(p, p)

        if d.attached_keys:
            items = list(d.attached_keys.items())
            self._run_file(
                conn,
                "insert_person_keys",
                {
                    "run_id": run_id,
                    "key_type": [k[0] for k, _ in items],
                    "key_value": [k[1] for k, _ in items],
                    "person_key": [key_of(p) for _, (p, _) in items],
                    "source_table": [table] * len(items),
                    "source_pk": [rec.source_pk for _, (_, rec) in items],
                },
            )
        if d.links:
            evidence = []
            for link in d.links:
                ev = dict(link.evidence)
                ev["run_id"] = run_id
                if link.person_key < 0:
                    ev["person_key"] = key_of(link.person_key)
                evidence.append(json.dumps(ev, sort_keys=True))
            self._run_file(
                conn,
                "insert_links",
                {
                    "source_table": table,
                    "run_id": run_id,
                    "source_pk": [link.record.source_pk for link in d.links],
                    "person_key": [key_of(link.person_key) for link in d.links],
                    "match_rule": [link.match_rule for link in d.links],
                    "evidence": evidence,
                },
            )
        if d.unmatched:
            self._run_file(
                conn,
                "upsert_unmatched",
                {
                    "source_table": table,
                    "run_id": run_id,
                    "snapshot_date": lima_date(anchor),
                    "source_pk": [u.record.source_pk for u in d.unmatched],
                    "reason_code": [u.reason_code for u in d.unmatched],
                    "evidence": [json.dumps(_resolve_temp(u.evidence, key_of), sort_keys=True) for u in d.unmatched],
                },
            )


# ---------------------------------------------------------------------- helpers


def _record(r: _Row) -> identity.Record:
    """What the matcher sees of a loaded row: its valid strong keys, folded names, problems."""
    return identity.Record(
        source_pk=r.source_pk,
        keys={k: v for k, v in (("PHONE", r.keys["phone"]), ("DOC", r.keys["doc"]), ("LICENSE", r.keys["license"]))
              if v},
        name=r.keys["name_folded"] or "",
        given_name=r.keys["given_name"] or "",
        problems=tuple(r.keys["problems"]),
        invalid_reason=r.keys["invalid_reason"],
    )


def _resolve_temp(evidence: dict, key_of) -> dict:
    """Replace temporary (negative) person keys in candidate lists with the allocated ones."""
    if "candidates" in evidence:
        evidence = dict(evidence)
        evidence["candidates"] = [
            {**c, "person_key": key_of(c["person_key"])} for c in evidence["candidates"]
        ]
    return evidence


def invalid_reason(m, anchor: dt.datetime) -> str | None:
    """Why a loaded record cannot be processed (its columns named), or None. The load statement
    decided in SQL what Python can hold: ``unrepresentable`` names timestamp columns outside years
    1-9999, ``field_lengths`` gives the true lengths of the fields it cut to ``MAX_FIELD_LENGTH``."""
    if m["unrepresentable"]:
        return f"{m['unrepresentable']}: not a representable timestamp (supported: years 1 to 9999)"
    for name, length in zip(FIELDS, m["field_lengths"], strict=True):
        if length is not None and length > MAX_FIELD_LENGTH:
            return f"{name} is {length} characters long (limit {MAX_FIELD_LENGTH})"
    created = m["lead_created_at"]
    if created is not None and created > anchor + dt.timedelta(days=1):
        return f"lead_created_at {created.isoformat()} is in the future"
    return None


_NO_KEYS = {"phone": None, "doc": None, "license": None, "plate": None, "name_folded": "", "given_name": "",
            "problems": []}


def normalise_row(m, anchor: dt.datetime) -> dict:
    """Normalised keys of one raw record; a record that cannot be processed gets an invalid_reason
    and is not normalised at all (no work, nothing stored beyond the reason)."""
    invalid = invalid_reason(m, anchor)
    if invalid:
        return {**_NO_KEYS, "invalid_reason": invalid}
    try:
        nk = normalize_record(
            m["first_name"], m["last_name"], m["phone"], m["document_number"], m["license_number"], m["plate"]
        )
    except Exception as exc:  # one bad record never sinks its batch
        return {**_NO_KEYS, "invalid_reason": f"normalisation failed: {type(exc).__name__}: {exc}"[:MAX_FIELD_LENGTH]}
    return {
        "phone": nk.phone,
        "doc": nk.doc,
        "license": nk.license,
        "plate": nk.plate,
        "name_folded": nk.name,
        "given_name": nk.given_name,
        "problems": list(nk.problems),
        "invalid_reason": nk.invalid_reason,
    }


def chunks(seq: Sequence, size: int) -> Iterator[list]:
    for start in range(0, len(seq), size):
        yield list(seq[start : start + size])


def lima_date(ts: dt.datetime) -> dt.date:
    return _aware(ts).astimezone(LIMA).date()


def _aware(ts: dt.datetime) -> dt.datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)


__all__ = ["ReconcileCabinetLeadsPipeline", "LeadRange", "STAT_KEYS", "empty_stats", "add_stats"]
