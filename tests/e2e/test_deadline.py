"""What on-call receives from a real scheduler, DAG processor and triggerer: the Deadline Alert, the
limbo alert of a manual run and of a backfill run, and the anchor of each run's recent window.

dag.test() cannot run a DAG with deadline= (apache/airflow#73428) and creates only manual runs, so
this module starts ONE `airflow standalone` through bin/airflow-local (a fresh AIRFLOW_HOME, its own
ports, a PostgreSQL database of its own with 2000 seeded leads and a real aiosmtpd server as
connections) and drives it through the REST API, in file order:

1. a run that fails before its deadline (a bad `as_of`: the first task fails at once, without
   retries): the deadline still passes (Airflow keeps a failed run's deadline) and the callback
   runs in the triggerer, which sends no "DEADLINE MISSED" email;
2. a run triggered with an explicit logical date (as the UI form pre-fills one) while the DAG is
   paused: it stays queued past its deadline, so it is really late: ONE email that names the run,
   its state, how long it has run and links to it. Unpaused it succeeds, its recent window ends
   at its `run_after`, and its limbo alert (threshold 0) is emailed once;
3. a backfill run of the last full hour: its window ends at its data interval's end, and its
   limbo alert, which still holds, is not emailed.

Typical time: 2-3 minutes (20-35 s of it starting Airflow); BUDGET bounds a hanging module.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
import urllib.parse

import psycopg
import pytest

from cabinet_leads import db, synthetic
from tests.conftest import fresh_database
from tests.e2e.conftest import Mailbox
from tests.e2e.standalone import DAG_ID, free_port, smtp_conn, standalone

DEADLINE_MINUTES = "0.75"  # 45 s after the run was queued: the failing run fails well before
DEADLINE = dt.timedelta(minutes=float(DEADLINE_MINUTES))
ALERT_EMAIL = "deadline-oncall@example.com"
DEADLINE_SUBJECT = "[cabinet-leads] DEADLINE MISSED"
LIMBO_SUBJECT = "[cabinet-leads] limbo alert"
BUDGET = 420  # seconds for start-up and the whole module (stopping takes at most ~25 s more)

pytestmark = pytest.mark.slow

STARTED = [time.monotonic()]


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


@pytest.fixture(scope="module")
def mailbox():
    """A real SMTP server (aiosmtpd) for the whole module."""
    from aiosmtpd.controller import Controller

    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port
    yield box
    controller.stop()


@pytest.fixture(scope="module")
def database(server_url, template_url):
    with fresh_database(server_url, template_url) as url:
        synthetic.seed(url, leads=2000, seed=1)
        yield url


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, database, mailbox):
    """`airflow standalone` with reconcile_db and smtp_default pointing at the module's servers."""
    env = {
        "AIRFLOW_CONN_RECONCILE_DB": db.airflow_conn_uri(database),
        "AIRFLOW_CONN_SMTP_DEFAULT": smtp_conn(mailbox.port),
        "CABINET_LEADS_DEADLINE_MINUTES": DEADLINE_MINUTES,  # tests/conftest.py sets 0 for dag.test()
        "CABINET_LEADS_ALERT_EMAIL": ALERT_EMAIL,
        "AIRFLOW_VAR_CABINET_LEADS_MAX_TRIPS_NO_CLAIM": "0",  # the limbo alert holds on every run
    }
    with standalone(tmp_path_factory.mktemp("airflow-standalone"), env) as airflow:
        STARTED[0] = airflow.started
        assert airflow.api.get(f"/ui/dags/{DAG_ID}/deadlineAlerts").json()["total_entries"] == 1
        yield airflow


def emails(mailbox, subject: str, run_id: str | None = None) -> list:
    return [m for m in list(mailbox.messages)
            if str(m["subject"]).startswith(subject) and (run_id is None or run_id in str(m["subject"]))]


def set_paused(api, paused: bool) -> None:
    assert api.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": paused}).json()["is_paused"] is paused


def trigger(api, **body) -> dict:
    created = api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json=body)
    assert created.status_code == 200, created.text
    return created.json()


def get_run(api, run_id: str) -> dict:
    return api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}").json()


def wait_finished(api, run_id: str, timeout: float = 150) -> dict:
    def finished():
        run = get_run(api, run_id)
        return run if run["state"] in ("success", "failed") else None

    return wait_until(f"run {run_id} to finish", finished, timeout, every=1)


def deadline_of(api, run_id: str) -> dict:
    [deadline] = api.get(f"/ui/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}/deadlines").json()[
        "deadlines"
    ]
    return deadline


def callback_outputs(home) -> list[tuple[str, str]]:
    """(state, output) of every callback the triggerer ran, from Airflow's own metadata database."""
    with sqlite3.connect(f"file:{home / 'airflow.db'}?mode=ro", uri=True) as conn:
        return [(s or "", o or "") for s, o in conn.execute("select state, output from callback")]


def run_record(database, run_id: str) -> dict:
    with psycopg.connect(database) as conn:
        row = conn.execute(
            "select parameters from ops.reconcile_runs where external_run_id = %s", (run_id,)
        ).fetchone()
    assert row, f"no run record for {run_id}"
    return row[0]


