"""Each lead task of the reconcile DAG logs progress lines as its batches go (a real Airflow run,
dag.test(), on a real PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import logging
import re

from cabinet_leads import synthetic

MAIN = "reconcile_cabinet_leads_pipeline"
LOGICAL = dt.datetime(2026, 3, 2, 5, 0, tzinfo=dt.UTC)
LINE = re.compile(r"^(reconcile_recent_leads|reconcile_limbo_batch \d+-\d+): progress: ([\d,]+)/([\d,]+) leads "
                  r"\(\d+%\), [\d,?]+ leads/s, ETA .+$")


def test_lead_tasks_log_progress(main_dag, reconcile_conn, smtp_server, caplog):
    synthetic.seed(reconcile_conn, leads=600, seed=11, anchor=LOGICAL.date())
    with caplog.at_level(logging.INFO, logger="cabinet_leads.progress"):
        dr = main_dag[MAIN].test(logical_date=LOGICAL,
                                 run_conf={"batch_size": 50, "as_of": (LOGICAL - dt.timedelta(days=3)).isoformat()})
    assert dr.state == "success"
    lines = [LINE.match(r.getMessage()) for r in caplog.records if r.name == "cabinet_leads.progress"]
    assert lines and all(lines), [r.getMessage() for r in caplog.records if r.name == "cabinet_leads.progress"]
    tasks = {m[1].split()[0] for m in lines}
    assert tasks == {"reconcile_recent_leads", "reconcile_limbo_batch"}, tasks
    # each task's last line: all of its leads done; together they are every lead the run worked on
    last = {}
    for m in lines:
        last[m[1]] = (int(m[2].replace(",", "")), int(m[3].replace(",", "")))
    assert all(done == total for done, total in last.values()), last
    assert sum(done for done, _ in last.values()) == 600
