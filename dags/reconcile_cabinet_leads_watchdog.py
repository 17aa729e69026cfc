"""
### Watchdog: did the cabinet leads reconciliation run?

Deadline Alerts only fire for runs that exist. This DAG (every 30 minutes) catches the rest: the
main DAG paused, broken by an import error, or failing run after run. It reads the job's own run
records (`ops.reconcile_runs`, written by `audit_weekly_funnel`) and emails
`CABINET_LEADS_ALERT_EMAIL` when the last successful Airflow run of
`reconcile_cabinet_leads_pipeline` finished longer ago than the Airflow Variable
`cabinet_leads_watchdog_max_age_minutes` (default: two intervals of the main DAG's schedule,
`CABINET_LEADS_SCHEDULE`: 120 for hourly, the runbook's "no se ejecutó en las últimas 2 horas"). A dead scheduler stops this DAG too: for that, run
`cabinet-leads health --max-age 2h` from an external monitor (cron, Kubernetes probe).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import CronTriggerTimetable, dag, task
from cabinet_leads_airflow import default_args, reconcile_engine, send_email, watchdog_default_max_age_minutes

WATCHED_DAG_ID = "reconcile_cabinet_leads_pipeline"


@dag(
    dag_id="reconcile_cabinet_leads_watchdog",
    schedule=CronTriggerTimetable("*/30 * * * *", timezone="UTC"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["cabinet-leads", "monitoring"],
    default_args=default_args(
        execution_timeout=dt.timedelta(minutes=5),
        max_retry_delay=dt.timedelta(minutes=5),
        what=" The watchdog cannot tell whether the reconciliation runs.",
    ),
)
def reconcile_cabinet_leads_watchdog():
    @task(task_id="check_last_successful_run", multiple_outputs=False)
    def check_last_successful_run(dag_run=None) -> dict:
        """Email when the newest successful Airflow run is older than the limit (or there is none)."""
        import html

        from airflow.sdk import Variable

        from cabinet_leads.db import read_sql

        default = watchdog_default_max_age_minutes()  # two intervals of CABINET_LEADS_SCHEDULE
        max_age = int(Variable.get("cabinet_leads_watchdog_max_age_minutes", default=default)) * 60
        with reconcile_engine().connect() as conn:
            row = conn.exec_driver_sql(read_sql("reconcile/last_success.sql"), {"triggered_by": "airflow"}).first()
        age = None if row is None else int(row[3])
        stale = age is None or age > max_age
        if stale:
            when = "never" if age is None else f"{age // 60} minutes ago (run {row[0]})"
            subject = f"[cabinet-leads] NO RECENT RUN: {WATCHED_DAG_ID} last succeeded {when}"
            body = (
                f"<p>The last successful run of <b>{WATCHED_DAG_ID}</b> finished {html.escape(when)}; "
                f"the limit is {max_age // 60} minutes.</p><p>Is the DAG paused, failing, or not importing? "
                "Check the Airflow UI (DAG import errors, recent runs).</p>"
                f"<p>Watchdog run {html.escape(dag_run.run_id)}.</p>"
            )
            send_email(subject, body)
        return {"stale": stale, "age_seconds": age, "max_age_seconds": max_age}

    check_last_successful_run()


reconcile_cabinet_leads_watchdog()
