"""DAG integrity and policy: imports cleanly, no database or connection at parse time, owners,
tags, retries, failure callbacks, parameter schema, schedule, deadline."""

from __future__ import annotations

import datetime as dt
import importlib.util
import subprocess
import sys
import textwrap

import pytest

from cabinet_leads import db
from cabinet_leads.funnel import LIMBO_STAGES

MAIN = "reconcile_cabinet_leads_pipeline"
WATCHDOG = "reconcile_cabinet_leads_watchdog"
VERIFY = "reconcile_cabinet_leads_verify"


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {MAIN, WATCHDOG, VERIFY}


def test_parsing_touches_no_database_and_no_connection(tmp_path):
    """Parse the dags/ folder in a fresh process where every way to a database or a connection raises."""
    script = textwrap.dedent(
        f"""
        from airflow.models import DagBag  # Airflow's own metadata engine is set up here, before the guards
        import socket, psycopg, sqlalchemy
        def refuse(*a, **k):
            raise AssertionError("database or connection access at parse time")
        psycopg.connect = refuse
        sqlalchemy.create_engine = refuse
        socket.socket.connect = refuse
        from airflow.sdk import BaseHook, Connection, Variable
        BaseHook.get_connection = classmethod(refuse)
        Connection.get = classmethod(refuse)
        Variable.get = classmethod(refuse)
        bag = DagBag(dag_folder={str(db.PROJECT_ROOT / "dags")!r})
        assert bag.import_errors == {{}}, bag.import_errors
        print(sorted(bag.dag_ids))
        """
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    assert MAIN in res.stdout and WATCHDOG in res.stdout and VERIFY in res.stdout


@pytest.mark.parametrize("dag_id", [MAIN, WATCHDOG, VERIFY])
def test_policy_owner_tags_retries_callbacks_timeouts(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.tags and "cabinet-leads" in dag.tags
    assert dag.doc_md and len(dag.doc_md) > 200
    assert dag.catchup is False and dag.max_active_runs == 1
    for t in dag.tasks:
        assert t.owner == "data-platform", t.task_id
        assert t.retries >= 2 and t.retry_exponential_backoff, t.task_id
        assert t.execution_timeout is not None and t.execution_timeout <= dt.timedelta(hours=1), t.task_id
        callbacks = t.on_failure_callback if isinstance(t.on_failure_callback, list) else [t.on_failure_callback]
        assert any(type(cb).__name__ == "SmtpNotifier" for cb in callbacks), t.task_id


def test_main_dag_tasks_and_schedule(dagbag):
    dag = dagbag.dags[MAIN]
    assert [t.task_id for t in dag.topological_sort()] == [
        "snapshot_limbo_distribution",
        "reconcile_recent_leads",
        "plan_limbo_batches",
        "reconcile_limbo_batch",
        "audit_weekly_funnel",
        "check_limbo_alerts",
    ]
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert dag.timetable.expression == "0 * * * *" and str(dag.timetable.timezone) == "UTC"
    # a real one-hour data interval: the run due at 10:00 processes [09:00, 10:00)
    from airflow.timetables.interval import CronDataIntervalTimetable

    core = CronDataIntervalTimetable(dag.timetable.expression, dag.timetable.timezone)
    import pendulum

    interval = core.infer_manual_data_interval(run_after=pendulum.datetime(2026, 3, 2, 10, 0, tz="UTC"))
    assert (interval.start, interval.end) == (
        dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC),
    )
    assert dag.task_dict["audit_weekly_funnel"].trigger_rule == "none_failed"


def test_param_schema(dagbag):
    params = dagbag.dags[MAIN].params
    schema = {k: params.get_param(k).schema for k in params}
    assert schema["recent_days"] == {"type": "integer", "minimum": 1, "maximum": 365}
    assert schema["batch_size"]["minimum"] == 50 and schema["batch_size"]["maximum"] == 5000
    assert schema["limbo_stages"]["items"]["enum"] == ["NO_IDENTITY", "NO_DRIVER", "TRIPS_NO_CLAIM"]
    assert schema["limbo_stages"]["items"]["enum"] == list(LIMBO_STAGES)  # one list of stages: cabinet_leads.funnel
    assert schema["limbo_stages"]["minItems"] == 1
    # Airflow 3.3's trigger form shows an array as a multi-select only with a top-level
    # `examples` (or `enum`) list; with `items.enum` alone it is a text box, one value per line
    assert schema["limbo_stages"]["type"] == "array" and schema["limbo_stages"]["examples"] == list(LIMBO_STAGES)
    assert schema["as_of"]["type"] == ["null", "string"] and schema["as_of"]["format"] == "date-time"
    assert params["as_of"] is None
    for flag in ("process_recent", "process_limbo", "dry_run"):
        assert schema[flag]["type"] == "boolean"
    assert params["dry_run"] is False and params["batch_size"] == 500 and params["recent_days"] == 30


def test_deadline_alert_by_default(monkeypatch):
    """With the environment of a deployment (no override) the DAG carries a 45-minute Deadline Alert."""
    monkeypatch.delenv("CABINET_LEADS_DEADLINE_MINUTES")
    path = db.PROJECT_ROOT / "dags" / f"{MAIN}.py"
    spec = importlib.util.spec_from_file_location("main_dag_fresh", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    alert = module.deadline
    assert alert is not None
    assert alert.interval == dt.timedelta(minutes=45)
    assert type(alert.reference).__name__ == "DagRunQueuedAtDeadline"
    # the triggerer awaits our callback, which looks at the run's state before it emails
    assert alert.callback.path == "cabinet_leads_airflow.deadline_alert"
    assert alert.callback.kwargs["deadline_minutes"] == 45


def _fresh_main_module(name: str):
    path = db.PROJECT_ROOT / "dags" / f"{MAIN}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_schedule_is_configuration_and_the_alerts_follow_it(monkeypatch):
    """CABINET_LEADS_SCHEDULE='*/15 * * * *': that cadence, a deadline of 3/4 of it, a watchdog limit of two."""
    from cabinet_leads_airflow import watchdog_default_max_age_minutes

    monkeypatch.delenv("CABINET_LEADS_DEADLINE_MINUTES")
    monkeypatch.setenv("CABINET_LEADS_SCHEDULE", "*/15 * * * *")
    module = _fresh_main_module("main_dag_15min")
    dag = module.reconcile_cabinet_leads_pipeline()
    assert dag.timetable.expression == "*/15 * * * *"
    assert module.deadline.interval == dt.timedelta(minutes=11.25)
    assert module.deadline.callback.kwargs["deadline_minutes"] == 11.25
    assert watchdog_default_max_age_minutes() == 30

    monkeypatch.setenv("CABINET_LEADS_SCHEDULE", "@daily")
    assert watchdog_default_max_age_minutes() == 2 * 24 * 60
    monkeypatch.delenv("CABINET_LEADS_SCHEDULE")
    assert watchdog_default_max_age_minutes() == 120  # hourly by default
    monkeypatch.setenv("CABINET_LEADS_SCHEDULE", "every quarter hour")
    with pytest.raises(ValueError, match="CABINET_LEADS_SCHEDULE must be a cron expression"):
        _fresh_main_module("main_dag_bad")


def test_every_task_returns_one_xcom_value(dagbag):
    """A TaskFlow task annotated `-> dict` would push one XCom per key (22 for the audit): none may."""
    for dag in dagbag.dags.values():
        for t in dag.tasks:
            assert getattr(t, "multiple_outputs", False) is False, t.task_id


@pytest.mark.parametrize(
    ("run_type", "as_of", "expected"),
    [
        ("scheduled", None, ("2026-03-02T10:00:00+00:00", "data_interval_end")),
        ("backfill", None, ("2026-03-02T10:00:00+00:00", "data_interval_end")),
        ("manual", None, ("2026-03-02T10:17:42+00:00", "run_after")),
        ("manual", "2026-02-01T08:00:00Z", ("2026-02-01T08:00:00+00:00", "as_of")),
        ("manual", "2026-02-01T08:00", ("2026-02-01T08:00:00+00:00", "as_of")),  # the form's value: UTC
        ("backfill", "2026-02-01T08:00:00+01:00", ("2026-02-01T08:00:00+01:00", "as_of")),
    ],
)
def test_run_anchor_rule(run_type, as_of, expected):
    from types import SimpleNamespace

    from cabinet_leads_airflow import run_anchor

    run = SimpleNamespace(
        run_type=run_type,
        data_interval_end=dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC),
        run_after=dt.datetime(2026, 3, 2, 10, 17, 42, tzinfo=dt.UTC),
    )
    anchor, why = run_anchor(run, {"as_of": as_of})
    assert (anchor.isoformat(), why) == expected


def test_run_anchor_refuses_a_date_that_does_not_exist():
    from types import SimpleNamespace

    from cabinet_leads_airflow import run_anchor

    run = SimpleNamespace(run_type="manual", data_interval_end=None, run_after=dt.datetime(2026, 3, 2, tzinfo=dt.UTC))
    with pytest.raises(ValueError, match="as_of must be an ISO date-time"):
        run_anchor(run, {"as_of": "2026-02-30T10:00:00Z"})
