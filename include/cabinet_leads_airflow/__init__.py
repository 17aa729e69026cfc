"""Airflow glue shared by the DAG files (which never import each other): connection ids, the
failure-email notifier, default task arguments, the pipeline on the reconcile_db connection,
plain email sending, the Deadline Alert callback (run by the triggerer), the anchor of a run's
recent window, the one log line per task, and the DAG Params built from the run-parameter model
(``cabinet_leads.params``). Installed with the project, so workers and the
triggerer can import it. The domain logic stays in the Airflow-free ``cabinet_leads`` package."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os

from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import Param

from cabinet_leads.params import BATCH_SIZE, RUN_PARAMETERS, RunParameter

RECONCILE_CONN_ID = "reconcile_db"
SMTP_CONN_ID = "smtp_default"
OWNER = "data-platform"
STATEMENT_TIMEOUT_MINUTES = 10  # the DAG's default statement limit (Param statement_timeout_minutes)


SCHEDULE_PRESETS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *"}


def schedule_cron() -> str:
    """The main DAG's cadence: CABINET_LEADS_SCHEDULE (a cron expression or @hourly/@daily; default
    hourly), read at parse time from the environment only. An invalid value is an import error
    naming the variable."""
    from croniter import croniter

    value = os.environ.get("CABINET_LEADS_SCHEDULE", "").strip() or "@hourly"
    cron = SCHEDULE_PRESETS.get(value, value)
    if not croniter.is_valid(cron):
        raise ValueError(f"CABINET_LEADS_SCHEDULE must be a cron expression or @hourly/@daily, got {value!r}")
    return cron


def schedule_interval(cron: str) -> dt.timedelta:
    """The longest gap between two runs of ``cron`` over a week (what the deadline and the watchdog
    scale with)."""
    from croniter import croniter

    it = croniter(cron, dt.datetime(2026, 1, 5, tzinfo=dt.UTC))
    times = [it.get_next(dt.datetime) for _ in range(2)]
    while times[-1] - times[0] < dt.timedelta(days=7) and len(times) < 2000:
        times.append(it.get_next(dt.datetime))
    return max(b - a for a, b in zip(times, times[1:], strict=False))


def deadline_minutes(cron: str) -> float:
    """CABINET_LEADS_DEADLINE_MINUTES, else three quarters of the schedule's interval (45 for hourly)."""
    configured = os.environ.get("CABINET_LEADS_DEADLINE_MINUTES", "").strip()
    if configured:
        return float(configured)
    return schedule_interval(cron).total_seconds() / 60 * 0.75


