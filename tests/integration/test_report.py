"""The funnel dashboard and the HTML report on a real PostgreSQL: seeded leads, two real runs of
the job, then collect(), the page, the CSV, the FastAPI app of the Airflow plugin and the CLI."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import subprocess
import sys
import time

from fastapi.testclient import TestClient

from cabinet_leads import db, funnel, report
from cabinet_leads.funnel import LIMBO_STAGES, STAGES
from tests.conftest import HOSTILE, with_user

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
PLUGIN_FILE = db.PROJECT_ROOT / "plugins" / "cabinet_funnel.py"


def load_plugin_module():
    spec = importlib.util.spec_from_file_location("cabinet_funnel_plugin_under_test", PLUGIN_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(*args: str, url: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DATABASE_URL=url)
    return subprocess.run([sys.executable, "-m", "cabinet_leads", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_collect_matches_the_cli_views_and_ops_tables(seeded):
    with seeded.engine.connect() as conn:
        data = report.collect(conn)
        audit = {r["week_start"]: r for r in funnel.weekly_audit(conn, weeks=520)}
        distribution = funnel.limbo_distribution(conn)
        open_rows = conn.exec_driver_sql(
            "select lead_id, milestone from ops.milestone_claim_worklist where resolved_at is null"
        ).all()
        runs = conn.exec_driver_sql("select run_id, status, stats from ops.reconcile_runs order by run_id").all()

    # weekly bars: 12 consecutive Mondays ending with this week, equal to the weekly audit view
    weeks = [w["week_start"] for w in data["weekly"]]
    assert len(weeks) == 12 and all(w.weekday() == 0 for w in weeks)
    assert weeks[-1] == report.first_week(report.lima_today(), 1)
    assert sum(w["leads_total"] for w in data["weekly"]) > 500
    for w in data["weekly"]:
        expected = audit.get(w["week_start"])
        if expected is None:
            assert w["leads_total"] == 0
            continue
        assert w["leads_total"] == expected["leads_total"]
        for stage in STAGES:
            assert w[stage] == expected["limbo_" + stage.lower()], (w["week_start"], stage)

    # distribution (latest snapshot) == `cabinet-leads limbo --json` == funnel.limbo_distribution
    res = run_cli("limbo", "--json", url=seeded.url)
    assert res.returncode == 0, res.stderr
    cli = {r["limbo_stage"]: r["lead_count"] for r in json.loads(res.stdout)}
    assert data["distribution"]["stages"] == cli == {r.limbo_stage: r.lead_count for r in distribution}
    assert data["distribution"]["run_id"] == seeded.stats[1]["run_id"]

    # trend: one point per real run, the after-snapshot of each
    assert [p["run_id"] for p in data["trend"]] == [s["run_id"] for s in seeded.stats]
    for point, stats in zip(data["trend"], seeded.stats, strict=True):
        for stage in LIMBO_STAGES:
            assert point[stage] == stats["limbo_after"][stage]

    # runs: newest first, statistics from ops.reconcile_runs.stats
    assert [r["run_id"] for r in data["runs"]] == [r.run_id for r in reversed(runs)]
    assert data["runs"][0]["status"] == "failed" and data["runs"][0]["errors"] == 1
    by_id = {r["run_id"]: r for r in data["runs"]}
    for stats in seeded.stats:
        row = by_id[stats["run_id"]]
        assert row["status"] == "success"
        for key in ("processed", "newly_linked", "newly_driver_mapped", "conflicts", "errors"):
            assert row[key] == stats[key]
        assert row["seconds"] > 0
    assert seeded.stats[0]["processed"] > 0

    # worklist: every open row
    assert len(open_rows) > 0
    assert data["worklist_open"] == len(open_rows)
    assert {(w["lead_id"], w["milestone"]) for w in data["worklist"]} == {tuple(r) for r in open_rows}
    assert all(w["days_open"] >= 0 for w in data["worklist"])


def test_page_escapes_every_value_and_loads_nothing(seeded):
    with seeded.engine.connect() as conn:
        data = report.collect(conn)
        results = report.search(conn, str(seeded.hostile_id))
    assert len(results) == 1 and HOSTILE in results[0]
    # hostile values everywhere a string can come from the database
    data["worklist"] = [*data["worklist"], {**data["worklist"][0], "lead_name": HOSTILE, "external_id": '"><b>x'}]
    data["runs"][0]["error"] = HOSTILE
    page = report.render_html(data, search_html=report.render_search(f"{HOSTILE}", results))
    assert HOSTILE not in page
    assert "<script" not in page.lower() and '"><b>x' not in page
    assert page.count(ESCAPED) >= 3
    # self-contained: no scripts, no external resources
    assert "src=" not in page and "<link" not in page and "@import" not in page
    assert page.count('<g class="week"') == 12
    assert '<tr class="failed">' in page and 'class="chart trend-chart"' in page


def test_worklist_csv_has_the_open_rows(seeded):
    with seeded.engine.connect() as conn:
        text = report.worklist_csv(conn)
        expected = conn.exec_driver_sql(
            "select lead_id, driver_id, milestone, reached_on from ops.milestone_claim_worklist "
            "where resolved_at is null"
        ).all()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(report.WORKLIST_COLUMNS)
    assert {(int(r["lead_id"]), r["driver_id"], int(r["milestone"]), r["reached_on"]) for r in rows} == {
        (r.lead_id, r.driver_id, r.milestone, str(r.reached_on)) for r in expected
    }


def test_search_by_phone_finds_linked_leads(seeded):
    with seeded.engine.connect() as conn:
        lead_id, phone = conn.exec_driver_sql(
            "select l.source_pk::bigint, pk.key_value from canon.identity_links as l "
            "join canon.person_keys as pk on pk.person_key = l.person_key and pk.key_type = 'PHONE' "
            "where l.source_table = 'module_ct_cabinet_leads' order by 1 limit 1"
        ).one()
        assert phone.startswith("+519")
        for spelling in (phone, phone[3:], f"+51 {phone[3:6]} {phone[6:9]} {phone[9:]}"):
            assert lead_id in report.find_lead_ids(conn, spelling), spelling
        assert report.find_lead_ids(conn, "no such thing") == []
        assert report.search(conn, "999999999999") == []


def test_app_routes_answer_with_real_data(seeded):
    module = load_plugin_module()
    client = TestClient(module.create_app(get_conn=seeded.engine.connect, require_login=False))
    started = time.perf_counter()
    page = client.get("/")
    elapsed = time.perf_counter() - started
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text.count('<g class="week"') == 12
    assert f"<td>{seeded.stats[0]['run_id']}</td>" in page.text
    assert 'name="q"' in page.text
    assert elapsed < 5, f"page took {elapsed:.2f} s"
    print(f"dashboard page rendered in {elapsed * 1000:.0f} ms")

    found = client.get("/", params={"q": str(seeded.hostile_id)})
    assert found.status_code == 200
    assert f"lead {seeded.hostile_id} (" in found.text
    assert ESCAPED in found.text and HOSTILE not in found.text

    missing = client.get("/", params={"q": "<img src=x onerror=alert(1)>"})
    assert missing.status_code == 200 and "<img" not in missing.text and "No lead found" in missing.text

    download = client.get("/worklist.csv")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    with seeded.engine.connect() as conn:
        assert download.text == report.worklist_csv(conn)


def test_plugin_app_requires_an_airflow_login():
    module = load_plugin_module()
    client = TestClient(module.app)
    assert client.get("/").status_code == 401
    assert client.get("/worklist.csv").status_code == 401


def test_airflow_lists_the_plugin_and_its_nav_view():
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    res = subprocess.run([airflow, "plugins", "--output", "json"], capture_output=True, text=True, timeout=180,
                         env=dict(os.environ))
    assert res.returncode == 0, res.stderr[-3000:]
    plugins = {p["name"]: p for p in json.loads(res.stdout[res.stdout.index("["):])}
    assert "cabinet_funnel" in plugins, res.stdout[-2000:]
    plugin = plugins["cabinet_funnel"]
    text = json.dumps(plugin)
    assert "/cabinet-funnel" in text and "Cabinet funnel" in text
    assert "cabinet-funnel" in json.dumps(plugin.get("external_views")), text


def test_cli_writes_the_report(seeded, reader_login, tmp_path):
    """As the dashboard's read-only role (cabinet_leads_reader)."""
    target = tmp_path / "out" / "report.html"
    res = run_cli("report", "--html", str(target), url=with_user(seeded.url, reader_login))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(target)
    page = target.read_text(encoding="utf-8")
    assert page.count('<g class="week"') == 12 and 'name="q"' not in page
    with seeded.engine.connect() as conn:
        for row in funnel.limbo_distribution(conn):
            assert f'<tr data-stage="{row.limbo_stage}"><td>{row.limbo_stage}</td><td>{row.lead_count:,}</td>' in page

    bad = run_cli("report", "--html", "/proc/no/such/dir/report.html", url=seeded.url)
    assert bad.returncode == 1
    assert bad.stderr.startswith("cabinet-leads: error: cannot write") and bad.stderr.count("\n") == 1


