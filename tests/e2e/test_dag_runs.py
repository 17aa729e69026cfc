"""The DAGs as real Airflow runs (dag.test()) on a real PostgreSQL with seeded data, and real
email through an aiosmtpd SMTP server."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from cabinet_leads import synthetic
from cabinet_leads.funnel import STAGES
from cabinet_leads.pipeline import STAT_KEYS
from tests.conftest import JOB_LOGIN
from tests.e2e.conftest import states, xcoms
from tests.integration.test_runbook_sql import runbook_statements

MAIN = "reconcile_cabinet_leads_pipeline"
WATCHDOG = "reconcile_cabinet_leads_watchdog"
ANCHOR_DATE = dt.date(2026, 3, 2)
# dag.test(logical_date=T) creates a manual run whose data interval is the hour ending at T; a
# manual run anchors on the moment it was triggered unless the as_of Param says otherwise.
LOGICAL = dt.datetime(2026, 3, 2, 5, 0, tzinfo=dt.UTC)


def as_of(when: dt.datetime) -> dict:
    return {"as_of": when.isoformat()}


def distribution(pg) -> dict[str, int]:
    """The runbook's own limbo query (section 2), unchanged."""
    rows = pg.execute(runbook_statements()[0]).fetchall()
    return {stage: count for stage, count, _recent in rows}


def run_record(pg, dag_run):
    return pg.execute(
        "select run_id, triggered_by, status, stats from ops.reconcile_runs where external_run_id = %s",
        (dag_run.run_id,),
    ).fetchone()


def test_hourly_run_end_to_end_then_idempotent(main_dag, reconcile_conn, pg, smtp_server):
    from airflow.sdk import BaseHook

    synthetic.seed(reconcile_conn, leads=1500, seed=7, anchor=ANCHOR_DATE)
    assert distribution(pg) == {"NO_IDENTITY": 1500}
    # the DAG works as the job's least-privilege login, as in production (V009)
    assert BaseHook.get_connection("reconcile_db").login == JOB_LOGIN

    dr = main_dag[MAIN].test(logical_date=LOGICAL, run_conf={"batch_size": 100, **as_of(LOGICAL)})
    assert dr.state == "success"
    assert set(states(dr).values()) == {"success"}

    plan = xcoms(dr, "plan_limbo_batches")[-1]
    mapped = sorted(k for k in states(dr) if k[0] == "reconcile_limbo_batch")
    backlog = sum(r["leads"] for r in plan)
    assert backlog > 0 and len(mapped) == math.ceil(backlog / 100) > 1
    # only range bounds went through XCom, never lead lists
    assert all(set(r) == {"lo", "hi", "leads"} for r in plan)

    recent = xcoms(dr, "reconcile_recent_leads")[-1]
    limbo = list(xcoms(dr, "reconcile_limbo_batch").values())
    summary = xcoms(dr, "audit_weekly_funnel")[-1]
    assert len(limbo) == len(mapped) == summary["limbo_batch_tasks"]
    for key in STAT_KEYS:
        assert summary[key] == recent[key] + sum(part[key] for part in limbo), key
    links = pg.execute(
        "select count(*) from canon.identity_links where source_table = 'module_ct_cabinet_leads'"
    ).fetchone()[0]
    assert summary["newly_linked"] == links > 1400
    assert summary["processed"] >= 1500

    # the runbook's validation: limbo_no_identity went down, the rest of the funnel filled up
    after = distribution(pg)
    assert after["NO_IDENTITY"] < 100 and after.get("NO_DRIVER", 0) > 0 and after.get("OK", 0) > 0
    assert summary["limbo_before"] == {**dict.fromkeys(STAGES, 0), "NO_IDENTITY": 1500}
    assert summary["limbo_after"] == {stage: after.get(stage, 0) for stage in STAGES}
    assert len(summary["weekly_audit"]) == 4

    run_id, triggered_by, status, stats = run_record(pg, dr)
    assert (triggered_by, status) == ("airflow", "success") and stats["processed"] == summary["processed"]

    second = main_dag[MAIN].test(
        logical_date=LOGICAL + dt.timedelta(hours=1), run_conf={"batch_size": 100, **as_of(LOGICAL + dt.timedelta(hours=1))}
    )
    assert second.state == "success"
    again = xcoms(second, "audit_weekly_funnel")[-1]
    assert (again["newly_linked"], again["newly_driver_mapped"], again["new_persons"]) == (0, 0, 0)
    assert distribution(pg) == after
    assert smtp_server.messages == []  # default thresholds not crossed, nothing failed


