"""No poison pills in the CLI: seed never destroys data it did not write, passwords never reach a
terminal, bad input is one line (never a traceback), data never drives the terminal, and every
command refuses a database whose schema does not match this code. Real processes, real PostgreSQL."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest
import sqlalchemy as sa

from cabinet_leads import db, synthetic
from tests.conftest import drop_database, with_dbname
from tests.integration.test_cli import run_cli

LATEST = max((m.version for m in db.list_migrations()), key=int)
DB_COMMANDS = [
    ("reconcile",),
    ("limbo",),
    ("audit",),
    ("explain", "1"),
    ("report", "--html", "{tmp}/report.html"),
    ("health",),
]


def one_error_line(res, code: int = 1) -> str:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cabinet-leads"), res.stderr
    return lines[0]


def expand(args: tuple[str, ...], tmp_path) -> list[str]:
    return [a.replace("{tmp}", str(tmp_path)) for a in args]


def dump(pg: psycopg.Connection, table: str) -> list[tuple]:
    return pg.execute(f"select * from {table} t order by t::text").fetchall()  # noqa: S608 - constant names


def count(pg: psycopg.Connection, table: str) -> int:
    return pg.execute(f"select count(*) from {table}").fetchone()[0]  # noqa: S608 - constant names


@pytest.fixture
def empty_database(server_url: str) -> Iterator[str]:
    """A database with nothing in it (not migrated)."""
    name = "t_unmigrated_cli"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"')
    url = with_dbname(server_url, name)
    yield url
    drop_database(server_url, url)


# ----------------------------------------------------------------------------- 1. the seed guard


def insert_foreign_rows(pg: psycopg.Connection) -> None:
    pg.execute(
        "insert into public.module_ct_cabinet_leads (external_id, lead_created_at, first_name) "
        "values ('real-1', now(), 'Rosa'), ('real-2', now(), 'Luis')"
    )
    pg.execute("insert into public.drivers (driver_id, first_name) values ('REAL-D1', 'Rosa')")
    pg.execute("insert into public.driver_daily_trips values ('REAL-D1', current_date, 7)")
    pg.execute("insert into public.milestone_claims values ('REAL-C1', 'REAL-D1', 5, now(), 'approved')")
    pg.execute("insert into ops.reconcile_runs (status, finished_at) values ('success', now())")


def test_seed_refuses_a_database_with_foreign_rows_and_leaves_every_row(db_url, pg):
    insert_foreign_rows(pg)
    before = {t: dump(pg, t) for t in (*synthetic.SOURCE_TABLES, *db.DERIVED_TABLES)}
    res = run_cli("seed", "--leads", "50", database_url=db_url)
    line = one_error_line(res)
    dbname = urlsplit(db_url).path.lstrip("/")
    assert f"'{dbname}'" in line and "--replace-existing-data" in line, line
    for table, n in (("module_ct_cabinet_leads", 2), ("drivers", 1), ("driver_daily_trips", 1), ("milestone_claims", 1)):
        assert f"public.{table} {n}" in line, line
    assert {t: dump(pg, t) for t in before} == before
    assert pg.execute("select to_regnamespace('demo')").fetchone()[0] is None  # refused before any change


def test_seed_replaces_foreign_rows_when_told(db_url, pg):
    insert_foreign_rows(pg)
    res = run_cli("seed", "--leads", "60", "--replace-existing-data", database_url=db_url)
    assert res.returncode == 0, res.stderr
    assert count(pg, "public.module_ct_cabinet_leads") == 60
    assert pg.execute("select count(*) from public.drivers where driver_id like 'REAL-%'").fetchone()[0] == 0
    assert count(pg, "ops.reconcile_runs") == 0


def test_reseeding_a_seeded_database_needs_no_flag_but_upstream_rows_make_it_refuse(db_url, pg):
    assert run_cli("seed", "--leads", "80", "--seed", "1", database_url=db_url).returncode == 0
    assert run_cli("reconcile", database_url=db_url).returncode == 0
    res = run_cli("seed", "--leads", "40", "--seed", "2", database_url=db_url)
    assert res.returncode == 0, res.stderr
    assert count(pg, "public.module_ct_cabinet_leads") == 40
    # an upstream loader added a row since: no longer only seeded data
    pg.execute("insert into public.module_ct_cabinet_leads (external_id, lead_created_at) values ('real', now())")
    kept = dump(pg, "public.module_ct_cabinet_leads")
    line = one_error_line(run_cli("seed", "--leads", "40", database_url=db_url))
    assert "public.module_ct_cabinet_leads 41" in line
    assert dump(pg, "public.module_ct_cabinet_leads") == kept


def test_seed_over_a_database_seeded_before_the_marker_existed(db_url, pg):
    synthetic.seed(db_url, leads=50, seed=3)
    pg.execute("drop table demo.seed_marker")  # as left by a seed() of an earlier version
    res = run_cli("seed", "--leads", "30", database_url=db_url)
    assert res.returncode == 0, res.stderr
    assert count(pg, "public.module_ct_cabinet_leads") == 30


def test_after_a_seed_upstream_inserts_with_a_default_id_work(db_url, pg):
    assert run_cli("seed", "--leads", "70", database_url=db_url).returncode == 0
    highest = pg.execute("select max(id) from public.module_ct_cabinet_leads").fetchone()[0]
    new_id = pg.execute(
        "insert into public.module_ct_cabinet_leads (external_id, lead_created_at) values ('upstream', now()) "
        "returning id"
    ).fetchone()[0]
    assert new_id == highest + 1


def test_after_a_seed_every_derived_table_is_empty_and_config_is_kept(db_url, pg):
    assert run_cli("seed", "--leads", "300", "--seed", "5", database_url=db_url).returncode == 0
    assert run_cli("reconcile", database_url=db_url).returncode == 0
    assert count(pg, "ops.weekly_funnel_snapshots") > 0 and count(pg, "canon.identity_links") > 0
    config = dump(pg, "ops.milestone_config")
    res = run_cli("seed", "--leads", "100", "--seed", "6", database_url=db_url)
    assert res.returncode == 0, res.stderr
    tables = [f"{s}.{t}" for s, t in pg.execute(
        "select schemaname, tablename from pg_tables where schemaname in ('canon', 'ops')")]
    assert "ops.weekly_funnel_snapshots" in tables
    assert {t: count(pg, t) for t in tables if t not in db.KEPT_TABLES} == dict.fromkeys(
        (t for t in tables if t not in db.KEPT_TABLES), 0)
    assert config and dump(pg, "ops.milestone_config") == config


def test_derived_and_kept_tables_cover_the_migrated_catalog(pg):
    """A migration that adds a table to canon or ops must say whether seed empties it."""
    tables = {f"{s}.{t}" for s, t in pg.execute(
        "select schemaname, tablename from pg_tables where schemaname in ('canon', 'ops')")}
    assert tables == set(db.DERIVED_TABLES) | set(db.KEPT_TABLES)
    assert not set(db.DERIVED_TABLES) & set(db.KEPT_TABLES)


def test_make_demo_never_replaces_existing_data():
    makefile = (db.PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    assert "cabinet-leads seed" in makefile and "--replace-existing-data" not in makefile


# ----------------------------------------------------------------------------- 2. secrets stay secret

SECRET_URLS = {
    "postgresql://u:p%40ss%20w%25rd@127.0.0.1:1/x": ("p@ss", "w%rd", "p%40ss", "w%25rd", "ss w", "ss%20w"),
    "postgresql://u:secret@[::1": ("secret",),
    "mysql://u:secret@h/db": ("secret",),
    "postgresql://u:p@ss w%rd@127.0.0.1:1/x": ("p@ss", "w%rd", "ss w"),
    "postgresql://u@127.0.0.1:1/x?password=secret": ("secret",),
}
ALL_COMMANDS = [*DB_COMMANDS, ("migrate",), ("seed", "--leads", "5"), ("url",), ("url", "--airflow"),
                ("url", "--json")]


@pytest.mark.parametrize("url", list(SECRET_URLS))
def test_no_command_prints_the_password(url, tmp_path):
    for args in ALL_COMMANDS:
        res = run_cli(*expand(args, tmp_path), database_url=url, timeout=60)
        output = res.stdout + res.stderr
        for fragment in SECRET_URLS[url]:
            assert fragment not in output, (args, output)
        if args[0] == "url" and res.returncode == 0:  # a well-formed URL is shown, masked
            assert "****" in res.stdout, res.stdout
        else:
            one_error_line(res)


def test_url_shows_the_password_only_when_asked():
    url = "postgresql://u:p%40ss%20w%25rd@127.0.0.1:1/x"
    assert run_cli("url", database_url=url).stdout.strip() == "postgresql://u:****@127.0.0.1:1/x"
    assert run_cli("url", "--show-password", database_url=url).stdout.strip() == url


def test_redact_masks_every_spelling_of_a_password(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p%40ss%20w%25rd@h/x")
    assert db.redact("postgresql://u:p%40ss%20w%25rd@h/x") == "postgresql://u:****@h/x"
    assert db.redact('failed for "p@ss w%rd" and p%40ss%20w%25rd') == 'failed for "****" and ****'
    assert db.redact("host=h password='a b' user=u") == "host=h password=**** user=u"
    assert db.redact("postgresql://h/x?sslmode=require&password=pw1") == "postgresql://h/x?sslmode=require&password=****"
    monkeypatch.delenv("DATABASE_URL")
    assert db.redact("postgresql+psycopg://user:pa@ss@host:5432/db") == "postgresql+psycopg://user:****@host:5432/db"
    assert db.redact("postgresql://postgres@/cabinet_leads?host=/tmp/s") == "postgresql://postgres@/cabinet_leads?host=/tmp/s"


# ----------------------------------------------------------------------------- 3. one line, never a traceback


@pytest.mark.parametrize("value", ["inf", "1e400s", "nan", "nans", "-infh", "99999d"])
def test_health_rejects_non_finite_durations(value):
    line = one_error_line(run_cli("health", "--max-age", value), code=2)
    assert "--max-age" in line


def test_only_postgresql_urls_are_supported():
    line = one_error_line(run_cli("limbo", database_url="mysql://u:pw@h/db"))
    assert "only postgresql:// URLs are supported" in line


def test_whitespace_only_database_url_is_an_error_not_the_embedded_server(tmp_path, monkeypatch):
    pgdata = tmp_path / "pgdata"
    res = run_cli("limbo", database_url="  \t ", env={"CABINET_LEADS_PGDATA": str(pgdata)})
    assert "DATABASE_URL is only whitespace" in one_error_line(res)
    assert not pgdata.exists()
    # unset or empty: the embedded server; surrounding whitespace of a real URL is ignored
    for unset in ("", None):
        if unset is None:
            monkeypatch.delenv("DATABASE_URL", raising=False)
        else:
            monkeypatch.setenv("DATABASE_URL", unset)
        assert db.configured_url() is None
    monkeypatch.setenv("DATABASE_URL", " postgresql://u@h/x\n")
    assert db.configured_url() == "postgresql://u@h/x"
    monkeypatch.setenv("DATABASE_URL", "\n")
    with pytest.raises(db.DatabaseError, match="only whitespace"):
        db.configured_url()


HOSTILE = {
    "first_name": "Ana\x1b[2J\x1b[H",
    "last_name": "Ruiz\x1b]52;c;ZWNobyBwd25lZA==\x07",
    "external_id": "ext\u202egnp.exe\x9b31m\x1f",
    "phone": "987\r654\x08321",
    "document_number": "x\nstage: OK",
}
TERMINAL_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def test_explain_escapes_terminal_control_characters(db_url, pg):
    lead_id = pg.execute(
        "insert into public.module_ct_cabinet_leads (external_id, lead_created_at, first_name, last_name, phone, "
        "document_number) values (%(external_id)s, now(), %(first_name)s, %(last_name)s, %(phone)s, "
        "%(document_number)s) returning id",
        HOSTILE,
    ).fetchone()[0]
    assert run_cli("reconcile", database_url=db_url).returncode == 0
    res = run_cli("explain", str(lead_id), database_url=db_url)
    assert res.returncode == 0, res.stderr
    assert not TERMINAL_CONTROL.search(res.stdout), repr(res.stdout)
    assert "Ana\\x1b[2J" in res.stdout and "\\x07" in res.stdout and "ext\\u202egnp.exe\\x9b31m" in res.stdout
    assert not any(line.startswith("stage: OK") for line in res.stdout.splitlines())  # no forged line
    lead = json.loads(run_cli("explain", str(lead_id), "--json", database_url=db_url).stdout)["lead"]
    assert {k: lead[k] for k in HOSTILE} == HOSTILE  # --json keeps the data exact (JSON-escaped)


# ----------------------------------------------------------------------------- 4. schema version checks


def test_a_schema_newer_than_the_code_is_refused_by_every_command(db_url, pg, tmp_path):
    pg.execute("insert into ops.schema_migrations (version, name, checksum) values ('999', 'future', 'x')")
    line = one_error_line(run_cli("migrate", database_url=db_url))
    assert "V999" in line and "schema up to date" not in line
    for args in DB_COMMANDS:
        assert "V999" in one_error_line(run_cli(*expand(args, tmp_path), database_url=db_url))


def test_an_edited_applied_migration_is_refused_by_every_command(db_url, pg, tmp_path):
    pg.execute("update ops.schema_migrations set checksum = 'edited' where version = '003'")
    assert "changed after it was applied" in one_error_line(run_cli("migrate", database_url=db_url))
    for args in DB_COMMANDS:
        line = one_error_line(run_cli(*expand(args, tmp_path), database_url=db_url))
        assert "V003__" in line and "changed after it was applied" in line


def test_a_schema_behind_the_code_is_refused_until_migrated(empty_database, tmp_path):
    older = tmp_path / "older"
    older.mkdir()
    migrations = db.list_migrations()
    for m in migrations[:-1]:
        shutil.copy(m.path, older / m.path.name)
    db.migrate(empty_database, directory=older)
    expected = (f"database schema is at V{migrations[-2].version}, this cabinet-leads needs V{LATEST}: "
                "run `cabinet-leads migrate`")
    for args in DB_COMMANDS:
        assert one_error_line(run_cli(*expand(args, tmp_path), database_url=empty_database)).endswith(expected)
    assert run_cli("migrate", database_url=empty_database).returncode == 0
    assert run_cli("limbo", database_url=empty_database).returncode == 0


def test_an_unmigrated_database_says_run_migrate(empty_database, tmp_path):
    for args in DB_COMMANDS:
        line = one_error_line(run_cli(*expand(args, tmp_path), database_url=empty_database))
        assert line.endswith("run `cabinet-leads migrate`"), line


def test_check_schema_needs_only_select_on_the_schema_records_and_keeps_transactions_usable(
    db_url, empty_database, server_url
):
    role = "t_schema_reader"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"drop role if exists {role}")
        admin.execute(f"create role {role} login")
    try:
        with psycopg.connect(db_url, autocommit=True) as owner:
            owner.execute(f"grant usage on schema ops to {role}")
            owner.execute(f"grant select on ops.schema_migrations, ops.schema_views to {role}")
        with psycopg.connect(db_url) as conn:
            conn.execute(f"set role {role}")
            db.check_schema(conn)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):  # the role really has nothing else
                conn.execute("select 1 from ops.reconcile_runs")
    finally:
        with psycopg.connect(db_url, autocommit=True) as owner:
            owner.execute(f"drop owned by {role}")
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f"drop role if exists {role}")
    # every kind of target; a refusal does not poison the caller's open transaction
    engine = db.make_engine(empty_database)
    try:
        db.check_schema(db.make_engine(db_url))
        with engine.connect() as conn:
            with pytest.raises(db.DatabaseError, match="run `cabinet-leads migrate`"):
                db.check_schema(conn)
            assert conn.execute(sa.text("select 1")).scalar() == 1
    finally:
        engine.dispose()
    with psycopg.connect(empty_database) as conn:
        conn.execute("select 1")
        with pytest.raises(db.DatabaseError, match="run `cabinet-leads migrate`"):
            db.check_schema(conn)
        assert conn.execute("select 2").fetchone()[0] == 2