def test_a_run_that_failed_before_its_deadline_gets_no_deadline_email(airflow, mailbox):
    api = airflow.api
    set_paused(api, False)
    # a date that looks right (so the form and the API accept it) but does not exist: the first
    # task fails at once, without retries
    run = trigger(api, logical_date=None, conf={"as_of": "2026-02-30T10:00:00Z"})
    run_id = run["dag_run_id"]
    queued_at = dt.datetime.fromisoformat(run["queued_at"])
    ended = wait_finished(api, run_id, timeout=60)
    assert ended["state"] == "failed", ended
    end = dt.datetime.fromisoformat(ended["end_date"])
    print(f"failed {(end - queued_at).total_seconds():.1f} s after it was queued")
    assert end < queued_at + DEADLINE, "the run did not fail before its deadline: the test proves nothing"

    # Airflow keeps a failed run's deadline: it passes, and the callback runs in the triggerer ...
    wait_until("the deadline to be handled", lambda: deadline_of(api, run_id)["missed"], 60)
    done = wait_until(
        "the triggerer to run the deadline callback",
        lambda: [c for c in callback_outputs(airflow.home) if run_id in c[1] and c[0] == "success"],
        30,
    )
    print(f"callback: {done}")
    # ... which looked at the run's state and stayed silent
    assert "no email" in done[0][1] and "failed" in done[0][1]
    time.sleep(2)
    assert emails(mailbox, DEADLINE_SUBJECT) == []


def test_a_late_run_gets_one_email_naming_it_and_anchors_on_run_after(airflow, mailbox, database):
    api = airflow.api
    set_paused(api, True)  # the run stays queued past its deadline: really late
    logical = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)).replace(second=0, microsecond=0)
    run = trigger(api, logical_date=logical.isoformat())  # a logical date, as the UI form pre-fills
    run_id = run["dag_run_id"]
    queued_at = dt.datetime.fromisoformat(run["queued_at"])
    triggered = time.monotonic()

    [message] = wait_until("the DEADLINE MISSED email", lambda: emails(mailbox, DEADLINE_SUBJECT), 60, every=0.2)
    print(f"deadline email {time.monotonic() - triggered:.1f} s after the trigger: {message['subject']}")
    assert time.monotonic() - triggered >= DEADLINE.total_seconds() - 1
    assert get_run(api, run_id)["state"] == "queued"
    assert message["to"] == ALERT_EMAIL
    subject = str(message["subject"])
    assert run_id in subject and "still queued" in subject and f"deadline {DEADLINE_MINUTES} min" in subject
    body = mailbox.body(message)
    link = f"http://127.0.0.1:{airflow.port}/dags/{DAG_ID}/runs/{urllib.parse.quote(run_id, safe='')}"
    assert f"href='{link}'" in body
    assert "state: queued" in body and "since queued" in body
    assert api.get(link.replace(f"http://127.0.0.1:{airflow.port}", "")).status_code == 200  # the UI page exists
    deadline = deadline_of(api, run_id)
    assert deadline["missed"] is True
    assert abs(dt.datetime.fromisoformat(deadline["deadline_time"]) - (queued_at + DEADLINE)) < dt.timedelta(seconds=1)

    set_paused(api, False)
    finished = wait_finished(api, run_id)
    assert finished["state"] == "success", finished
    assert len(emails(mailbox, DEADLINE_SUBJECT)) == 1  # once, not again when it ends

    # a manual run means "now": its window ends at run_after, not at its logical date's interval
    params = run_record(database, run_id)
    assert dt.datetime.fromisoformat(params["anchor"]) == dt.datetime.fromisoformat(finished["run_after"])
    assert dt.datetime.fromisoformat(finished["data_interval_end"]) < dt.datetime.fromisoformat(finished["run_after"])

    # the limbo alert (threshold 0) started to fire: one email, through the DAG's real SMTP
    [limbo] = wait_until("the limbo alert email", lambda: emails(mailbox, LIMBO_SUBJECT), 10)
    assert "limbo_trips_no_claim firing" in str(limbo["subject"]) and run_id in mailbox.body(limbo)


def test_a_backfill_run_keeps_its_data_interval_and_never_alerts(airflow, mailbox, database):
    api = airflow.api
    before = len(emails(mailbox, LIMBO_SUBJECT))
    hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=1)
    created = api.post(
        "/api/v2/backfills",
        json={"dag_id": DAG_ID, "from_date": hour.isoformat(), "to_date": hour.isoformat(), "max_active_runs": 1},
    )
    assert created.status_code == 200, created.text

    def backfill_run():
        runs = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns", params={"run_type": "backfill"}).json()["dag_runs"]
        return runs[0] if runs else None

    run = wait_until("the backfill run", backfill_run, 30)
    finished = wait_finished(api, run["dag_run_id"])
    assert finished["state"] == "success", finished
    assert dt.datetime.fromisoformat(finished["logical_date"]) == hour
    params = run_record(database, run["dag_run_id"])
    # a backfill run covers a recent_days window ending at its own hour
    assert dt.datetime.fromisoformat(params["anchor"]) == dt.datetime.fromisoformat(finished["data_interval_end"])
    assert dt.datetime.fromisoformat(finished["data_interval_end"]) == hour + dt.timedelta(hours=1)

    xcom = api.get(
        f"/api/v2/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}"
        "/taskInstances/check_limbo_alerts/xcomEntries/return_value"
    ).json()
    holding = str(xcom.get("value"))
    print(f"backfill run {run['dag_run_id']}: alerts holding {holding}")
    assert "limbo_trips_no_claim:" in holding  # the alert held ...
    time.sleep(1)
    assert len(emails(mailbox, LIMBO_SUBJECT)) == before  # ... and nobody was emailed
    print(f"module so far {time.monotonic() - STARTED[0]:.1f} s")
