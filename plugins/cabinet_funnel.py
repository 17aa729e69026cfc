"""Airflow UI plugin "Cabinet funnel": the funnel dashboard of ``cabinet_leads.report`` as a FastAPI
app mounted by the API server at /cabinet-funnel, with a navigation entry (external view).

Routes: ``GET /`` the page (``?q=`` a lead id or phone shows what ``cabinet-leads explain`` shows),
``GET /worklist.csv`` the open claim worklist. The database is the ``reconcile_db`` connection,
looked up on the first request (never at import). Requests need a logged-in Airflow user (the
UI's JWT cookie or a bearer token), since the page shows lead names and phones.

The page is plain HTML with inline CSS and SVG: no JavaScript, no CDN, works offline. The weekly
bars (the one query that reads the limbo view) are computed in a background thread, cached per
process and refreshed in the background after ten minutes (the job runs hourly); see _WeeklyCache.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

log = logging.getLogger(__name__)

URL_PREFIX = "/cabinet-funnel"
WEEKLY_TTL_SECONDS = 600
WEEKLY_WAIT_SECONDS = 0.5

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


class _WeeklyCache:
    """The weekly bars, computed in a background thread (one at a time) on a connection of its own.

    Fresh rows (younger than `ttl`) are served as they are; stale rows of the same week are served at
    once while a refresh runs. With no rows yet (first request of the process, or a new week) a
    request waits at most `wait` seconds and otherwise gets None: the page then says the bars are
    being computed. At 1,000,000 leads over 120 days the view query takes ~15 s; no request waits
    for it longer than `wait`.
    """

    def __init__(self, ttl: float, factory: ConnFactory, wait: float):
        self.ttl = ttl
        self.wait = wait
        self.factory = factory
        self.lock = threading.Lock()
        self.value: tuple[float, dt.date, list[dict]] | None = None
        self.running: threading.Thread | None = None
        self.error: str | None = None

    def _compute(self, report, today: dt.date) -> None:
        try:
            with self.factory() as conn:
                rows = report.weekly_stages(conn, today=today)
            with self.lock:
                self.value = (time.monotonic(), report.first_week(today), rows)
                self.error = None
        except Exception as exc:  # the next request retries; stale rows stay meanwhile
            log.exception("computing the weekly funnel bars failed")
            with self.lock:
                self.error = f"{type(exc).__name__}: {exc}"
        finally:
            with self.lock:
                self.running = None

    def _start(self, report, today: dt.date) -> threading.Thread:
        """Start a computation unless one runs (call with the lock held)."""
        if self.running is None:
            self.error = None
            self.running = threading.Thread(target=self._compute, args=(report, today), daemon=True,
                                            name="cabinet-funnel-weekly")
            self.running.start()
        return self.running

    def get(self, report) -> list[dict] | None:
        today = report.lima_today()
        week = report.first_week(today)
        with self.lock:
            value = self.value
            if value and value[1] == week:
                if time.monotonic() - value[0] >= self.ttl:
                    self._start(report, today)
                return value[2]
            thread = self._start(report, today)
        thread.join(self.wait)
        with self.lock:
            if self.value and self.value[1] == week:
                return self.value[2]
            if self.error:
                raise RuntimeError(f"weekly funnel bars: {self.error}")
        return None


def create_app(
    get_conn: ConnFactory | None = None,
    *,
    require_login: bool = True,
    weekly_ttl: float = WEEKLY_TTL_SECONDS,
    weekly_wait: float = WEEKLY_WAIT_SECONDS,
) -> FastAPI:
    """The dashboard app. ``get_conn`` returns a context manager yielding a SQLAlchemy connection
    (default: reconcile_db); tests pass their own and ``require_login=False``."""
    factory = get_conn or reconcile_db_connection
    cache = _WeeklyCache(weekly_ttl, factory, weekly_wait)
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
            data = report.collect(conn, weekly=cache.get(report), compute_weekly=False)
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
