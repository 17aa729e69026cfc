"""The funnel dashboard in a real browser: Debian's headless Chromium opens the plugin's FastAPI app
(served by uvicorn on 127.0.0.1) and the static `cabinet-leads report --html` file with no network.

`--dump-dom` prints the DOM after parsing, so an injected <script> would appear as an element;
the hostile lead name must appear as escaped text instead. A screenshot of the dashboard is saved
to artifacts/dashboard.png. Chromium missing is a failure, not a skip (.ci/run installs it).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest
import uvicorn

from cabinet_leads import db, funnel
from cabinet_leads.funnel import STAGES
from tests.conftest import HOSTILE, with_user
from tests.integration.test_report import load_plugin_module

ARTIFACTS = db.PROJECT_ROOT / "artifacts"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
NO_NETWORK = ["--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
              "--host-resolver-rules=MAP * ~NOTFOUND"]


CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MACOS_CHROME = "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"


def chromium_path() -> str:
    """Debian's chromium (what CI installs), or another Chromium/Chrome found on this machine."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    if os.path.exists(MACOS_CHROME):
        return MACOS_CHROME
    pytest.fail("headless Chromium is required and none was found (chromium, google-chrome). `make test` "
                "installs Debian's package when it can (root with apt-get); otherwise install Chromium or Chrome.")


def chromium(url: str, tmp_path, *extra: str, timeout: float = 90) -> str:
    """Run headless Chromium on `url`; return stdout (the DOM when --dump-dom is given)."""
    profile = tmp_path / f"chromium-profile-{time.monotonic_ns()}"
    cmd = [
        chromium_path(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--disable-extensions", f"--user-data-dir={profile}", *extra, url,
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"chromium exit {res.returncode}: {res.stderr[-2000:]}"
    return res.stdout


def dump_dom(url: str, tmp_path, *extra: str) -> str:
    dom = chromium(url, tmp_path, "--dump-dom", *extra)
    assert "<html" in dom, dom[:500]
    return dom




@pytest.fixture(scope="module")
def served(seeded, reader_login):
    """The plugin's app on a free 127.0.0.1 port, in a thread, reading as cabinet_leads_reader."""
    engine = db.make_engine(with_user(seeded.url, reader_login))
    app = load_plugin_module().create_app(get_conn=engine.connect, require_login=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


def table_rows(dom: str, css: str) -> list[list[str]]:
    body = re.search(rf'<table class="{css}">.*?<tbody>(.*?)</tbody>', dom, re.S)
    assert body, f"no table.{css}"
    return [re.findall(r"<td>(.*?)</td>", row, re.S) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body.group(1), re.S)]


def test_dashboard_renders_in_chromium(seeded, served, tmp_path):
    dom = dump_dom(served, tmp_path)
    # charts: one bar group per week (12), five stage segments each; three trend lines
    assert dom.count('<g class="week"') == 12
    assert dom.count('<rect class="seg ') == 12 * len(STAGES)
    trend = re.search(r'<svg class="chart trend-chart".*?</svg>', dom, re.S)
    assert trend and trend.group(0).count("<polyline") == 3
    # the run table has the seeded runs (and the failed one stands out)
    runs = table_rows(dom, "runs")
    run_ids = [int(r[0]) for r in runs]
    for stats in seeded.stats:
        assert stats["run_id"] in run_ids
    assert re.search(r'<tr class="failed"><td>\d+</td>', dom)
    assert "<script" not in dom.lower()

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    chromium(served, tmp_path, f"--screenshot={shot}", "--window-size=1400,2000", "--hide-scrollbars")
    assert shot.exists() and shot.stat().st_size > 10_000


def test_search_shows_the_explanation_and_the_hostile_name_as_text(seeded, served, tmp_path):
    url = served + "?" + urllib.parse.urlencode({"q": str(seeded.hostile_id)})
    dom = dump_dom(url, tmp_path)
    result = re.search(r'<section id="search-results">(.*?)</section>', dom, re.S)
    assert result, "no search results section"
    assert f"lead {seeded.hostile_id} (" in result.group(1)
    assert "stage: " in result.group(1)
    assert ESCAPED in result.group(1)  # shown as text ...
    assert HOSTILE not in dom and "<script" not in dom.lower()  # ... never as an element

    ARTIFACTS.mkdir(exist_ok=True)
    chromium(url, tmp_path, f"--screenshot={ARTIFACTS / 'dashboard-search.png'}", "--window-size=1400,1200")


def test_html_report_opens_offline_with_the_cli_numbers(seeded, reader_login, tmp_path):
    target = tmp_path / "report.html"
    env = dict(os.environ, DATABASE_URL=with_user(seeded.url, reader_login))
    res = subprocess.run([sys.executable, "-m", "cabinet_leads", "report", "--html", str(target)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    dom = dump_dom(target.as_uri(), tmp_path, *NO_NETWORK)
    assert dom.count('<g class="week"') == 12 and "<script" not in dom.lower()

    with seeded.engine.connect() as conn:
        distribution = funnel.limbo_distribution(conn)
        audit = {str(r["week_start"]): r for r in funnel.weekly_audit(conn, weeks=520)}
    shown = {r[0]: int(r[1].replace(",", "")) for r in table_rows(dom, "distribution") if r[0] in STAGES}
    assert shown == {r.limbo_stage: r.lead_count for r in distribution}

    weeks = table_rows(dom, "weekly")
    assert len(weeks) == 12
    checked = 0
    for week, total, *stages in weeks:
        dt.date.fromisoformat(week)
        if week not in audit:
            assert total == "0"
            continue
        row = audit[week]
        assert int(total.replace(",", "")) == row["leads_total"]
        assert [int(s.replace(",", "")) for s in stages] == [row["limbo_" + s.lower()] for s in STAGES]
        checked += 1
    assert checked >= 10
