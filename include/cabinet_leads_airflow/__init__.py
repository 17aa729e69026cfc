"""Airflow glue shared by the DAG files (which never import each other): connection ids, the
failure-email notifier, default task arguments, the pipeline on the reconcile_db connection and
plain email sending. Installed with the project, so workers and the triggerer can import it.
The domain logic stays in the Airflow-free ``cabinet_leads`` package."""

from __future__ import annotations

import datetime as dt
import os

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

RECONCILE_CONN_ID = "reconcile_db"
SMTP_CONN_ID = "smtp_default"
OWNER = "data-platform"
STATEMENT_TIMEOUT_MS = 10 * 60 * 1000


def alert_email() -> str:
    """Where alerts go: CABINET_LEADS_ALERT_EMAIL (read at parse time from the environment only)."""
    return os.environ.get("CABINET_LEADS_ALERT_EMAIL", "data-oncall@example.com")


def failure_notifier(what: str = "") -> SmtpNotifier:
    """Task-level on_failure_callback: DAG, task, run, try number, exception and log link."""
    return SmtpNotifier(
        to=alert_email(),
        smtp_conn_id=SMTP_CONN_ID,
        subject="[cabinet-leads] FAILED {{ ti.dag_id }}.{{ ti.task_id }} run {{ run_id }} try {{ ti.try_number }}",
        html_content=(
            f"<p>Task <b>{{{{ ti.task_id }}}}</b> of DAG <b>{{{{ ti.dag_id }}}}</b> failed.{what}</p>"
            "<ul><li>run: {{ run_id }}</li><li>try number: {{ ti.try_number }}</li>"
            "<li>map index: {{ ti.map_index }}</li>"
            "<li>exception: <pre>{{ exception | e }}</pre></li>"
            "<li>log: <a href='{{ ti.log_url }}'>{{ ti.log_url }}</a></li></ul>"
        ),
    )


def default_args(*, execution_timeout: dt.timedelta, max_retry_delay: dt.timedelta, what: str = "") -> dict:
    """Owner, retries with exponential backoff, a timeout and the failure email, for every task."""
    return {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": dt.timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": max_retry_delay,
        "execution_timeout": execution_timeout,
        "on_failure_callback": [failure_notifier(what)],
    }


def reconcile_engine():
    """SQLAlchemy engine of the reconcile_db connection (call inside tasks only)."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return PostgresHook(postgres_conn_id=RECONCILE_CONN_ID).get_sqlalchemy_engine()


def pipeline(batch_size: int = 500, external_run_id: str | None = None):
    """The domain pipeline on reconcile_db, as Airflow runs it (call inside tasks only)."""
    from cabinet_leads.pipeline import ReconcileCabinetLeadsPipeline

    return ReconcileCabinetLeadsPipeline(
        reconcile_engine(),
        batch_size=int(batch_size),
        triggered_by="airflow",
        external_run_id=external_run_id,
        statement_timeout_ms=STATEMENT_TIMEOUT_MS,
    )


def send_email(subject: str, html_content: str) -> None:
    """One email through smtp_default to the alert address (call inside tasks only)."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=SMTP_CONN_ID) as smtp:
        smtp.send_email_smtp(to=alert_email(), subject=subject, html_content=html_content)
