"""Airflow UI plugin "Cabinet funnel": the funnel dashboard of ``cabinet_leads.report`` as a FastAPI
app mounted by the API server at /cabinet-funnel, with a navigation entry (external view).

Routes: ``GET /`` the page (``?q=`` a lead id or phone shows what ``cabinet-leads explain`` shows),
``GET /worklist.csv`` the open claim worklist. The database is the ``reconcile_db`` connection,
looked up on the first request (never at import). Requests need a logged-in Airflow user (the
UI's JWT cookie or a bearer token), since the page shows lead names and phones.

The page is plain HTML with inline CSS and SVG: no JavaScript, no CDN, works offline. Every query
reads the job's snapshots, run records and worklist through indexes (no scan of the leads).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

log = logging.getLogger(__name__)

URL_PREFIX = "/cabinet-funnel"

ConnFactory = Callable[[], contextlib.AbstractContextManager]

_engine_lock = threading.Lock()
_engine = None


def reconcile_db_connection() -> contextlib.AbstractContextManager:
    """A SQLAlchemy connection on the reconcile_db Airflow connection (engine built once)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            from cabinet_leads_airflow import reconcile_engine

            _engine = reconcile_engine()
    return _engine.connect()


async def airflow_user(request: Request) -> Any:
    """Dependency: the Airflow user of the request (bearer token or the UI's JWT cookie), else 401."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    return await resolve_user_from_token(token)


def create_app(get_conn: ConnFactory | None = None, *, require_login: bool = True) -> FastAPI:
    """The dashboard app. ``get_conn`` returns a context manager yielding a SQLAlchemy connection
    (default: reconcile_db); tests pass their own and ``require_login=False``."""
    factory = get_conn or reconcile_db_connection
    deps = [Depends(airflow_user)] if require_login else []
    app = FastAPI(title="Cabinet funnel", docs_url=None, redoc_url=None, openapi_url=None, dependencies=deps)

    @contextlib.contextmanager
    def connection() -> Iterator:
        with factory() as conn:
            yield conn

    @app.get("/", response_class=HTMLResponse)
    def dashboard(q: str = "") -> HTMLResponse:
        from cabinet_leads import report

        q = q[:100]
        with connection() as conn:
            results = report.search(conn, q) if q.strip() else []
            data = report.collect(conn)
        page = report.render_html(data, search_html=report.render_search(q, results), csv_href="worklist.csv")
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
