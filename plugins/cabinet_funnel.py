"""Airflow UI plugin "Cabinet funnel": the funnel dashboard of ``cabinet_leads.report`` as a FastAPI
app mounted by the API server at /cabinet-funnel, with a navigation entry (external view).

Routes: ``GET /`` the page (``?q=`` a lead id or phone shows what ``cabinet-leads explain`` shows),
``GET /worklist.csv`` the open claim worklist. The database is the ``reconcile_db`` connection,
looked up on the first request (never at import). Requests need a logged-in Airflow user (the
UI's JWT cookie or a bearer token), since the page shows lead names and phones.

The page is plain HTML with inline CSS and SVG: no JavaScript, no CDN, works offline. Every query
reads the job's snapshots, run records and worklist through indexes (no scan of the leads).

It degrades instead of failing: when the database cannot be reached the page (and the CSV) answer
503 with one sentence naming the connection and what to check, as a page that shows inside the
Airflow UI's frame; when the database answers but one section's query fails, that section says
it could not be loaded and the others are shown.
"""

from __future__ import annotations

import contextlib
import html
import logging
import re
import threading
from collections.abc import Callable
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from cabinet_leads.db import read_sql

log = logging.getLogger(__name__)

URL_PREFIX = "/cabinet-funnel"
CONN_ID = "reconcile_db"

ConnFactory = Callable[[], contextlib.AbstractContextManager]

_engine_lock = threading.Lock()
_engine = None


def reconcile_db_connection() -> contextlib.AbstractContextManager:
    """A SQLAlchemy connection on the reconcile_db Airflow connection (engine built once)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            from cabinet_leads_airflow import reconcile_engine

            _engine = reconcile_engine(pool_pre_ping=True)  # a restarted database is found again
    return _engine.connect()


async def airflow_user(request: Request) -> Any:
    """Dependency: the Airflow user of the request (bearer token or the UI's JWT cookie), else 401."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    return await resolve_user_from_token(token)


def unreachable_sentence(conn_name: str, error: BaseException) -> str:
    """The one sentence on-call reads when the database cannot be reached."""
    detail = (str(getattr(error, "orig", None) or error).strip().splitlines() or [type(error).__name__])[0][:300]
    return (
        f"The dashboard cannot reach its database through the Airflow connection '{conn_name}' ({detail}): "
        "check that the PostgreSQL server it names is running and reachable, and the connection's host, port, "
        f"database and credentials (Admin > Connections, or AIRFLOW_CONN_{conn_name.upper()})."
    )


def unavailable_page(sentence: str) -> str:
    css = "body{font-family:system-ui,sans-serif;margin:16px 24px;color:#222}.error{color:#a40000}"
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Cabinet funnel</title>"
        f"<style>{css}</style></head><body><h1>Cabinet funnel</h1>"
        f'<p class="error" id="unavailable">{html.escape(sentence)}</p></body></html>'
    )


# Every section of the page: its id in report.render_html, what it loads, what it shows without data.
SECTIONS: dict[str, tuple[str, Callable, Any]] = {
    "distribution": ("distribution", lambda r, c: r.latest_distribution(c), None),
    "weekly": ("weekly", lambda r, c: r.weekly_stages(c), []),
    "trend": ("trend", lambda r, c: r.limbo_trend(c), []),
    "runs": ("runs", lambda r, c: r.recent_runs(c), []),
    "worklist": ("worklist", lambda r, c: r.open_worklist(c), []),
    "worklist_open": ("worklist", lambda r, c: c.exec_driver_sql(read_sql("report/open_worklist_count.sql")).scalar(), 0),
}


def collect_by_section(report, conn) -> tuple[dict, dict[str, str]]:
    """report.collect, one section at a time when it fails as a whole: the data, and for every
    section that failed the error (each section in a savepoint, so one failure spares the rest)."""
    import datetime as dt

    try:
        with conn.begin_nested():
            return report.collect(conn), {}
    except Exception:  # noqa: BLE001 - find out which sections fail
        log.exception("cabinet funnel: the dashboard data failed to load, loading section by section")
    data: dict = {"generated_at": dt.datetime.now(dt.UTC)}
    failed: dict[str, str] = {}
    for key, (section, load, empty) in SECTIONS.items():
        if section in failed:
            data[key] = empty
            continue
        try:
            with conn.begin_nested():
                data[key] = load(report, conn)
        except Exception as exc:  # noqa: BLE001 - the section says so instead of failing the page
            log.warning("cabinet funnel: section %s failed: %s", section, exc)
            data[key] = empty
            failed[section] = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
    return data, failed


