"""What on-call sees from real DAG runs (dag.test() on a real PostgreSQL, email through a real
aiosmtpd server): limbo alerts with memory, the anchor of a manual run, one XCom value per task,
a bad as_of. (The Deadline Alert and backfill runs need a real scheduler: test_deadline.py.)"""

from __future__ import annotations

import datetime as dt

import pytest

from cabinet_leads import synthetic
from tests.e2e.conftest import xcoms

MAIN = "reconcile_cabinet_leads_pipeline"
ANCHOR_DATE = dt.date(2026, 3, 2)
LOGICAL = dt.datetime(2026, 3, 2, 5, 0, tzinfo=dt.UTC)


def limbo_emails(smtp_server) -> list:
    return [m for m in smtp_server.messages if "limbo alert" in str(m["subject"])]


def run_params(pg, dag_run) -> dict:
    return pg.execute(
        "select parameters from ops.reconcile_runs where external_run_id = %s", (dag_run.run_id,)
    ).fetchone()[0]


def test_a_limbo_alert_is_emailed_when_it_starts_and_when_it_is_resolved_not_on_every_run(
    main_dag, reconcile_conn, pg, smtp_server, monkeypatch
):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    synthetic.seed(reconcile_conn, leads=1000, seed=5, anchor=ANCHOR_DATE)
    monkeypatch.setenv("AIRFLOW_VAR_CABINET_LEADS_MAX_TRIPS_NO_CLAIM", "3")
    dag = main_dag[MAIN]

    first = dag.test(logical_date=LOGICAL, run_conf={"as_of": LOGICAL.isoformat()})
    assert first.state == "success"
    [fired] = smtp_server.wait_for(1)
    assert str(fired["subject"]) == "[cabinet-leads] limbo alert: limbo_trips_no_claim firing"
    assert first.run_id in smtp_server.body(fired)

    # the audit's statistics are ONE XCom value (a dict), not one key per statistic
    with create_session() as session:
        keys = session.scalars(
            XComModel.get_many(run_id=first.run_id, dag_ids=MAIN, task_ids="audit_weekly_funnel").with_only_columns(
                XComModel.key
            )
        ).all()
    assert keys == ["return_value"]
    assert isinstance(xcoms(first, "audit_weekly_funnel")[-1], dict)

    # the next run sees the same limbo numbers: the alert still holds, nobody is emailed again
    later = LOGICAL + dt.timedelta(hours=1)
    second = dag.test(logical_date=later, run_conf={"as_of": later.isoformat()})
    assert second.state == "success"
    assert xcoms(second, "check_limbo_alerts")[-1] == xcoms(first, "check_limbo_alerts")[-1] != []
    assert len(smtp_server.wait_for(2, timeout=3)) == 1

    # below the threshold: one "resolved" email
    monkeypatch.setenv("AIRFLOW_VAR_CABINET_LEADS_MAX_TRIPS_NO_CLAIM", "1000000")
    last = LOGICAL + dt.timedelta(hours=2)
    third = dag.test(logical_date=last, run_conf={"as_of": last.isoformat()})
    assert third.state == "success" and xcoms(third, "check_limbo_alerts")[-1] == []
    messages = smtp_server.wait_for(2)
    assert len(messages) == 2
    assert str(messages[1]["subject"]) == "[cabinet-leads] limbo alert: limbo_trips_no_claim resolved"
    assert pg.execute(
        "select firing, last_notified_at is not null from ops.alert_state where alert = 'limbo_trips_no_claim'"
    ).fetchone() == (False, True)
    assert len(limbo_emails(smtp_server)) == 2


def test_a_manual_run_anchors_on_run_after_whatever_its_logical_date(main_dag, reconcile_conn, pg, smtp_server):
    synthetic.seed(reconcile_conn, leads=200, seed=3, anchor=ANCHOR_DATE)
    # a logical date set in the form (dag.test creates manual runs, as a UI or REST trigger does)
    dr = main_dag[MAIN].test(logical_date=LOGICAL, run_conf={"process_limbo": False})
    assert dr.state == "success"
    anchor = dt.datetime.fromisoformat(run_params(pg, dr)["anchor"])
    assert anchor == dr.run_after and dr.data_interval_end == LOGICAL != anchor
    assert xcoms(dr, "snapshot_limbo_distribution")[-1]["anchor_from"] == "run_after"


def test_as_of_must_be_a_date_time(main_dag, reconcile_conn, smtp_server, monkeypatch):
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        main_dag[MAIN].test(logical_date=LOGICAL, run_conf={"as_of": "yesterday"})
    # looks like one, is none: the run fails at once (no retries), with one clear line
    dr = main_dag[MAIN].test(logical_date=LOGICAL, run_conf={"as_of": "2026-02-30T10:00:00Z"})
    assert dr.state == "failed"
    [ti] = [t for t in dr.get_task_instances() if t.task_id == "snapshot_limbo_distribution"]
    assert ti.state == "failed" and ti.try_number == 1
    [message] = smtp_server.wait_for(1)
    assert "as_of must be an ISO date-time" in smtp_server.body(message)
