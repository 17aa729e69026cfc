"""The dashboard degrades instead of answering a bare Internal Server Error: with its database
unreachable it answers 503 with one sentence naming the connection and what to check; when one
section's query fails, that section says so and the others are shown. Real PostgreSQL, the
plugin's real FastAPI app (TestClient), and the HTML report's limbo table naming its window."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient

from cabinet_leads import db, report
from tests.integration.test_report import load_plugin_module

SENTENCE = re.compile(
    r"The dashboard cannot reach its database through the Airflow connection '(?P<conn>\w+)' \(.+\): "
    r"check that the PostgreSQL server it names is running and reachable, and the connection's host, port, "
    r"database and credentials \(Admin > Connections, or AIRFLOW_CONN_(?P<env>\w+)\)\."
)


@pytest.fixture
def nowhere(tmp_path) -> str:
    """A libpq URL whose server does not exist (a socket directory with no server in it)."""
    return f"postgresql://nobody@/nowhere?host={tmp_path}"


def test_unreachable_database_answers_503_with_one_sentence(nowhere):
    engine = db.make_engine(nowhere)
    client = TestClient(load_plugin_module().create_app(get_conn=engine.connect, require_login=False))
    page = client.get("/")
    assert page.status_code == 503
    assert page.headers["content-type"].startswith("text/html")  # a page, shown inside the Airflow UI's frame
    found = SENTENCE.search(html.unescape(page.text))
    assert found and found["conn"] == "reconcile_db" and found["env"] == "RECONCILE_DB", page.text
    assert "Internal Server Error" not in page.text and "Traceback" not in page.text
    assert page.text.count('class="error"') == 1

    search = client.get("/", params={"q": "123"})
    assert search.status_code == 503 and SENTENCE.search(html.unescape(search.text))

    csv = client.get("/worklist.csv")
    assert csv.status_code == 503 and csv.headers["content-type"].startswith("text/plain")
    assert csv.text.count("\n") == 1 and "connection 'reconcile_db'" in csv.text
    engine.dispose()


def test_unreachable_reconcile_db_connection_answers_503(nowhere, monkeypatch):
    """Through the plugin's own engine on the Airflow connection (as under the API server)."""
    monkeypatch.setenv("AIRFLOW_CONN_RECONCILE_DB", db.airflow_conn_uri(nowhere))
    module = load_plugin_module()
    client = TestClient(module.create_app(require_login=False))
    try:
        page = client.get("/")
        assert page.status_code == 503 and SENTENCE.search(html.unescape(page.text)), page.text[-2000:]
    finally:
        if module._engine is not None:
            module._engine.dispose()


def test_a_section_that_cannot_load_says_so_and_the_others_are_shown(engine, pg):
    pg.execute("alter table ops.milestone_claim_worklist rename to milestone_claim_worklist_gone")
    client = TestClient(load_plugin_module().create_app(get_conn=engine.connect, require_login=False))
    page = client.get("/")
    assert page.status_code == 200
    worklist = re.search(r'<section id="worklist">(.*?)</section>', page.text, re.S).group(1)
    assert "<h2>Open claim worklist" in worklist
    assert "This section could not be loaded" in worklist and "milestone_claim_worklist" in worklist
    # the other sections are there, with their (empty) data
    assert page.text.count("This section could not be loaded") == 1
    assert page.text.count('<g class="week"') == 12
    assert "No limbo snapshot recorded yet" in page.text
    assert '<section id="runs">' in page.text


def test_limbo_table_names_the_window_it_was_computed_with(engine):
    from cabinet_leads import ReconcileCabinetLeadsPipeline, synthetic

    synthetic.seed(engine.url.render_as_string(hide_password=False), leads=300, seed=2, anchor=report.lima_today())
    ReconcileCabinetLeadsPipeline(engine).run_reconcile(recent_days=7)
    with engine.connect() as conn:
        data = report.collect(conn)
    assert data["distribution"]["recent_days"] == 7
    page = report.render_html(data)
    table = re.search(r'<section id="distribution">(.*?)</section>', page, re.S).group(1)
    assert "<th>recent (7 days)</th>" in table and "30 days" not in table
    assert "<code>cabinet-leads limbo --recent-days 7</code>" in table
