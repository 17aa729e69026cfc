"""One connection per run (or per DAG step), one transaction per unit of work, SQL files run with
bound parameters. Shared by every engine module, so none of them needs the pipeline class."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import psycopg
import sqlalchemy.exc
from psycopg.rows import namedtuple_row
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from cabinet_leads.db import DbLike, raw, read_sql

log = logging.getLogger("cabinet_leads.pipeline")

LEADS = "module_ct_cabinet_leads"
DRIVERS = "drivers"
RETRIES = 3  # attempts of a unit of work that lost a race with a concurrent writer


@dataclass
class StatementCounter:
    """Counts SQL statements sent (for the benchmark's statements per batch)."""

    n: int = 0
    per_batch: list[int] = field(default_factory=list)


@dataclass
class Timings:
    """Where a session's time went, for the benchmark: each identity batch (ms, leads and driver
    accounts apart), the record-keys phases and the waits for the identity lock (s)."""

    lead_batch_ms: list[float] = field(default_factory=list)
    driver_batch_ms: list[float] = field(default_factory=list)
    record_keys_s: float = 0.0
    identity_lock_wait_s: float = 0.0

    def add(self, other: Timings) -> None:
        self.lead_batch_ms += other.lead_batch_ms
        self.driver_batch_ms += other.driver_batch_ms
        self.record_keys_s += other.record_keys_s
        self.identity_lock_wait_s += other.identity_lock_wait_s


class WorkSession:
    """Where the job's SQL goes: ``db`` is a SQLAlchemy ``Session``, ``Connection`` or ``Engine``."""

    def __init__(self, db: DbLike, *, statement_timeout_ms: int | None = None) -> None:
        if not isinstance(db, Session | Connection | Engine):
            raise TypeError(f"db must be a SQLAlchemy Session, Connection or Engine, not {type(db).__name__}")
        self.db = db
        self.statement_timeout_ms = statement_timeout_ms
        self.statements = StatementCounter()
        self.timings = Timings()
        self.dry_conn: Connection | None = None
        self.last_statement = ""
        self._sql_cache: dict[str, str] = {}

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for the whole run (the caller's, or a new one from the Engine)."""
        target = self.db
        if isinstance(target, Session):
            # A Session may hand out a new pooled connection after each commit, which would lose
            # the run's session-level lock: work on the engine (or connection) it is bound to.
            if target.in_transaction():
                target.commit()
            target = target.get_bind()
        if isinstance(target, Engine):
            with target.connect() as conn:
                yield conn
        else:
            yield target

    @contextlib.contextmanager
    def tx(self, conn: Connection, *, bookkeeping: bool = False) -> Iterator[Connection]:
        """One unit of work: its own transaction, or a savepoint inside a dry run's transaction.
        ``bookkeeping`` (the run lock, run records) is written durably and is not subject to the job's
        statement limit, so a run that hits the limit can still record that it failed."""
        if self.dry_conn is not None:
            with conn.begin_nested():
                yield conn
            return
        if conn.in_transaction():
            conn.commit()
        with conn.begin():
            self._set_timeouts(conn, bookkeeping)
            yield conn

    @contextlib.contextmanager
    def work(self, conn: Connection, dry_run: bool) -> Iterator[None]:
        """A run's work: committed unit by unit, or (dry run) one transaction rolled back at the end."""
        if not dry_run:
            yield
            return
        if conn.in_transaction():
            conn.commit()
        outer = conn.begin()
        self.dry_conn = conn
        try:
            yield
        finally:
            self.dry_conn = None
            outer.rollback()

    def _set_timeouts(self, conn: Connection, bookkeeping: bool = False) -> None:
        # A batch is idempotent and re-run by the next run, so it need not wait for the WAL flush
        # (a server crash may lose the last batches, never corrupt them); run records must survive a
        # crash. The statement limit is ours only when configured: unset, the server's or role's
        # own statement_timeout stands (never silently unlimited). No JIT: the job's statements are
        # many and short, and a stock server's JIT compiles for longer than they run (1.4 s of a 2.1 s
        # funnel recompute on PostgreSQL 15). One statement for all three.
        self.exec(
            conn,
            "select set_config('synchronous_commit', %(sync)s, true) as sc,"
            " set_config('statement_timeout', coalesce(%(ms)s::text, current_setting('statement_timeout')), true) as st,"
            " set_config('jit', 'off', true) as jit",
            {"sync": "on" if bookkeeping else "off",
             "ms": None if self.statement_timeout_ms is None or bookkeeping else str(self.statement_timeout_ms)},
        )

    def sql(self, name: str) -> str:
        """Text of ``include/sql/<name>.sql`` (cached)."""
        if name not in self._sql_cache:
            self._sql_cache[name] = read_sql(f"{name}.sql")
        return self._sql_cache[name]

    def exec(self, conn: Connection, sql: str, params: dict | None = None, *, name: str | None = None
             ) -> psycopg.Cursor:
        """Run one statement on the driver connection, parameters bound (never formatted into the SQL);
        rows come back in binary, as named tuples. (Arrays of parameters travel as text, escaped
        element by element: large documents travel better as one JSON array, see insert_links.sql.) ``name`` (or the statement's start) is
        remembered as ``last_statement``: what a statement timeout names."""
        self.statements.n += 1
        self.last_statement = name or " ".join(sql.split())[:60]
        cur = raw(conn).cursor(row_factory=namedtuple_row)
        return cur.execute(sql, params or {}, binary=True)

    def run_file(self, conn: Connection, name: str, params: dict | None = None) -> psycopg.Cursor:
        """Run ``include/sql/<name>.sql`` with bound parameters."""
        return self.exec(conn, self.sql(name), params, name=name)


def with_retries(work: Callable[[], dict]) -> dict:
    """``work()`` (one transaction), retried with backoff when it lost a race with a concurrent
    writer: a unique constraint of C0 refused its write, a deadlock, a serialisation failure or a
    lock timeout. ``retries`` in the returned statistics says how many attempts failed."""
    for attempt in range(1, RETRIES + 1):
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
            if not retryable or attempt == RETRIES:
                raise
            log.warning("batch conflicted with a concurrent writer (%s); retrying", type(exc.orig).__name__)
            time.sleep(0.05 * 2 ** attempt)  # backoff
    raise AssertionError("unreachable")


def chunks(seq: Sequence, size: int) -> Iterator[list]:
    for start in range(0, len(seq), size):
        yield list(seq[start : start + size])
