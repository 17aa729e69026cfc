"""Runs behave under contention and limits (issue 15 point 7): skip or wait for a running run, a
killed run is marked abandoned, run records are durable, the statement limit is configurable and a
timeout is named. Real PostgreSQL, the real CLI in a subprocess where the process matters."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psycopg

from cabinet_leads import synthetic
from cabinet_leads.pipeline import RUN_LOCK_KEY
from tests.integration.test_identity_rules import ANCHOR


def cli(db_url: str, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DATABASE_URL": db_url, **env}
    return subprocess.run([sys.executable, "-m", "cabinet_leads", *args], capture_output=True, text=True,
                          env=environment, timeout=timeout)


def hold_run_lock(db_url: str) -> tuple[psycopg.Connection, int]:
    """Another run: a session holding the run lock, with its run record 'running'."""
    holder = psycopg.connect(db_url, autocommit=True)
    holder.execute("select pg_advisory_lock(%s)", (RUN_LOCK_KEY,))
    run_id = holder.execute(
        "insert into ops.reconcile_runs (triggered_by) values ('cli') returning run_id").fetchone()[0]
    return holder, run_id


def test_skip_if_running_exits_0_naming_the_running_run(db_url):
    holder, run_id = hold_run_lock(db_url)
    try:
        started = time.monotonic()
        res = cli(db_url, "reconcile", "--skip-if-running")
        assert time.monotonic() - started < 60
    finally:
        holder.close()
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("\n") == 1 and f"skipped: run {run_id} (cli, started" in res.stderr


def test_wait_for_lock_says_once_it_waits_then_gives_up_with_75(db_url):
    holder, run_id = hold_run_lock(db_url)
    try:
        res = cli(db_url, "reconcile", "--wait-for-lock", "2")
    finally:
        holder.close()
    assert res.returncode == 75, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert f"waiting up to 2 s for run {run_id}" in lines[0]
    assert lines[1].startswith("cabinet-leads: error: gave up after waiting 2 s for run") and "Traceback" not in res.stderr


def test_waiting_is_not_counted_in_the_run_and_is_reported(db_url, engine):
    from cabinet_leads import ReconcileCabinetLeadsPipeline

    holder, _ = hold_run_lock(db_url)
    import threading

    threading.Timer(1.5, holder.close).start()  # the other run ends after 1.5 s
    stats = ReconcileCabinetLeadsPipeline(engine).run_reconcile(anchor=ANCHOR)
    assert stats["lock_wait_s"] >= 1.0
    assert stats["seconds"] < stats["lock_wait_s"] + 30
    with psycopg.connect(db_url) as conn:
        kept = conn.execute("select (stats ->> 'lock_wait_s')::float from ops.reconcile_runs "
                            "where run_id = %s", (stats["run_id"],)).fetchone()[0]
    assert kept == stats["lock_wait_s"]


def test_a_killed_run_is_marked_abandoned_by_the_next_run(db_url, pg):
    synthetic.seed(db_url, leads=4000, seed=3, anchor=ANCHOR.date())
    proc = subprocess.Popen([sys.executable, "-m", "cabinet_leads", "reconcile", "--batch-size", "50"],
                            env={**os.environ, "DATABASE_URL": db_url}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until it has committed some work
            if pg.execute("select count(*) from canon.identity_links").fetchone()[0] > 200:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    killed = pg.execute("select run_id, status from ops.reconcile_runs order by run_id").fetchall()
    assert killed == [(killed[0][0], "running")]
    res = cli(db_url, "reconcile")
    assert res.returncode == 0, res.stderr
    rows = pg.execute("select status, error from ops.reconcile_runs order by run_id").fetchall()
    assert rows[0][0] == "abandoned" and rows[0][1].startswith("abandoned")
    assert rows[1][0] == "success"


def test_statement_timeout_from_the_environment_fails_the_run_with_one_line(db_url, pg):
    synthetic.seed(db_url, leads=3000, seed=5, anchor=ANCHOR.date())
    res = cli(db_url, "reconcile", CABINET_LEADS_STATEMENT_TIMEOUT="1ms")
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1, res.stderr
    assert "statement timeout:" in res.stderr and "1 ms (CABINET_LEADS_STATEMENT_TIMEOUT)" in res.stderr
    assert "cannot reach the database" not in res.stderr
    status, error = pg.execute("select status, error from ops.reconcile_runs order by run_id desc").fetchone()
    assert status == "failed" and error.startswith("statement timeout:")


def test_the_database_statement_timeout_stands_when_the_job_sets_none(db_url, pg):
    synthetic.seed(db_url, leads=3000, seed=5, anchor=ANCHOR.date())
    dbname = pg.info.dbname
    pg.execute(f'alter database "{dbname}" set statement_timeout = \'1ms\'')
    res = cli(db_url, "reconcile")
    pg.execute(f'alter database "{dbname}" reset statement_timeout')
    assert res.returncode == 1
    assert "statement timeout:" in res.stderr and "the server's or role's statement_timeout" in res.stderr


def test_bad_statement_timeout_setting_is_one_line(db_url):
    res = cli(db_url, "reconcile", CABINET_LEADS_STATEMENT_TIMEOUT="soon")
    assert res.returncode == 1 and res.stderr.count("\n") == 1
    assert "CABINET_LEADS_STATEMENT_TIMEOUT must be a duration" in res.stderr


def test_run_records_are_written_durably(engine, pg):
    from cabinet_leads import ReconcileCabinetLeadsPipeline

    pipeline = ReconcileCabinetLeadsPipeline(engine)
    seen = []
    original = pipeline.session.exec

    def spy(conn, sql, params=None, **kw):
        if "synchronous_commit" in sql:
            seen.append(params["sync"])
        if kw.get("name") in ("reconcile/start_run", "reconcile/finish_run"):
            seen.append(conn.exec_driver_sql("show synchronous_commit").scalar() + ":" + kw["name"])
        return original(conn, sql, params, **kw)

    pipeline.session.exec = spy
    pipeline.run_reconcile(anchor=ANCHOR)
    assert "on:reconcile/start_run" in seen and "on:reconcile/finish_run" in seen
    assert "off" in seen  # the batches need not wait for the flush
