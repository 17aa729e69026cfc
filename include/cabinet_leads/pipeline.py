"""ReconcileCabinetLeadsPipeline: the runbook's job, set-based and C0-safe; the thin front that
composes the engine's steps (:mod:`cabinet_leads.engine`).

A run (``run_reconcile``) is: take the run lock, record the run, snapshot the limbo distribution,
link new or changed driver accounts, mark what changed upstream, work through the recent leads and
then the limbo backlog (one lead-id range, or ``workers`` ranges in parallel as the DAG's mapped
tasks do), recompute the funnel state of the marked leads, carry yesterday's unmatched records
into today's snapshot, snapshot again and record the result.

The work of a scope (a range, the recent window, the driver accounts) has two phases:

1. record keys (:mod:`~cabinet_leads.engine.record_keys`): the records whose source changed are
   loaded, normalised once per change and stored, thousands per transaction, no lock held;
2. identity (:mod:`~cabinet_leads.engine.linking`), in batches of ``batch_size``: each batch is one
   transaction with a constant number of statements that holds the identity lock only for the
   decision (candidates, match, writes), so parallel ranges serialise there and nowhere else.

Then the funnel state (:mod:`~cabinet_leads.engine.funnel_state`) of the range's marked leads.
Hot keys are decided with every record key of the scope already stored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import psycopg
import sqlalchemy.exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from cabinet_leads.db import DbLike, read_sql
from cabinet_leads.engine import changes, funnel_state, linking, record_keys, runs
from cabinet_leads.engine.linking import IDENTITY_LOCK_KEY, lima_date
from cabinet_leads.engine.progress import Progress
from cabinet_leads.engine.runs import (
    EXTRA_KEYS,
    RUN_LOCK_KEY,
    STAT_KEYS,
    RunLockTimeout,
    RunSkipped,
    StatementTimeout,
    add_stats,
    empty_stats,
)
from cabinet_leads.engine.session import DRIVERS, LEADS, StatementCounter, WorkSession, chunks, with_retries
from cabinet_leads.funnel import LIMBO_STAGES, STAGES
from cabinet_leads.params import (
    BATCH_SIZE,
    HOT_KEY_LIMIT,
    RECENT_DAYS,
    RUN_LOCK_WAIT,
    STATEMENT_TIMEOUT,
    validate_stages,
)

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = BATCH_SIZE.default
MAX_WORKERS = 8


@dataclass(frozen=True)
class LeadRange:
    """A contiguous range of lead ids holding ``leads`` leads that need work (one Airflow task)."""

    lo: int
    hi: int
    leads: int


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
        workers: int = 1,
    ) -> dict:
        """Run the whole job; return the statistics (the runbook's keys and a few more). ``workers``
        (1-8) works through the limbo backlog as that many lead-id ranges in parallel, each on its
        own connection, the way the DAG's mapped tasks do."""
        stages = validate_stages(limbo_stages)
        recent_days = RECENT_DAYS.check(recent_days)
        if not 1 <= int(workers) <= MAX_WORKERS:
            raise ValueError(f"workers must be between 1 and {MAX_WORKERS}, got {workers}")
        if dry_run and workers > 1:
            raise ValueError("a dry run is one transaction rolled back at the end: it cannot use workers > 1")
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
            "workers": int(workers),
        }
        try:
            stats = self._run(params, anchor, recent_days, process_recent, process_limbo, stages, dry_run, snapshots,
                              int(workers))
        except (sqlalchemy.exc.DBAPIError, psycopg.Error) as exc:
            timeout = runs.as_timeout(self.session, exc)
            if timeout:
                raise timeout from exc
            raise
        log.info("run %s finished: %s", stats["run_id"], {k: stats[k] for k in STAT_KEYS})
        return stats

    def _run(self, params: dict, anchor: dt.datetime, recent_days: int, process_recent: bool,
             process_limbo: bool, stages: Sequence[str], dry_run: bool, snapshots: bool, workers: int = 1) -> dict:
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
                        add_stats(stats, self._limbo_step(conn, run_id, anchor, stages, workers))
                    add_stats(stats, self._finish_work(conn, run_id, anchor, recent_days, snapshots=snapshots))
            except BaseException as exc:
                timeout = runs.as_timeout(self.session, exc)
                error = str(timeout) if timeout else f"{type(exc).__name__}: {exc}"
                self.finish_run(conn, run_id, "failed", stats, error=error)
                if timeout:
                    raise timeout from exc
                raise
            stats["run_id"] = run_id
            stats["seconds"] = round(time.monotonic() - started, 3)
            stats["identity_lock_wait_s"] = round(stats["identity_lock_wait_s"], 3)
            self.finish_run(conn, run_id, "success", stats)
        return stats

    # One run sequence, composed of the same steps whether run_reconcile runs them in one process or
    # the DAG runs them as tasks: (1) driver accounts, then mark what changed upstream, then the
    # recent leads; (2) the limbo backlog, one lead-id range per mapped task (run_reconcile: one
    # range, or one per worker thread); (3) finish. Lead work stores record keys, then writes
    # identities and marks its leads in batches; each step then recomputes the marked leads of its
    # own id range, and finish recomputes whatever marks are left.

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

    def _limbo_step(self, conn: Connection, run_id: int, anchor: dt.datetime, stages: Sequence[str],
                    workers: int) -> dict:
        """The limbo backlog: one range on ``conn``, or ``workers`` ranges in parallel threads, each a
        ``reconcile_limbo_range`` step on its own connection (as the DAG's mapped tasks)."""
        scope = {"process_recent": False, "process_limbo": True, "limbo_stages": stages}
        if workers == 1:
            return self._range_step(conn, None, None, run_id=run_id, anchor=anchor, **scope)
        ranges = self.plan_lead_ranges(self.select_work_leads(conn, anchor=anchor, **scope), workers)
        results: list[dict | None] = [None] * len(ranges)
        errors: list[tuple[int, BaseException]] = []
        helpers = [self._worker() for _ in ranges]

        def work(i: int) -> None:
            try:
                results[i] = helpers[i].reconcile_limbo_range(run_id, ranges[i], anchor, stages)
            except BaseException as exc:  # re-raised below, in the run's thread
                errors.append((i, exc))

        threads = [threading.Thread(target=work, args=(i,), name=f"reconcile-range-{i}") for i in range(len(ranges))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = empty_stats()
        for helper, part in zip(helpers, results, strict=True):
            self.statements.n += helper.statements.n
            self.statements.per_batch += helper.statements.per_batch
            self.session.timings.add(helper.session.timings)
            if part is not None:
                add_stats(stats, part)
        if errors:
            failed, exc = errors[0]
            self.session.last_statement = helpers[failed].session.last_statement  # what a timeout names
            raise exc
        return stats

    def _worker(self) -> ReconcileCabinetLeadsPipeline:
        """A pipeline with the same settings on its own connections (one per parallel range)."""
        target = self.db
        if isinstance(target, Session):
            target = target.get_bind()
        if not isinstance(target, Engine):
            target = target.engine
        worker = ReconcileCabinetLeadsPipeline(
            target, batch_size=self.batch_size, triggered_by=self.triggered_by, external_run_id=self.external_run_id,
            full=self.full, statement_timeout_ms=self.session.statement_timeout_ms, hot_key_limit=self.hot_key_limit)
        return worker

    def _range_step(self, conn: Connection, lo: int | None, hi: int | None, *, run_id: int, anchor: dt.datetime,
                    **scope) -> dict:
        ids = self.select_work_leads(conn, anchor=anchor, lo=lo, hi=hi, **scope)
        return self._lead_batches(conn, ids, run_id, anchor, lo=lo, hi=hi)

    def _lead_batches(self, conn: Connection, ids: Sequence[int], run_id: int, anchor: dt.datetime,
                      lo: int | None = None, hi: int | None = None) -> dict:
        """The leads ``ids``: their record keys (no lock), then identity work in batches, then the
        funnel state of the marked leads of [lo, hi] (default: the span of ``ids``)."""
        self.progress.add_total(len(ids))
        stats = self._record_keys(conn, LEADS, ids, anchor)
        for batch in chunks(ids, self.batch_size):
            add_stats(stats, self._identity(conn, LEADS, batch, run_id, anchor))
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

    # ------------------------------------------------------------------ run records and locks (engine.runs)

    @contextlib.contextmanager
    def _run_lock(self, conn: Connection) -> Iterator[None]:
        """The run lock for the whole run (skip or wait as configured); ``lock_wait_s`` is how long we waited."""
        with runs.run_lock(self.session, conn, timeout=self.run_lock_timeout,
                           skip_if_running=self.skip_if_running) as waited:
            self.lock_wait_s = waited
            yield

    def start_run(self, conn: Connection, params: dict, *, dry_run: bool = False) -> int:
        """Record the run (committed at once and durably: run records are logs, dry runs are recorded too)."""
        return runs.start_run(self.session, conn, params, triggered_by=self.triggered_by,
                              external_run_id=self.external_run_id, dry_run=dry_run)

    def finish_run(self, conn: Connection, run_id: int, status: str, stats: dict, error: str | None = None) -> None:
        runs.finish_run(self.session, conn, run_id, status, stats, error=error)

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
        """Link new or changed driver accounts into the registry (before leads): their record keys,
        then identity in batches."""
        with self._tx(conn):
            ids = [r[0] for r in self._run_file(conn, "select_work_drivers", {"full_check": self.full})]
        stats = self._record_keys(conn, DRIVERS, ids, anchor)
        for batch in chunks(ids, self.batch_size):
            add_stats(stats, self._identity(conn, DRIVERS, batch, run_id, anchor))
        return stats

    def reconcile_batch(
        self, conn: Connection, lead_ids: Sequence[int], *, run_id: int, anchor: dt.datetime | None = None
    ) -> dict[str, int]:
        """One batch of leads: their record keys, then their identities (one transaction); marks them
        for the funnel state."""
        anchor = _aware(anchor) if anchor else dt.datetime.now(dt.UTC)
        stats = self._record_keys(conn, LEADS, list(lead_ids), anchor)
        return add_stats(stats, self._identity(conn, LEADS, list(lead_ids), run_id, anchor))

    # ------------------------------------------------------------------ the two phases (engine.record_keys, .linking)

    def _record_keys(self, conn: Connection, table: str, ids: Sequence, anchor: dt.datetime) -> dict:
        """Normalise and store the keys of the records of ``ids`` whose source changed (no lock)."""
        return add_stats(empty_stats(), record_keys.refresh(self.session, conn, table, ids, anchor))

    def _identity(self, conn: Connection, table: str, ids: list, run_id: int, anchor: dt.datetime) -> dict:
        """One identity batch (one transaction, retried when it lost a race)."""
        return with_retries(lambda: linking.identity_batch(self.session, conn, table, list(ids), run_id, anchor,
                                                           hot_key_limit=self.hot_key_limit))


# ---------------------------------------------------------------------- helpers




def _aware(ts: dt.datetime) -> dt.datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)


__all__ = [
    "EXTRA_KEYS",
    "IDENTITY_LOCK_KEY",
    "RUN_LOCK_KEY",
    "STAT_KEYS",
    "LeadRange",
    "ReconcileCabinetLeadsPipeline",
    "RunLockTimeout",
    "RunSkipped",
    "StatementTimeout",
    "add_stats",
    "chunks",
    "empty_stats",
    "lima_date",
]
