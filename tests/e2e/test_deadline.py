"""The Deadline Alert of the main DAG under a real scheduler, DAG processor and triggerer.

dag.test() cannot run a DAG with deadline= (apache/airflow#73428), so this test starts
`airflow standalone` through bin/airflow-local (a fresh AIRFLOW_HOME under tmp_path, its own ports,
the test's PostgreSQL database and aiosmtpd server as connections), triggers a manual run through
the REST API and waits for the DEADLINE MISSED email. The deadline is 3 s after the run was queued;
the run (2000 seeded leads, six tasks and a mapped one, each a process of its own) takes 10-30 s,
so the run really is late, and the test checks that: Airflow recorded the deadline of this very run
as missed, the run finished only after that deadline (in practice the email arrives while it is
still running: the test prints the state), and the late run still succeeds with no second email.

Typical time: 35-45 s (15-35 s of it starting Airflow); BUDGET bounds a hanging run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from cabinet_leads import db, synthetic

DAG_ID = "reconcile_cabinet_leads_pipeline"
DEADLINE_MINUTES = "0.05"  # 3 s after the run was queued
DEADLINE = dt.timedelta(minutes=float(DEADLINE_MINUTES))
ALERT_EMAIL = "deadline-oncall@example.com"
SUBJECT = "[cabinet-leads] DEADLINE MISSED"
AIRFLOW_LOCAL = [sys.executable, str(db.PROJECT_ROOT / "bin" / "airflow-local")]
BUDGET = 170  # seconds for start-up and the test body together (stopping takes at most ~25 s more)

pytestmark = pytest.mark.slow


STARTED = [time.monotonic()]  # when the current test began (reset by the fixture)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(what: str, check, timeout: float, every: float = 0.5):
    timeout = min(timeout, BUDGET - (time.monotonic() - STARTED[0]))
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


@pytest.fixture
def airflow_api(tmp_path, reconcile_conn, smtp_server):
    """`airflow standalone` with reconcile_db and smtp_default pointing at the test's servers; yields
    an httpx client logged in as admin. Stopped (the whole process session) even on failure."""
    port = free_port()
    home = tmp_path / "airflow"
    where = ["--home", str(home), "--run-dir", str(tmp_path / "run"), "--port", str(port)]
    env = {
        **os.environ,  # AIRFLOW_CONN_RECONCILE_DB and AIRFLOW_CONN_SMTP_DEFAULT from the fixtures
        "CABINET_LEADS_DEADLINE_MINUTES": DEADLINE_MINUTES,  # tests/conftest.py sets 0 for dag.test()
        "CABINET_LEADS_ALERT_EMAIL": ALERT_EMAIL,
        # only the run this test triggers, no scheduled run of the hourly DAG on unpausing
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        # the log servers of the scheduler and triggerer must not collide with a `make airflow`
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    }
    env.pop("AIRFLOW_HOME", None)  # bin/airflow-local sets it from --home
    STARTED[0] = time.monotonic()
    try:
        res = subprocess.run(
            [*AIRFLOW_LOCAL, "start", *where, "--timeout", "120"],
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
        )
        assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
        print(f"\nairflow standalone healthy after {time.monotonic() - STARTED[0]:.1f} s")
        password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            token = client.post("/auth/token", json={"username": "admin", "password": password})
            assert token.status_code in (200, 201), token.text
            client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            yield client
    finally:
        res = subprocess.run(
            [*AIRFLOW_LOCAL, "stop", *where], env=env, capture_output=True, text=True, timeout=60
        )
        print(res.stdout + res.stderr, end="")
        log = tmp_path / "run" / "airflow.log"
        if log.exists():
            print(f"(airflow log: {log})")


def deadline_emails(smtp_server) -> list:
    return [m for m in list(smtp_server.messages) if str(m["subject"]).startswith(SUBJECT)]


def test_deadline_alert_emails_while_the_run_is_late(reconcile_conn, smtp_server, airflow_api):
    t0 = time.monotonic()
    synthetic.seed(reconcile_conn, leads=2000, seed=1)
    api = airflow_api

    # the DAG processor has parsed the project's DAGs, with the deadline of this environment
    wait_until("the DAG to be parsed", lambda: api.get(f"/api/v2/dags/{DAG_ID}").is_success, 60)
    assert api.get("/api/v2/importErrors").json()["total_entries"] == 0
    alerts = api.get(f"/ui/dags/{DAG_ID}/deadlineAlerts").json()
    assert alerts["total_entries"] == 1, alerts

    assert api.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False}).json()["is_paused"] is False
    created = api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None})
    assert created.status_code == 200, created.text
    run_id = created.json()["dag_run_id"]
    queued_at = dt.datetime.fromisoformat(created.json()["queued_at"])
    triggered = time.monotonic()

    [message] = wait_until("the DEADLINE MISSED email", lambda: deadline_emails(smtp_server), 30, every=0.1)
    emailed_after = time.monotonic() - triggered
    state_then = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}").json()["state"]
    print(f"deadline email {emailed_after:.1f} s after the trigger; the run was {state_then} then")
    assert emailed_after >= DEADLINE.total_seconds() - 1
    assert message["to"] == ALERT_EMAIL
    assert DAG_ID in str(message["subject"])
    assert "has not finished" in smtp_server.body(message)

    # Airflow recorded the deadline of this very run (queued_at + 3 s) as missed
    [deadline] = api.get(f"/ui/dags/{DAG_ID}/dagRuns/{run_id}/deadlines").json()["deadlines"]
    assert deadline["missed"] is True
    deadline_time = dt.datetime.fromisoformat(deadline["deadline_time"])
    assert abs(deadline_time - (queued_at + DEADLINE)) < dt.timedelta(seconds=1)

    # the late run still does its work (a missed deadline does not stop it) and emails only once
    def finished():
        r = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}").json()
        return r if r["state"] in ("success", "failed") else None

    run = wait_until("the run to finish", finished, 120, every=1)
    assert run["state"] == "success", run
    end = dt.datetime.fromisoformat(run["end_date"])
    assert end > deadline_time, "the run finished before its deadline: the alert must not have fired"
    assert len(deadline_emails(smtp_server)) == 1
    ran_for = end - queued_at
    print(
        f"run took {ran_for.total_seconds():.1f} s from queued to success; test body {time.monotonic() - t0:.1f} s, "
        f"with start-up {time.monotonic() - STARTED[0]:.1f} s"
    )