def test_backfill_runs_process_their_own_windows(main_dag, reconcile_conn, pg, smtp_server):
    synthetic.seed(reconcile_conn, leads=600, seed=11, anchor=ANCHOR_DATE, days=20)
    conf = {"process_limbo": False, "recent_days": 2}
    seen: set[int] = set()
    for logical in (dt.datetime(2026, 2, 18, 5, 0, tzinfo=dt.UTC), dt.datetime(2026, 2, 25, 17, 0, tzinfo=dt.UTC)):
        dr = main_dag[MAIN].test(logical_date=logical, run_conf={**conf, **as_of(logical)})
        assert dr.state == "success"
        # a one-hour data interval; the job's anchor is its end (dag.test infers the interval of a
        # manual run at `logical`, i.e. the hour that ends there)
        end = dr.data_interval_end
        assert dr.data_interval_start == end - dt.timedelta(hours=1) and end.minute == 0
        run_id = run_record(pg, dr)[0]
        params = pg.execute("select parameters from ops.reconcile_runs where run_id = %s", (run_id,)).fetchone()[0]
        assert dt.datetime.fromisoformat(params["anchor"]) == end
        # the leads this run did identity work for: their keys were normalised and stored by it (every
        # lead gets kept funnel state in every run, so ops.lead_state no longer tells)
        keyed = {int(r[0]) for r in pg.execute(
            "select source_pk from canon.record_keys where source_table = 'module_ct_cabinet_leads'")}
        processed, seen = keyed - seen, keyed
        expected = {
            r[0]
            for r in pg.execute(
                "select id from public.module_ct_cabinet_leads where lead_created_at >= %s and lead_created_at < %s",
                (end - dt.timedelta(days=2), end),
            )
        }
        assert expected and processed == expected
        assert xcoms(dr, "audit_weekly_funnel")[-1]["processed"] == len(expected)


@pytest.mark.parametrize(
    "conf",
    [{"limbo_stages": ["OK"]}, {"limbo_stages": []}, {"recent_days": 0}, {"batch_size": 10}, {"dry_run": "yes"}],
)
def test_invalid_params_are_rejected_before_a_run(main_dag, conf):
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        main_dag[MAIN].test(logical_date=LOGICAL, run_conf=conf)


