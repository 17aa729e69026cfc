"""
### Reconcile cabinet leads (hourly)

Replaces the runbook's `reconcile_cabinet_leads_pipeline.py` job. Every hour it links new partner
cabinet leads to canonical persons and driver accounts, works through the limbo backlog, refreshes
the claim worklist (`ops.milestone_claim_worklist`) and checks the runbook's limbo alerts.
All business logic lives in the `cabinet_leads` package; this file only wires tasks.

**Window.** Schedule `CronDataIntervalTimetable(CABINET_LEADS_SCHEDULE, UTC)`, hourly by default (a
cron expression or @hourly/@daily, e.g. `*/15 * * * *`): the hourly run due at 10:00 has the data
interval [09:00, 10:00). The Deadline Alert (three quarters of the interval unless
CABINET_LEADS_DEADLINE_MINUTES is set) and the watchdog's default limit (two intervals) follow it. Recent leads are those created in `[anchor - recent_days, anchor)`.
The anchor: the `as_of` Param when given; else, for a manual run (UI form, REST, CLI trigger), its
`run_after` (the moment it was triggered: the logical date the UI form pre-fills does not count);
else (scheduled and backfill runs) the end of its data interval. So each backfill run processes a
`recent_days` window ending at its own hour.

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

**Params** (validated before a run is created; defaults, bounds and descriptions come from
`cabinet_leads.params`, the model the Python API and the CLI check with too): `process_recent`,
`recent_days` (1–365), `process_limbo`, `limbo_stages` (one or more of NO_IDENTITY, NO_DRIVER,
TRIPS_NO_CLAIM; a multi-select in the trigger form), `batch_size` (50–5000), `dry_run` (each task
rolls its own work back; run records and snapshots are kept, and later tasks do not see earlier
tasks' would-be links), `as_of` (optional ISO date-time: the end of the recent window instead of
the rule above), `statement_timeout_minutes` (1–1440, default 10: the longest SQL statement of each
task; one longer fails the task with one line naming the step and the limit).

**Alerts.** Task failures email `CABINET_LEADS_ALERT_EMAIL` through `smtp_default` (task-level
`on_failure_callback`). A run still queued or running `CABINET_LEADS_DEADLINE_MINUTES` (default
45) after it was queued emails through a Deadline Alert, naming the run, its state, how long it
has run and its link (0 disables it); a run that ended before its deadline gets no such email.
Limbo alerts remember their state in `ops.alert_state` (see `check_limbo_alerts`): one email when
an alert starts to fire, at most one per `cabinet_leads_alert_repeat_hours` while it keeps firing,
one when it is resolved; backfill runs never alert. "No run at all" is the watchdog DAG's job.

**Logs and XCom.** Each task logs one line `cabinet_leads.task ... <task>: window=... params=...`
with its counts; each task returns one XCom value (the audit's statistics are one dict). While
they work, `reconcile_recent_leads` and each `reconcile_limbo_batch` log progress lines
(`cabinet_leads.progress ... reconcile_limbo_batch 1-50000: progress: 12,000/50,000 leads (24%),
2,100 leads/s, ETA 18 s`) at every tenth of their leads and at least every 10 s.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import (
    AsyncCallback,
    CronDataIntervalTimetable,
    DeadlineAlert,
    DeadlineReference,
    Param,
    dag,
    task,
)
from cabinet_leads_airflow import (
    SMTP_CONN_ID,
    alert_email,
    dag_params,
    deadline_alert,
    deadline_minutes,
    default_args,
    log_task,
    pipeline,
    run_anchor,
    schedule_cron,
    send_email,
)

DAG_ID = "reconcile_cabinet_leads_pipeline"
SCHEDULE = schedule_cron()  # CABINET_LEADS_SCHEDULE, default hourly
DEADLINE_MINUTES = deadline_minutes(SCHEDULE)
MAX_MAPPED_RANGES = 64
# what the form's date-time field and an ISO date-time look like (Airflow does not check `format`)
AS_OF_PATTERN = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$"

deadline = None
if DEADLINE_MINUTES > 0:
    deadline = DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=dt.timedelta(minutes=DEADLINE_MINUTES),
        callback=AsyncCallback(
            deadline_alert,
            kwargs={"to": alert_email(), "smtp_conn_id": SMTP_CONN_ID, "deadline_minutes": DEADLINE_MINUTES},
        ),
    )


def _pipeline(params: dict, external_run_id: str | None = None, progress_label: str | None = None):
    return pipeline(params["batch_size"], external_run_id, progress_label, params["statement_timeout_minutes"])


def _anchor(run: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(run["anchor"])


def _window(run: dict, params: dict) -> dict:
    """The recent window of a run, for the task log lines."""
    anchor = _anchor(run)
    return {"from": anchor - dt.timedelta(days=params["recent_days"]), "to": anchor, "anchor_from": run["anchor_from"]}


@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable(SCHEDULE, timezone="UTC"),
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
        **dag_params(),  # the shared run parameters, statement_timeout_minutes
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date-time",
            pattern=AS_OF_PATTERN,
            description="End of the recent window (ISO date-time, UTC when no offset). Empty: a manual run "
            "uses the moment it was triggered, scheduled and backfill runs the end of their data interval.",
        ),
    },
)
def reconcile_cabinet_leads_pipeline():
    @task(task_id="snapshot_limbo_distribution", execution_timeout=dt.timedelta(minutes=10), multiple_outputs=False)
    def snapshot_limbo_distribution(params=None, dag_run=None) -> dict:
        """Record the run and the limbo distribution before any work."""
        from airflow.sdk.exceptions import AirflowFailException

        try:
            anchor, anchor_from = run_anchor(dag_run, params)
        except ValueError as exc:  # a bad as_of: retrying will not help, fail the run now
            raise AirflowFailException(str(exc)) from None
        pipeline = _pipeline(params, external_run_id=dag_run.run_id)
        run_id = pipeline.begin_run({**params, "anchor": anchor.isoformat()}, dry_run=params["dry_run"])
        before = pipeline.take_snapshot(run_id, "before", anchor, params["recent_days"])
        run = {"run_id": run_id, "anchor": anchor.isoformat(), "anchor_from": anchor_from, "limbo_before": before}
        log_task(
            "snapshot_limbo_distribution",
            window=_window(run, params),
            run_type=dag_run.run_type,
            params=dict(params),
            reconcile_run_id=run_id,
            limbo_before=before,
        )
        return run

    @task(task_id="reconcile_recent_leads", multiple_outputs=False)
    def reconcile_recent_leads(run: dict, params=None) -> dict:
        """Driver accounts first, then the leads of the recent window that need work."""
        stats = _pipeline(params, progress_label="reconcile_recent_leads").reconcile_recent(
            run["run_id"],
            _anchor(run),
            params["recent_days"],
            include_leads=params["process_recent"],
            dry_run=params["dry_run"],
        )
        log_task(
            "reconcile_recent_leads",
            window=_window(run, params),
            params={k: params[k] for k in ("process_recent", "recent_days", "batch_size", "dry_run")},
            counts=stats,
        )
        return stats

    @task(task_id="plan_limbo_batches", execution_timeout=dt.timedelta(minutes=10))
    def plan_limbo_batches(run: dict, recent: dict, params=None) -> list[dict]:
        """Cut the limbo backlog that needs work into at most MAX_MAPPED_RANGES lead-id ranges."""
        ranges = []
        if params["process_limbo"]:
            ranges = _pipeline(params).plan_limbo(_anchor(run), params["limbo_stages"], max_ranges=MAX_MAPPED_RANGES)
        log_task(
            "plan_limbo_batches",
            window=_window(run, params),
            params={k: params[k] for k in ("process_limbo", "limbo_stages", "batch_size")},
            counts={"ranges": len(ranges), "leads": sum(r.leads for r in ranges)},
        )
        return [{"lo": r.lo, "hi": r.hi, "leads": r.leads} for r in ranges]

    @task(
        task_id="reconcile_limbo_batch",
        map_index_template="{{ task.op_kwargs['lead_range'] }}",
        multiple_outputs=False,
    )
    def reconcile_limbo_batch(lead_range: dict, run: dict, params=None) -> dict:
        """Every lead of one range that needs work, in transactions of batch_size leads."""
        from cabinet_leads.pipeline import LeadRange

        label = f"reconcile_limbo_batch {lead_range['lo']}-{lead_range['hi']}"
        stats = _pipeline(params, progress_label=label).reconcile_limbo_range(
            run["run_id"], LeadRange(**lead_range), _anchor(run), params["limbo_stages"], dry_run=params["dry_run"]
        )
        log_task(
            "reconcile_limbo_batch",
            window=_window(run, params),
            params={k: params[k] for k in ("limbo_stages", "batch_size", "dry_run")},
            lead_range=lead_range,
            counts=stats,
        )
        return stats

    @task(task_id="audit_weekly_funnel", trigger_rule="none_failed", multiple_outputs=False)
    def audit_weekly_funnel(run: dict, recent: dict, limbo: list[dict] | None, params=None) -> dict:
        """Weekly funnel view, after-snapshot, statistics summed over all tasks, run record."""
        from cabinet_leads import funnel
        from cabinet_leads.pipeline import add_stats, empty_stats

        pipeline = _pipeline(params)
        parts = list(limbo or [])  # a lazy sequence of the mapped results
        stats = add_stats(empty_stats(), recent)
        for part in parts:
            add_stats(stats, part)
        stats["limbo_batch_tasks"] = len(parts)
        add_stats(stats, pipeline.finish_work(run["run_id"], _anchor(run), params["recent_days"],
                                              dry_run=params["dry_run"]))
        with pipeline.db.connect() as conn:
            weeks = funnel.weekly_audit(conn, weeks=4)
        stats["limbo_before"] = run["limbo_before"]
        stats["weekly_audit"] = [{k: str(v) if k == "week_start" else v for k, v in w.items()} for w in weeks]
        stats["run_id"] = run["run_id"]
        pipeline.end_run(run["run_id"], "success", stats)
        log_task(
            "audit_weekly_funnel",
            window=_window(run, params),
            params=dict(params),
            counts={k: v for k, v in stats.items() if isinstance(v, int)},
            limbo_after=stats.get("limbo_after"),
        )
        return stats

    @task(task_id="check_limbo_alerts", execution_timeout=dt.timedelta(minutes=5))
    def check_limbo_alerts(summary: dict, params=None, dag_run=None) -> list[str]:
        """Which limbo thresholds hold: limbo_no_identity (last week) or limbo_trips_no_claim above, or
        grown by more than, its threshold. Each is an alert with a memory in ops.alert_state: one email
        when it starts to fire, at most one per repeat interval while it holds, one when it is
        resolved; backfill runs never alert (nor change the memory). Airflow Variables (defaults in
        brackets): cabinet_leads_max_no_identity_last_week [50], cabinet_leads_max_no_identity_growth
        [20], cabinet_leads_max_trips_no_claim [500], cabinet_leads_max_trips_no_claim_growth [50],
        cabinet_leads_alert_repeat_hours [24]."""
        from airflow.sdk import Variable

        from cabinet_leads import alerts

        thresholds = alerts.Thresholds(
            **{
                name: int(Variable.get(f"cabinet_leads_{name}", default=default))
                for name, default in vars(alerts.Thresholds()).items()
            }
        )
        repeat_every = dt.timedelta(hours=float(Variable.get("cabinet_leads_alert_repeat_hours", default=24)))
        pipeline = _pipeline(params)
        previous = pipeline.previous_alert_metrics(summary["run_id"])
        found = alerts.evaluate(summary["alert_metrics"], previous, thresholds)
        holding = [f"{a.metric}: {a.reason}" for a in found]
        run_type = str(getattr(dag_run.run_type, "value", dag_run.run_type))
        notes = []
        if run_type == "backfill":
            sent = "none (backfill runs never alert)"
        else:
            with pipeline.db.begin() as conn:  # the state is committed only once the email went out
                notes = alerts.remember(
                    conn,
                    found,
                    now=dt.datetime.now(dt.UTC),
                    repeat_every=repeat_every,
                    metrics=summary["alert_metrics"],
                    run_id=summary["run_id"],
                )
                if notes:
                    send_email(*alerts.notification_email(notes, dag_id=DAG_ID, run_id=dag_run.run_id))
            sent = [f"{n.alert} {n.status}" for n in notes] or "none (nothing started, repeated or resolved)"
        log_task(
            "check_limbo_alerts",
            metrics=summary["alert_metrics"],
            previous=previous,
            thresholds=vars(thresholds),
            repeat_hours=repeat_every.total_seconds() / 3600,
            holding=holding,
            emailed=sent,
        )
        return holding

    run = snapshot_limbo_distribution()
    recent = reconcile_recent_leads(run)
    plan = plan_limbo_batches(run, recent)
    limbo = reconcile_limbo_batch.partial(run=run).expand(lead_range=plan)
    summary = audit_weekly_funnel(run, recent, limbo)
    check_limbo_alerts(summary)


reconcile_cabinet_leads_pipeline()
