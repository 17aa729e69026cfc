"""Progress of a run over a backlog of several batches, on real PostgreSQL: the CLI's plain lines
(stderr not a terminal), its bar (stderr a pseudo-terminal), a pure JSON stdout with --json, and
the log lines the pipeline writes through logging when a logging reporter is set (what each
Airflow lead task uses)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import pty
import re
import subprocess
import sys
import threading

from cabinet_leads.engine.progress import LogLines
from cabinet_leads.funnel import LIMBO_STAGES
from cabinet_leads.pipeline import ReconcileCabinetLeadsPipeline
from tests.integration.test_cli import run_cli

LINE = re.compile(r"^progress: ([\d,]+)/([\d,]+) leads \((\d+)%\), ([\d,]+|\?) leads/s, ETA (.+)$")


def add_leads(pg, n: int, *, days_ago: int = 1) -> None:
    """``n`` leads of ``n`` different people, ``days_ago`` days old."""
    pg.execute(
        "insert into public.module_ct_cabinet_leads (id, external_id, lead_created_at, first_name, last_name, "
        "phone, document_number) select i, 'P-' || i, now() - make_interval(days => %s), 'Juan', 'Quispe Mamani', "
        "'98' || lpad(i::text, 7, '0'), (40000000 + i)::text from generate_series(1, %s) i",
        (days_ago, n),
    )


def progress_of(stderr: str) -> list[tuple[int, int]]:
    """(done, total) of each progress line; every stderr line must be one."""
    found = []
    for line in stderr.strip().splitlines():
        m = LINE.match(line)
        assert m, f"not a progress line: {line!r}"
        found.append((int(m[1].replace(",", "")), int(m[2].replace(",", ""))))
    return found


def test_plain_progress_lines_on_stderr_name_done_and_total(db_url, pg):
    add_leads(pg, 300)
    res = run_cli("reconcile", "--batch-size", "50", database_url=db_url)
    assert res.returncode == 0, res.stderr
    lines = progress_of(res.stderr)
    # six batches of 50, each another tenth of the 300 leads: a line each, the last one complete
    assert lines == [(50 * i, 300) for i in range(1, 7)], res.stderr
    assert "progress" not in res.stdout and "processed" in res.stdout


def test_json_stdout_stays_json_and_no_progress_is_silent(db_url, pg):
    add_leads(pg, 260)
    dry = run_cli("reconcile", "--dry-run", "--json", "--batch-size", "50", database_url=db_url)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["processed"] == 260  # stdout: the JSON document alone
    lines = progress_of(dry.stderr)
    assert len(lines) == 6 and lines[-1] == (260, 260)
    quiet = run_cli("reconcile", "--no-progress", "--json", "--batch-size", "50", database_url=db_url)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert json.loads(quiet.stdout)["processed"] == 260
    again = run_cli("reconcile", "--batch-size", "50", database_url=db_url)  # nothing left to do: no lines
    assert again.returncode == 0 and again.stderr == ""


def test_a_bar_on_a_terminal(db_url, pg):
    add_leads(pg, 200)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cabinet_leads", "reconcile", "--batch-size", "50"],
        stdout=subprocess.PIPE, stderr=slave, env={**os.environ, "DATABASE_URL": db_url}, text=True,
    )
    os.close(slave)
    chunks: list[bytes] = []

    def drain():
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # the terminal closed: the process is gone
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    stdout, _ = proc.communicate(timeout=120)
    reader.join(timeout=10)
    os.close(master)
    terminal = b"".join(chunks).decode()
    assert proc.returncode == 0, terminal
    frames = terminal.replace("\r\n", "\n").split("\r")[1:]  # one line redrawn in place
    assert frames and all(f.startswith("[") for f in frames), terminal
    assert frames[0].startswith("[....................] 0/200 leads   0% ?/s ETA ?"), terminal  # 80 columns
    assert re.match(r"^\[#{20}\] 200/200 leads 100% [\d,]+/s ETA 0 s *\n$", frames[-1]), terminal
    assert "\r" not in stdout and "processed" in stdout


def test_pipeline_logs_progress_through_logging_in_the_dag_steps(engine, pg, caplog):
    """The steps the DAG's reconcile_recent_leads and reconcile_limbo_batch tasks call, with the
    logging reporter those tasks set: progress lines in the log as the batches go."""
    add_leads(pg, 150)  # recent
    pg.execute(
        "insert into public.module_ct_cabinet_leads (id, external_id, lead_created_at, first_name, last_name, phone) "
        "select i, 'L-' || i, now() - interval '90 days', 'Ana', 'Ruiz Soto', '97' || lpad(i::text, 7, '0') "
        "from generate_series(1001, 1100) i"
    )
    anchor = dt.datetime.now(dt.UTC)
    recent = ReconcileCabinetLeadsPipeline(engine, batch_size=50, progress=LogLines("reconcile_recent_leads"))
    run_id = recent.begin_run({"test": True})
    with caplog.at_level(logging.INFO, logger="cabinet_leads.progress"):
        stats = recent.reconcile_recent(run_id, anchor, 30)
    assert stats["processed"] == 150
    assert [r.getMessage().split(", ")[0] for r in caplog.records] == [
        "reconcile_recent_leads: progress: 50/150 leads (33%)",
        "reconcile_recent_leads: progress: 100/150 leads (67%)",
        "reconcile_recent_leads: progress: 150/150 leads (100%)",
    ]
    caplog.clear()
    ranges = recent.plan_limbo(anchor, LIMBO_STAGES)
    assert sum(r.leads for r in ranges) == 100
    for lead_range in ranges:
        label = f"reconcile_limbo_batch {lead_range.lo}-{lead_range.hi}"
        limbo = ReconcileCabinetLeadsPipeline(engine, batch_size=50, progress=LogLines(label))
        with caplog.at_level(logging.INFO, logger="cabinet_leads.progress"):
            limbo.reconcile_limbo_range(run_id, lead_range, anchor, LIMBO_STAGES)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and all(r.name == "cabinet_leads.progress" for r in caplog.records)
    assert messages[-1].startswith(f"reconcile_limbo_batch {ranges[-1].lo}-{ranges[-1].hi}: progress: ")
    assert sum(int(LINE.match(m.split(": ", 1)[1])[1]) for m in messages if "100%" in m) == 100
