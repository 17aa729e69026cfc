"""
### Watchdog: did the cabinet leads reconciliation run?

Deadline Alerts only fire for runs that exist. This DAG (every 30 minutes) catches the rest: the
main DAG paused, broken by an import error, or failing run after run. It reads the job's own run
records (`ops.reconcile_runs`, written by `audit_weekly_funnel`) and emails
`CABINET_LEADS_ALERT_EMAIL` when the last successful Airflow run of
`reconcile_cabinet_leads_pipeline` finished longer ago than the Airflow Variable
`cabinet_leads_watchdog_max_age_minutes` (default 120, the runbook's "no se ejecutó en las
últimas 2 horas"). A dead scheduler stops this DAG too: for that, run
`cabinet-leads health --max-age 2h` from an external monitor (cron, Kubernetes probe).
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import CronTriggerTimetable, dag, task

RECONCILE_CONN_ID = "reconcile_db"
SMTP_CONN_ID = "smtp_default"
WATCHED_DAG_ID = "reconcile_cabinet_leads_pipeline"
ALERT_EMAIL = os.environ.get("CABINET_LEADS_ALERT_EMAIL", "data-oncall@example.com")

failure_email = SmtpNotifier(
    to=ALERT_EMAIL,
    smtp_conn_id=SMTP_CONN_ID,
    subject="[cabinet-leads] FAILED {{ ti.dag_id }}.{{ ti.task_id }} run {{ run_id }} try {{ ti.try_number }}",
    html_content=(
        "<p>The watchdog itself failed, so it cannot tell whether the reconciliation runs.</p>"
        "<ul><li>run: {{ run_id }}</li><li>try number: {{ ti.try_number }}</li>"
        "<li>exception: <pre>{{ exception | e }}</pre></li>"
        "<li>log: <a href='{{ ti.log_url }}'>{{ ti.log_url }}</a></li></ul>"
    ),
)


@dag(
    dag_id="reconcile_cabinet_leads_watchdog",
    schedule=CronTriggerTimetable("*/30 * * * *", timezone="UTC"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["cabinet-leads", "monitoring"],
    default_args={
        "owner": "data-platform",
        "retries": 2,
        "retry_delay": dt.timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=5),
        "execution_timeout": dt.timedelta(minutes=5),
        "on_failure_callback": [failure_email],
    },
)
def reconcile_cabinet_leads_watchdog():
    @task(task_id="check_last_successful_run")
    def check_last_successful_run(dag_run=None) -> dict:
        """Email when the newest successful Airflow run is older than the limit (or there is none)."""
        import html

        from airflow.providers.postgres.hooks.postgres import PostgresHook
        from airflow.providers.smtp.hooks.smtp import SmtpHook
        from airflow.sdk import Variable

        from cabinet_leads.db import read_sql

        max_age = int(Variable.get("cabinet_leads_watchdog_max_age_minutes", default=120)) * 60
        hook = PostgresHook(postgres_conn_id=RECONCILE_CONN_ID)
        row = hook.get_first(read_sql("reconcile/last_success.sql"), parameters={"triggered_by": "airflow"})
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
            with SmtpHook(smtp_conn_id=SMTP_CONN_ID) as smtp:
                smtp.send_email_smtp(to=ALERT_EMAIL, subject=subject, html_content=body)
        return {"stale": stale, "age_seconds": age, "max_age_seconds": max_age}

    check_last_successful_run()


reconcile_cabinet_leads_watchdog()