def mark_failed_sections(page: str, failed: dict[str, str]) -> str:
    """Replace the body of every failed section (its heading kept) by a sentence saying it could not
    be loaded."""

    def replace(match: re.Match, error: str) -> str:
        heading = re.search(r"<h2>.*?</h2>", match.group("body"), re.S)
        return (
            f'<section id="{match.group("id")}">{heading.group(0) if heading else ""}<p class="error">'
            f"This section could not be loaded: {html.escape(error[:300])}. The other sections are current; "
            "reload the page to try again.</p></section>"
        )

    for section, error in failed.items():
        page = re.sub(
            rf'<section id="(?P<id>{re.escape(section)})">(?P<body>.*?)</section>',
            lambda m, e=error: replace(m, e),
            page,
            count=1,
            flags=re.S,
        )
    return page


def create_app(
    get_conn: ConnFactory | None = None, *, require_login: bool = True, conn_name: str = CONN_ID
) -> FastAPI:
    """The dashboard app. ``get_conn`` returns a context manager yielding a SQLAlchemy connection
    (default: reconcile_db); tests pass their own and ``require_login=False``. ``conn_name`` is
    the connection named when the database cannot be reached."""
    factory = get_conn or reconcile_db_connection
    deps = [Depends(airflow_user)] if require_login else []
    app = FastAPI(title="Cabinet funnel", docs_url=None, redoc_url=None, openapi_url=None, dependencies=deps)

    class Unreachable(Exception):
        pass

    @contextlib.contextmanager
    def connection():
        try:
            cm = factory()
            conn = cm.__enter__()
        except Exception as exc:  # noqa: BLE001 - any failure to connect is "unreachable"
            log.warning("cabinet funnel: %s unreachable: %s", conn_name, exc)
            raise Unreachable(unreachable_sentence(conn_name, exc)) from exc
        with contextlib.ExitStack() as stack:
            stack.push(cm)
            yield conn

    @app.exception_handler(Unreachable)
    async def unreachable(request: Request, exc: Unreachable) -> Response:
        headers = {"Cache-Control": "no-store", "Retry-After": "30"}
        if request.url.path.endswith(".csv"):
            return PlainTextResponse(str(exc) + "\n", status_code=503, headers=headers)
        return HTMLResponse(unavailable_page(str(exc)), status_code=503, headers=headers)

    @app.get("/", response_class=HTMLResponse)
    def dashboard(q: str = "") -> HTMLResponse:
        from cabinet_leads import report

        q = q[:100]
        with connection() as conn:
            search_error = None
            results = []
            if q.strip():
                try:
                    with conn.begin_nested():
                        results = report.search(conn, q)
                except Exception as exc:  # noqa: BLE001
                    log.warning("cabinet funnel: search failed: %s", exc)
                    search_error = "the search could not be run: " + str(getattr(exc, "orig", None) or exc)
            data, failed = collect_by_section(report, conn)
        search_html = report.render_search(q, results)
        if search_error:
            failed["search-results"] = search_error
        page = mark_failed_sections(report.render_html(data, search_html=search_html, csv_href="worklist.csv"), failed)
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    @app.get("/worklist.csv")
    def worklist_csv() -> Response:
        from cabinet_leads import report

        with connection() as conn:
            body = report.worklist_csv(conn)
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="claim_worklist_open.csv"',
                     "Cache-Control": "no-store"},
        )

    @app.get("/health", response_class=PlainTextResponse)
    def health() -> str:
        return "ok"

    return app


app = create_app()


class CabinetFunnelPlugin(AirflowPlugin):
    name = "cabinet_funnel"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Cabinet funnel"}]
    external_views = [
        {
            "name": "Cabinet funnel",
            "href": URL_PREFIX + "/",
            "destination": "nav",
            "url_route": "cabinet-funnel",
        }
    ]
