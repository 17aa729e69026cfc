"""
### Verify: a full re-read, then: does the kept funnel state equal the live views?

Once a day this DAG first runs the job with `full` (`reconcile_full_sources`, as
`cabinet-leads reconcile --full`: every source row is re-read and a row whose fingerprint of the
fields the job uses changed is reprocessed even when its `updated_at` did not; it waits up to 30
minutes for an hourly run that holds the run lock), then compares the job's kept funnel state (`ops.lead_state` and the open
TRIPS_NO_CLAIM worklist, maintained incrementally from the change marks) with the live views
(`ops.v_cabinet_leads_limbo`, `ops.v_cabinet_lead_milestones`) in full, as
`cabinet-leads verify` does. On any difference it emails `CABINET_LEADS_ALERT_EMAIL` once with the
count and the first differing leads (the task itself succeeds: the email is the alert, and a failure
email on top would say the same twice). Drift means an input
change the job did not see: a source row edited without bumping `updated_at`, a manual edit of the
kept state, or a bug. Repair: run `cabinet-leads reconcile`; drift that stays is a bug to report.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import CronTriggerTimetable, dag, task
from cabinet_leads_airflow import default_args, log_task, pipeline, send_email

SHOWN = 20  # differing leads listed in the email
FULL_RUN_LOCK_WAIT_S = 30 * 60  # an hourly run may hold the run lock meanwhile


@dag(
    dag_id="reconcile_cabinet_leads_verify",
    schedule=CronTriggerTimetable("30 4 * * *", timezone="UTC"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["cabinet-leads", "monitoring"],
    default_args=default_args(
        execution_timeout=dt.timedelta(minutes=60),
        max_retry_delay=dt.timedelta(minutes=10),
        what=" The daily check of the kept funnel state against the live views did not complete.",
    ),
)
def reconcile_cabinet_leads_verify():
    @task(task_id="reconcile_full_sources", multiple_outputs=False)
    def reconcile_full_sources(dag_run=None) -> dict:
        """The whole job with every source row re-read (edits without an updated_at bump)."""
        stats = pipeline(external_run_id=dag_run.run_id, full=True, run_lock_timeout=FULL_RUN_LOCK_WAIT_S
                         ).run_reconcile()
        log_task("reconcile_full_sources", counts={k: v for k, v in stats.items() if isinstance(v, int)})
        return {k: stats[k] for k in ("run_id", "processed", "newly_linked", "link_conflicts", "state_refreshed")}

    @task(task_id="verify_funnel_state", multiple_outputs=False)
    def verify_funnel_state(dag_run=None) -> dict:
        """Compare kept state and live views in full; email on any difference."""
        import html
        import json

        total, diffs = pipeline().verify(max_rows=SHOWN)
        if total:
            rows = "".join(
                f"<li>lead {d.lead_id}{f' milestone {d.milestone}' if d.milestone else ''} ({d.what}): live "
                f"{html.escape(json.dumps(d.live, default=str))}, kept {html.escape(json.dumps(d.kept, default=str))}</li>"
                for d in diffs
            )
            send_email(
                f"[cabinet-leads] FUNNEL STATE DRIFT: {total} difference(s) between kept state and live views",
                f"<p>{total} difference(s); the first {len(diffs)}:</p><ul>{rows}</ul>"
                "<p>Run <code>cabinet-leads reconcile</code>, then <code>cabinet-leads verify</code>; drift that "
                f"stays is a bug.</p><p>Verify run {html.escape(dag_run.run_id)}.</p>",
            )
        return {"differences": total, "first": [d.lead_id for d in diffs]}

    reconcile_full_sources() >> verify_funnel_state()


reconcile_cabinet_leads_verify()
