"""
### Reconcile cabinet leads (hourly)

Replaces the runbook's `reconcile_cabinet_leads_pipeline.py` job. Every hour it links new partner
cabinet leads to canonical persons and driver accounts, works through the limbo backlog, refreshes
the claim worklist (`ops.milestone_claim_worklist`) and checks the runbook's limbo alerts.
All business logic lives in the `cabinet_leads` package; this file only wires tasks.

**Window.** Schedule `CronDataIntervalTimetable("0 * * * *", UTC)`: the run due at 10:00 has the
data interval [09:00, 10:00). Recent leads are those created in
`[data_interval_end - recent_days, data_interval_end)`; a manual run without a logical date
anchors on `dag_run.run_after`. Backfills therefore process each run's own window.

**Tasks.** `snapshot_limbo_distribution` (records the run, before-snapshot) →
`reconcile_recent_leads` (driver accounts, then the recent window) → `plan_limbo_batches` →
`reconcile_limbo_batch` (mapped) → `audit_weekly_funnel` (weekly view, after-snapshot, summed
statistics, run record) → `check_limbo_alerts`.

**Why mapped ranges and not one task per 500 leads.** Airflow caps a mapped task at
`max_map_length` (1024) instances and every instance costs seconds of scheduling and start-up,
so a backlog of a million leads must not become 2,000 task instances. `plan_limbo_batches` cuts
the backlog that needs work into contiguous lead-id ranges of whole batches, at most
`MAX_MAPPED_RANGES` (64) of them; each mapped instance works through its range in transactions of
`batch_size` leads. Up to 64 × `batch_size` leads that is one instance per batch. Only range
bounds travel through XCom (never lead lists); statistics are small dicts summed by the audit task.

**Params** (validated before a run is created): `process_recent`, `recent_days` (1–365),
`process_limbo`, `limbo_stages` (one or more of NO_IDENTITY, NO_DRIVER, TRIPS_NO_CLAIM),
`batch_size` (50–5000), `dry_run` (each task rolls its own work back; run records and snapshots
are kept, and later tasks do not see earlier tasks' would-be links).

**Alerts.** Task failures email `CABINET_LEADS_ALERT_EMAIL` through `smtp_default` (task-level
`on_failure_callback`). A run not finished `CABINET_LEADS_DEADLINE_MINUTES` (default 45) after it
was queued emails through a Deadline Alert (0 disables it). Limbo thresholds come from Airflow
Variables (see `check_limbo_alerts`). "No run at all" is the watchdog DAG's job.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import (
    AsyncCallback,
    CronDataIntervalTimetable,
    DeadlineAlert,
    DeadlineReference,
    Param,
    dag,
    task,
)
from cabinet_leads_airflow import SMTP_CONN_ID, alert_email, default_args, pipeline, send_email

DAG_ID = "reconcile_cabinet_leads_pipeline"
DEADLINE_MINUTES = float(os.environ.get("CABINET_LEADS_DEADLINE_MINUTES", "45"))
MAX_MAPPED_RANGES = 64
LIMBO_STAGES = ["NO_IDENTITY", "NO_DRIVER", "TRIPS_NO_CLAIM"]

deadline = None
if DEADLINE_MINUTES > 0:
    deadline = DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=dt.timedelta(minutes=DEADLINE_MINUTES),
        callback=AsyncCallback(
            SmtpNotifier,
            kwargs={
                "to": alert_email(),
                "smtp_conn_id": SMTP_CONN_ID,
                "subject": f"[cabinet-leads] DEADLINE MISSED: {DAG_ID} not finished {DEADLINE_MINUTES:g} min after queued",
                "html_content": (
                    f"<p>A run of <b>{DAG_ID}</b> has not finished {DEADLINE_MINUTES:g} minutes after it was "
                    "queued (Airflow Deadline Alert, the replacement of SLA misses).</p>"
                    "<p>Look at the running tasks in the Airflow UI; the job holds no lock across runs, "
                    "the next run will pick up whatever this one did not finish.</p>"
                ),
            },
        ),
    )


def _pipeline(params: dict, external_run_id: str | None = None):
    return pipeline(params["batch_size"], external_run_id)


def _anchor(run: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(run["anchor"])


@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["cabinet-leads", "identity", "reconcile"],
    deadline=deadline,
    default_args=default_args(
        execution_timeout=dt.timedelta(minutes=30), max_retry_delay=dt.timedelta(minutes=10)
    ),
    params={
        "process_recent": Param(True, type="boolean", description="Reconcile leads of the recent window"),
        "recent_days": Param(30, type="integer", minimum=1, maximum=365, description="Recent window in days"),
        "process_limbo": Param(True, type="boolean", description="Work through the limbo backlog"),
        "limbo_stages": Param(
            LIMBO_STAGES,
            type="array",
            items={"type": "string", "enum": LIMBO_STAGES},
            minItems=1,
            uniqueItems=True,
            description="Limbo stages whose leads are reconciled",
        ),
        "batch_size": Param(500, type="integer", minimum=50, maximum=5000, description="Leads per transaction"),
        "dry_run": Param(False, type="boolean", description="Compute statistics and roll the work back"),
    },
)
def reconcile_cabinet_leads_pipeline():
    @task(task_id="snapshot_limbo_distribution", execution_timeout=dt.timedelta(minutes=10))
    def snapshot_limbo_distribution(params=None, dag_run=None, data_interval_end=None) -> dict:
        """Record the run and the limbo distribution before any work."""
        anchor = data_interval_end or dag_run.run_after
        pipeline = _pipeline(params, external_run_id=dag_run.run_id)
        run_id = pipeline.begin_run({**params, "anchor": anchor.isoformat()}, dry_run=params["dry_run"])
        before = pipeline.take_snapshot(run_id, "before", anchor, params["recent_days"])
        return {"run_id": run_id, "anchor": anchor.isoformat(), "limbo_before": before}

    @task(task_id="reconcile_recent_leads")
    def reconcile_recent_leads(run: dict, params=None) -> dict:
        """Driver accounts first, then the leads of the recent window that need work."""
        return _pipeline(params).reconcile_recent(
            run["run_id"],
            _anchor(run),
            params["recent_days"],
            include_leads=params["process_recent"],
            dry_run=params["dry_run"],
        )

    @task(task_id="plan_limbo_batches", execution_timeout=dt.timedelta(minutes=10))
    def plan_limbo_batches(run: dict, recent: dict, params=None) -> list[dict]:
        """Cut the limbo backlog that needs work into at most MAX_MAPPED_RANGES lead-id ranges."""
        if not params["process_limbo"]:
            return []
        ranges = _pipeline(params).plan_limbo(_anchor(run), params["limbo_stages"], max_ranges=MAX_MAPPED_RANGES)
        return [{"lo": r.lo, "hi": r.hi, "leads": r.leads} for r in ranges]

    @task(task_id="reconcile_limbo_batch", map_index_template="{{ task.op_kwargs['lead_range'] }}")
    def reconcile_limbo_batch(lead_range: dict, run: dict, params=None) -> dict:
        """Every lead of one range that needs work, in transactions of batch_size leads."""
        from cabinet_leads.pipeline import LeadRange

        return _pipeline(params).reconcile_limbo_range(
            run["run_id"], LeadRange(**lead_range), _anchor(run), params["limbo_stages"], dry_run=params["dry_run"]
        )

    @task(task_id="audit_weekly_funnel", trigger_rule="none_failed")
    def audit_weekly_funnel(run: dict, recent: dict, limbo: list[dict] | None, params=None) -> dict:
        """Weekly funnel view, after-snapshot, statistics summed over all tasks, run record."""
        from cabinet_leads import funnel
        from cabinet_leads.pipeline import add_stats, empty_stats, merge_stats

        pipeline = _pipeline(params)
        parts = list(limbo or [])  # a lazy sequence of the mapped results
        stats = add_stats(empty_stats(), recent)
        for part in parts:
            add_stats(stats, part)
        stats["limbo_batch_tasks"] = len(parts)
        merge_stats(stats, pipeline.finish_work(run["run_id"], _anchor(run), params["recent_days"],
                                                dry_run=params["dry_run"]))
        with pipeline.db.connect() as conn:
            weeks = funnel.weekly_audit(conn, weeks=4)
        stats["limbo_before"] = run["limbo_before"]
        stats["weekly_audit"] = [{k: str(v) if k == "week_start" else v for k, v in w.items()} for w in weeks]
        stats["run_id"] = run["run_id"]
        pipeline.end_run(run["run_id"], "success", stats)
        return stats

    @task(task_id="check_limbo_alerts", execution_timeout=dt.timedelta(minutes=5))
    def check_limbo_alerts(summary: dict, params=None, dag_run=None) -> list[str]:
        """Email when limbo_no_identity (last week) or limbo_trips_no_claim is above, or grew by more
        than, its threshold. Airflow Variables (defaults in brackets):
        cabinet_leads_max_no_identity_last_week [50], cabinet_leads_max_no_identity_growth [20],
        cabinet_leads_max_trips_no_claim [500], cabinet_leads_max_trips_no_claim_growth [50]."""
        from airflow.sdk import Variable

        from cabinet_leads import alerts

        thresholds = alerts.Thresholds(
            **{
                name: int(Variable.get(f"cabinet_leads_{name}", default=default))
                for name, default in vars(alerts.Thresholds()).items()
            }
        )
        previous = _pipeline(params).previous_alert_metrics(summary["run_id"])
        found = alerts.evaluate(summary["alert_metrics"], previous, thresholds)
        if found:
            send_email(*alerts.email(found, dag_id=DAG_ID, run_id=dag_run.run_id))
        return [f"{a.metric}: {a.reason}" for a in found]

    run = snapshot_limbo_distribution()
    recent = reconcile_recent_leads(run)
    plan = plan_limbo_batches(run, recent)
    limbo = reconcile_limbo_batch.partial(run=run).expand(lead_range=plan)
    summary = audit_weekly_funnel(run, recent, limbo)
    check_limbo_alerts(summary)


reconcile_cabinet_leads_pipeline()