def test_default_connection_is_reconcile_db(seeded, reader_login, monkeypatch):
    """reconcile_db as the dashboard's read-only role (cabinet_leads_reader)."""
    monkeypatch.setenv("AIRFLOW_CONN_RECONCILE_DB", db.airflow_conn_uri(with_user(seeded.url, reader_login)))
    module = load_plugin_module()
    assert module._engine is None  # nothing looked up at import
    client = TestClient(module.create_app(require_login=False))
    try:
        found = client.get("/", params={"q": str(seeded.hostile_id)})
        assert found.status_code == 200, found.text[-2000:]
        assert f"lead {seeded.hostile_id} (" in found.text and ESCAPED in found.text
        assert found.text.count('<g class="week"') == 12
    finally:
        if module._engine is not None:
            module._engine.dispose()


def test_search_by_phone_finds_unlinked_leads_too(seeded):
    """An AMBIGUOUS lead is linked to nobody; its own normalised phone still finds it."""
    with seeded.engine.connect() as conn:
        row = conn.exec_driver_sql(
            "select rk.source_pk::bigint, rk.phone from canon.record_keys as rk "
            "where rk.source_table = 'module_ct_cabinet_leads' and rk.phone is not null and not exists ("
            " select 1 from canon.identity_links as l where l.source_table = rk.source_table "
            " and l.source_pk = rk.source_pk) order by 1 limit 1"
        ).one()
        lead_id, phone = row
        assert lead_id in report.find_lead_ids(conn, phone[3:])
        assert any(f"lead {lead_id} (" in text for text in report.search(conn, phone))