def test_task_failure_sends_an_email(main_dag, reconcile_conn, smtp_server, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_RECONCILE_DB", f"postgresql://nobody@{str(tmp_path).replace('/', '%2F')}/nowhere")
    dag = main_dag[MAIN]
    for task in dag.tasks:
        monkeypatch.setattr(task, "retries", 0)
    dr = dag.test(logical_date=LOGICAL)
    assert dr.state == "failed"
    assert states(dr)[("snapshot_limbo_distribution", -1)] == "failed"
    [message] = smtp_server.wait_for(1)
    subject = message["subject"]
    assert f"FAILED {MAIN}.snapshot_limbo_distribution" in subject
    assert dr.run_id in subject and "try 1" in subject
    body = smtp_server.body(message)
    assert "connection" in body.lower() and "OperationalError" in body
    assert "log:" in body and "href=" in body and dr.run_id in body


def test_limbo_threshold_crossing_sends_an_alert(main_dag, reconcile_conn, pg, smtp_server, monkeypatch):
    synthetic.seed(reconcile_conn, leads=1000, seed=5, anchor=ANCHOR_DATE)
    monkeypatch.setenv("AIRFLOW_VAR_CABINET_LEADS_MAX_TRIPS_NO_CLAIM", "3")
    dr = main_dag[MAIN].test(logical_date=LOGICAL, run_conf=as_of(LOGICAL))
    assert dr.state == "success"
    trips_no_claim = distribution(pg).get("TRIPS_NO_CLAIM", 0)
    assert trips_no_claim > 3
    assert xcoms(dr, "check_limbo_alerts")[-1] == [f"limbo_trips_no_claim: {trips_no_claim} is above the threshold of 3"]
    [message] = smtp_server.wait_for(1)
    assert "limbo alert: limbo_trips_no_claim" in message["subject"]
    assert f"<td>{trips_no_claim}</td>" in smtp_server.body(message)


def test_watchdog_emails_on_stale_or_missing_success(main_dag, reconcile_conn, pg, smtp_server):
    watchdog = main_dag[WATCHDOG]
    first = watchdog.test(logical_date=LOGICAL)
    assert xcoms(first, "check_last_successful_run")[-1]["stale"] is True
    [never] = smtp_server.wait_for(1)
    assert "NO RECENT RUN" in never["subject"] and "never" in never["subject"]

    pg.execute(
        "insert into ops.reconcile_runs (triggered_by, status, finished_at) values ('airflow', 'success', now())"
    )
    fresh = watchdog.test(logical_date=LOGICAL + dt.timedelta(minutes=30))
    assert xcoms(fresh, "check_last_successful_run")[-1]["stale"] is False
    assert len(smtp_server.messages) == 1

    pg.execute("update ops.reconcile_runs set finished_at = now() - interval '3 hours'")
    stale = watchdog.test(logical_date=LOGICAL + dt.timedelta(hours=1))
    assert xcoms(stale, "check_last_successful_run")[-1]["stale"] is True
    messages = smtp_server.wait_for(2)
    assert len(messages) == 2 and "180 minutes ago" in messages[1]["subject"]


def test_daily_verify_emails_once_on_drift(main_dag, reconcile_conn, pg, smtp_server):
    synthetic.seed(reconcile_conn, leads=300, seed=5, anchor=ANCHOR_DATE, days=20)
    assert main_dag[MAIN].test(logical_date=LOGICAL, run_conf=as_of(LOGICAL)).state == "success"
    clean = main_dag["reconcile_cabinet_leads_verify"].test(logical_date=LOGICAL)
    assert xcoms(clean, "verify_funnel_state")[-1] == {"differences": 0, "first": []}
    assert xcoms(clean, "reconcile_full_sources")[-1]["processed"] == 0  # nothing changed upstream
    assert len(smtp_server.messages) == 0

    # an edit without an updated_at bump (loaders forget): the daily full re-read catches it first
    moved = pg.execute("select lead_id from ops.lead_state where trips_14d > 0 order by lead_id limit 1").fetchone()[0]
    pg.execute("update public.module_ct_cabinet_leads set lead_created_at = lead_created_at - interval '200 days' "
               "where id = %s", (moved,))
    caught = main_dag["reconcile_cabinet_leads_verify"].test(logical_date=LOGICAL + dt.timedelta(hours=12))
    assert xcoms(caught, "reconcile_full_sources")[-1]["processed"] == 1
    assert xcoms(caught, "verify_funnel_state")[-1] == {"differences": 0, "first": []}
    assert pg.execute("select limbo_stage from ops.lead_state where lead_id = %s", (moved,)).fetchone() == (
        "NO_TRIPS_14D",)
    assert len(smtp_server.messages) == 0

    lead_id = pg.execute("update ops.lead_state set trips_14d = trips_14d + 7 "
                         "where lead_id = (select min(lead_id) from ops.lead_state) returning lead_id").fetchone()[0]
    drift = main_dag["reconcile_cabinet_leads_verify"].test(logical_date=LOGICAL + dt.timedelta(days=1))
    assert drift.state == "success"
    assert xcoms(drift, "verify_funnel_state")[-1] == {"differences": 1, "first": [lead_id]}
    [message] = smtp_server.wait_for(1)
    assert "FUNNEL STATE DRIFT: 1 difference(s)" in message["subject"]
    assert f"lead {lead_id} (lead_state)" in smtp_server.body(message)


def test_readme_backfill_command_plans_one_run_per_hour(airflow_db):
    """The README's `airflow backfill create` (as a dry run) plans one run per hour of the range."""
    import os
    import subprocess
    import sys

    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    subprocess.run([airflow, "dags", "reserialize"], capture_output=True, text=True, timeout=300, check=True)
    res = subprocess.run(
        [airflow, "backfill", "create", "--dag-id", MAIN, "--from-date", "2026-03-01T00:00:00",
         "--to-date", "2026-03-01T03:00:00", "--max-active-runs", "1", "--dry-run"],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    planned = [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("| 2026-03-01 0")]
    assert [line.split("|")[1].strip() for line in planned] == [
        f"2026-03-01 0{h}:00:00+00:00" for h in range(4)
    ]