def watchdog_default_max_age_minutes() -> int:
    """Two intervals of the main DAG's schedule (120 for hourly): the watchdog's default limit."""
    return int(2 * schedule_interval(schedule_cron()).total_seconds() // 60)


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


def reconcile_engine(**engine_kwargs):
    """SQLAlchemy engine of the reconcile_db connection (call inside tasks only)."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return PostgresHook(postgres_conn_id=RECONCILE_CONN_ID).get_sqlalchemy_engine(engine_kwargs=engine_kwargs)


def pipeline(batch_size: int = BATCH_SIZE.default, external_run_id: str | None = None,
             progress_label: str | None = None, statement_timeout_minutes: int = STATEMENT_TIMEOUT_MINUTES,
             *, full: bool = False, run_lock_timeout: float = 600.0):
    """The domain pipeline on reconcile_db, as Airflow runs it (call inside tasks only). With
    ``progress_label`` its lead batches log progress lines (``<label>: progress: 1,000/5,000 leads
    (20%), ...``) to the task log."""
    from cabinet_leads.engine.progress import LogLines
    from cabinet_leads.pipeline import ReconcileCabinetLeadsPipeline

    return ReconcileCabinetLeadsPipeline(
        reconcile_engine(),
        batch_size=int(batch_size),
        triggered_by="airflow",
        external_run_id=external_run_id,
        statement_timeout_ms=int(statement_timeout_minutes) * 60 * 1000,
        full=full,
        run_lock_timeout=run_lock_timeout,
        progress=LogLines(progress_label) if progress_label else None,
    )


def dag_param(param: RunParameter) -> Param:
    """The DAG Param of a run parameter: default, bounds (or choices) and description from the model."""
    if param.choices:
        return Param(
            list(param.default),
            type="array",
            items={"type": "string", "enum": list(param.choices)},
            # the trigger form shows an array with top-level `examples` as a multi-select
            examples=list(param.choices),
            minItems=1,
            uniqueItems=True,
            description=param.description,
        )
    if param.is_flag:
        return Param(param.default, type="boolean", description=param.description)
    return Param(param.default, type="integer", minimum=param.minimum, maximum=param.maximum,
                 description=param.description)


def dag_params() -> dict[str, Param]:
    """The run parameters the reconcile DAG takes, in the trigger form's order, then the statement
    limit of its tasks (the DAG's own: the CLI and the API take CABINET_LEADS_STATEMENT_TIMEOUT)."""
    return {
        **{p.name: dag_param(p) for p in RUN_PARAMETERS.values() if p.dag},
        "statement_timeout_minutes": Param(
            STATEMENT_TIMEOUT_MINUTES, type="integer", minimum=1, maximum=1440,
            description="Longest SQL statement of the job's tasks, in minutes; a statement that runs longer "
            "fails its task with one line naming the step and the limit",
        ),
    }


def send_email(subject: str, html_content: str) -> None:
    """One email through smtp_default to the alert address (call inside tasks only)."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=SMTP_CONN_ID) as smtp:
        smtp.send_email_smtp(to=alert_email(), subject=subject, html_content=html_content)


async def deadline_alert(
    *, to: str, deadline_minutes: float, smtp_conn_id: str = SMTP_CONN_ID, context: dict | None = None
) -> str:
    """Deadline Alert callback (an ``AsyncCallback``: the triggerer awaits it when a run's deadline
    has passed). Airflow gives it only ``context["dag_run"]`` (the run as the REST API shows it,
    taken when the deadline passed) and ``context["deadline"]``. A run that already ended before
    its deadline gets no email (Airflow keeps the deadline of a failed run, and its failure was
    emailed already); a late run gets one that names it, its state, how long it has run, and
    links to it. Returns what it did (the callback's result in Airflow)."""
    from airflow.configuration import conf
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    from cabinet_leads import alerts

    context = context or {}
    dag_run, deadline = context.get("dag_run") or {}, context.get("deadline") or {}
    run = f"{dag_run.get('dag_id')} run {dag_run.get('dag_run_id')}"
    notice = alerts.deadline_notice(
        dag_run,
        deadline,
        now=dt.datetime.now(dt.UTC),
        deadline_minutes=float(deadline_minutes),
        base_url=conf.get("api", "base_url", fallback="") or "",
    )
    if notice is None:
        message = f"no email: {run} ended ({dag_run.get('state')}) before its deadline"
        logging.getLogger(__name__).info("deadline alert: %s", message)
        return message
    subject, body = notice
    async with SmtpHook(smtp_conn_id=smtp_conn_id) as smtp:
        await smtp.asend_email_smtp(to=to, subject=subject, html_content=body)
    logging.getLogger(__name__).info("deadline alert: emailed %s: %s", to, subject)
    return f"emailed {to}: {subject}"


def run_anchor(dag_run, params: dict) -> tuple[dt.datetime, str]:
    """The end of a run's recent window, and why (the rule the README documents):

    1. the ``as_of`` Param when it is given (any kind of run);
    2. a manual run (UI or REST trigger, ``airflow dags trigger``): its ``run_after``, the moment it
       was triggered, whatever logical date the form pre-filled;
    3. a scheduled or backfill run: the end of its data interval (the run due at 10:00 covers
       leads created up to 10:00).
    """
    as_of = params.get("as_of")
    if as_of:
        try:
            when = dt.datetime.fromisoformat(str(as_of).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"as_of must be an ISO date-time such as 2026-03-02T10:00:00Z, got {as_of!r}") from None
        return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)), "as_of"
    run_type = str(getattr(dag_run.run_type, "value", dag_run.run_type))
    if run_type == "manual" or dag_run.data_interval_end is None:
        return dag_run.run_after, "run_after"
    return dag_run.data_interval_end, "data_interval_end"


def log_task(what: str, **fields) -> None:
    """One line per task in its log: what it did, with its window, params and counts."""
    text = " ".join(f"{k}={json.dumps(v, default=str, sort_keys=True)}" for k, v in fields.items())
    logging.getLogger("cabinet_leads.task").info("%s: %s", what, text)
