"""Airflow's own trigger form for the main DAG, in a real headless Chromium against a real
`airflow standalone`: limbo_stages is a multi-select (pick two stages, trigger, the run has exactly
those two), and what the form does with an out-of-range number (it clamps it to the bound, so
the README can say so). The DAG is paused and the form's "Unpause on trigger" is unticked: the
runs stay queued, the test looks only at what the form created.

Chromium is driven over the DevTools protocol with real mouse and key events (tests/e2e/standalone.py).
Typical time: 60-90 s, most of it starting Airflow.
"""

from __future__ import annotations

import urllib.parse

import pytest

from cabinet_leads import db
from cabinet_leads.funnel import LIMBO_STAGES
from tests.conftest import fresh_database
from tests.e2e.standalone import DAG_ID, Chromium, free_port, smtp_conn, standalone
from tests.e2e.test_dashboard_browser import ARTIFACTS, chromium_path

pytestmark = pytest.mark.slow

STAGES_INPUTS = "[...document.querySelectorAll('input[name=element_limbo_stages]')].map(x => x.value)"
MULTI_SELECT = "document.querySelector('[role=dialog] input[aria-label=\"Select one or multiple values\"]')"
CLEAR = "document.querySelector('[role=dialog] [aria-label=\"Clear selected options\"]')"
UNPAUSE = ("[...document.querySelectorAll('[role=dialog] input[type=checkbox]')]"
           ".find(x => /Unpause/.test(x.closest('label')?.innerText || '')).closest('label')")
SUBMIT = "[...document.querySelectorAll('[role=dialog] button')].filter(x => x.innerText.trim() === 'Trigger').pop()"
RECENT_DAYS = "document.querySelector('[role=dialog] input[name=element_recent_days]')"


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, server_url, template_url):
    with fresh_database(server_url, template_url) as url:
        env = {
            "AIRFLOW_CONN_RECONCILE_DB": db.airflow_conn_uri(url),
            "AIRFLOW_CONN_SMTP_DEFAULT": smtp_conn(free_port()),  # nothing is sent: the runs stay queued
            "CABINET_LEADS_DEADLINE_MINUTES": "0",
        }
        with standalone(tmp_path_factory.mktemp("airflow-form"), env) as af:
            assert af.api.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": True}).json()["is_paused"] is True
            yield af


@pytest.fixture
def form(airflow, tmp_path):
    """The DAG's page in Chromium, logged in (the UI's JWT cookie), with the trigger form open."""
    browser = Chromium(chromium_path(), tmp_path / "profile")
    try:
        browser.send("Network.setCookie", name="_token", value=airflow.token, url=airflow.url)
        browser.send("Page.navigate", url=f"{airflow.url}/dags/{DAG_ID}")
        browser.wait_js("!!document.querySelector('button[aria-label=\"Trigger Dag\"]')")
        browser.click("document.querySelector('button[aria-label=\"Trigger Dag\"]')")
        browser.wait_js(f"{STAGES_INPUTS}.length > 0")
        yield browser
    finally:
        browser.close()


def submit(form, airflow) -> dict:
    """Untick "Unpause on trigger", press Trigger; the run the form created, from the REST API."""
    form.click(UNPAUSE)
    form.click(SUBMIT)
    href = form.wait_js("location.pathname.includes('/runs/') && location.pathname")
    run_id = urllib.parse.unquote(href.rsplit("/runs/", 1)[1])
    run = airflow.api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}").json()
    assert run["dag_run_id"] == run_id and run["triggered_by"] == "ui" and run["state"] == "queued", run
    return run


def test_limbo_stages_is_a_multi_select_and_the_run_gets_the_two_picked(airflow, form):
    assert form.js(STAGES_INPUTS) == list(LIMBO_STAGES)  # the default: every stage, shown as chips
    form.click(CLEAR)
    assert form.js(STAGES_INPUTS) == [""]
    form.click(MULTI_SELECT)
    form.type("NO_DRIVER")
    form.key("Enter", 13)
    form.type("TRIPS")  # the options filter as one types; Enter picks the first match
    form.key("Enter", 13)
    assert form.js(STAGES_INPUTS) == ["NO_DRIVER", "TRIPS_NO_CLAIM"]
    ARTIFACTS.mkdir(exist_ok=True)
    form.screenshot(ARTIFACTS / "trigger-form.png")

    run = submit(form, airflow)
    assert run["conf"]["limbo_stages"] == ["NO_DRIVER", "TRIPS_NO_CLAIM"]
    assert run["conf"]["as_of"] is None
    assert run["logical_date"] is not None  # the form pre-fills one: the DAG anchors a manual run on run_after


def test_the_form_clamps_an_out_of_range_number_to_its_bound(airflow, form):
    form.click(RECENT_DAYS)
    form.js(f"{RECENT_DAYS}.select()")
    form.type("400")
    assert form.js(f"{RECENT_DAYS}.value") == "400"
    form.key("Tab", 9)  # leaving the field
    assert form.js(f"{RECENT_DAYS}.value") == "365"  # clamped to the Param's maximum, no message

    run = submit(form, airflow)
    assert run["conf"]["recent_days"] == 365  # the REST API would answer 400 to 400 instead
    refused = airflow.api.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None,
                                                                      "conf": {"recent_days": 400}})
    assert refused.status_code == 400, refused.text
