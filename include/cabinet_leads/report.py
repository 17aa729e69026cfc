"""The funnel dashboard and the static HTML report: data (``collect``), one self-contained page
(``render_html``: inline CSS, charts as inline SVG, no JavaScript, works offline), the lead search
and the open claim worklist as CSV. No Airflow here: the plugin in ``plugins/cabinet_funnel.py``
and ``cabinet-leads report --html`` both call this module.

Cheap at 1,000,000 leads: nothing scans the leads. The distribution, the weekly bars and the trends
come from the job's snapshots (``ops.limbo_snapshots``, ``ops.weekly_funnel_snapshots``: each run
writes them from one scan of the limbo view), runs and worklist from small tables read through
their indexes.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import re
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from cabinet_leads.db import raw, read_sql
from cabinet_leads.funnel import LIMBO_STAGES, STAGES
from cabinet_leads.normalize import normalize_phone

LIMA = ZoneInfo("America/Lima")
WEEKS = 12
TREND_DAYS = 14
RUNS = 48
WORKLIST_ROWS = 500
SEARCH_ROWS = 10
SEARCH_TEXT_CHARS = 6000  # one explanation; a page stays well under 200 KB whatever the data
COLORS = {
    "NO_IDENTITY": "#d62728",
    "NO_DRIVER": "#ff7f0e",
    "NO_TRIPS_14D": "#bcbd22",
    "TRIPS_NO_CLAIM": "#9467bd",
    "OK": "#2ca02c",
}
WORKLIST_COLUMNS = ("lead_id", "external_id", "lead_name", "driver_id", "milestone", "reached_on", "days_open")


def _query(conn: Connection, name: str, **params) -> list[dict]:
    cursor = conn.exec_driver_sql(read_sql(f"report/{name}.sql"), params)
    return [dict(row._mapping) for row in cursor]


def lima_today() -> dt.date:
    return dt.datetime.now(LIMA).date()


def first_week(today: dt.date, weeks: int = WEEKS) -> dt.date:
    """Monday of the week `weeks - 1` weeks before the week of `today`."""
    return today - dt.timedelta(days=today.weekday()) - dt.timedelta(weeks=weeks - 1)


def weekly_stages(conn: Connection, *, today: dt.date | None = None, weeks: int = WEEKS) -> list[dict]:
    """One row per week (oldest first, every week present, zeros included) with the five stages and
    the total, in the columns of ops.v_cabinet_14d_funnel_audit_weekly, as of the newest run's
    after-snapshot."""
    start = first_week(today or lima_today(), weeks)
    counts: dict[tuple[dt.date, str], int] = {
        (r["week_start"], r["limbo_stage"]): r["lead_count"]
        for r in _query(conn, "weekly_stages", first_week=start)
    }
    out = []
    for i in range(weeks):
        week = start + dt.timedelta(weeks=i)
        row: dict = {"week_start": week}
        for stage in STAGES:
            row[stage] = counts.get((week, stage), 0)
        row["leads_total"] = sum(row[s] for s in STAGES)
        out.append(row)
    return out


def limbo_trend(conn: Connection, *, days: int = TREND_DAYS) -> list[dict]:
    """Per run (oldest first): taken_at and the lead counts of the three limbo stages."""
    runs: dict[int, dict] = {}
    for r in _query(conn, "limbo_trend", days=days, stages=list(LIMBO_STAGES)):
        point = runs.setdefault(r["run_id"], {"run_id": r["run_id"], "taken_at": r["taken_at"],
                                              **dict.fromkeys(LIMBO_STAGES, 0)})
        point["taken_at"] = max(point["taken_at"], r["taken_at"])
        point[r["limbo_stage"]] = r["lead_count"]
    return sorted(runs.values(), key=lambda p: (p["taken_at"], p["run_id"]))


def latest_distribution(conn: Connection) -> dict | None:
    """The limbo distribution of the newest after-snapshot: run_id, taken_at, stages{stage: count},
    recent{stage: count in that run's recent window} and recent_days (that window's days)."""
    rows = _query(conn, "latest_distribution")
    if not rows:
        return None
    stages = dict.fromkeys(STAGES, 0)
    recent = dict.fromkeys(STAGES, 0)
    for r in rows:
        stages[r["limbo_stage"]] = r["lead_count"]
        recent[r["limbo_stage"]] = r["recent_count"]
    return {"run_id": rows[0]["run_id"], "taken_at": max(r["taken_at"] for r in rows),
            "stages": stages, "recent": recent, "recent_days": rows[0]["recent_days"]}


def recent_runs(conn: Connection, *, runs: int = RUNS) -> list[dict]:
    return _query(conn, "recent_runs", runs=runs)


def open_worklist(conn: Connection, *, max_rows: int | None = WORKLIST_ROWS) -> list[dict]:
    return _query(conn, "open_worklist", max_rows=max_rows)


def collect(conn: Connection, *, today: dt.date | None = None) -> dict:
    """Everything the page shows."""
    return {
        "generated_at": dt.datetime.now(dt.UTC),
        "weekly": weekly_stages(conn, today=today),
        "distribution": latest_distribution(conn),
        "trend": limbo_trend(conn),
        "runs": recent_runs(conn),
        "worklist": open_worklist(conn),
        "worklist_open": _query(conn, "open_worklist_count")[0]["open_rows"],
    }


def worklist_csv(conn: Connection) -> str:
    """Every open worklist row as CSV (header included)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(WORKLIST_COLUMNS)
    for r in open_worklist(conn, max_rows=None):
        writer.writerow(["" if r[c] is None else _csv_safe(r[c]) for c in WORKLIST_COLUMNS])
    return out.getvalue()


def _csv_safe(value) -> str:
    """Keep a spreadsheet from taking a cell for a formula (CSV injection)."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# ----------------------------------------------------------------------------- search


class SearchResults(list):
    """The explanations of the leads a search found (at most ``SEARCH_ROWS``); ``total`` is how many
    leads it found in all."""

    total: int = 0


def find_lead_ids(conn: Connection, query: str) -> list[int]:
    """Lead ids for a search: a lead id, and/or the leads with that phone or linked to the person owning it
    (at most ``SEARCH_ROWS``)."""
    return _find_leads(conn, query)[0]


def _find_leads(conn: Connection, query: str) -> tuple[list[int], int]:
    text = query.strip()
    ids: list[int] = []
    total = 0
    if re.fullmatch(r"[0-9]{1,18}", text):
        ids.append(int(text))
        total = 1
    phone = normalize_phone(text)
    if phone:
        rows = _query(conn, "phone_leads", phone=phone, max_rows=SEARCH_ROWS)
        ids += [r["lead_id"] for r in rows]
        total += int(rows[0]["total"]) if rows else 0
    unique = list(dict.fromkeys(ids))[:SEARCH_ROWS]
    return unique, max(total, len(unique))


def search(conn: Connection, query: str) -> SearchResults:
    """What `cabinet-leads explain` prints, for each lead the query finds (existing leads only, at most
    ``SEARCH_ROWS``, each cut at ``SEARCH_TEXT_CHARS`` characters)."""
    from cabinet_leads import explain

    pg = raw(conn)
    out = SearchResults()
    ids, out.total = _find_leads(conn, query)
    for lead_id in ids:
        found = explain.explain_lead(pg, lead_id)
        if found is not None:
            out.append(explain.clip(explain.format_explanation(found), SEARCH_TEXT_CHARS))
        else:
            out.total -= 1
    conn.rollback()  # read-only: end the transaction the raw cursor opened
    return out


def render_search(query: str, results: list[str]) -> str:
    """The search box (and, with a query, its results) as an HTML fragment for render_html."""
    e = html.escape
    parts = [
        '<form class="search" method="get" action="">',
        '<label for="q">Lead id or phone</label> ',
        f'<input id="q" name="q" type="search" value="{e(query)}" placeholder="12345 or 987654321">',
        ' <button type="submit">Explain</button></form>',
    ]
    if query.strip():
        parts.append('<section id="search-results">')
        if results:
            total = max(getattr(results, "total", 0), len(results))
            shown = f"the first {len(results)} of {total} leads" if total > len(results) else f"{len(results)} lead(s)"
            parts.append(f"<h2>{shown} for {e(query)}</h2>")
            parts += [f'<pre class="explain">{e(text)}</pre>' for text in results]
        else:
            parts.append(f'<p class="empty">No lead found for {e(query)} (a lead id, or the phone of a '
                         "linked lead).</p>")
        parts.append("</section>")
    return "".join(parts)


# ----------------------------------------------------------------------------- rendering


def _num(n) -> str:
    return f"{n:,}"


def _nice_max(value: float) -> int:
    if value <= 4:
        return 4  # quarters of at least 1
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 1.2, 1.6, 2, 2.4, 3, 4, 5, 6, 8, 10):  # quarters stay round
        top = step * magnitude
        if top >= value:
            return int(top) if top == int(top) else int(top) + 1
    return int(10 * magnitude)


def _stage_class(stage: str) -> str:
    return "stage-" + stage.lower().replace("_", "-")


def _y_axis(e, top: int, left: int, width: int, plot_top: int, plot_h: int) -> list[str]:
    out = []
    for i in range(5):
        value = top * i / 4
        y = plot_top + plot_h - plot_h * i / 4
        out.append(f'<line class="grid" x1="{left}" x2="{left + width}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{e(_num(round(value)))}</text>')
    return out


def weekly_chart(weekly: list[dict]) -> str:
    e = html.escape
    width, height, left, right, top_pad, bottom = 860, 300, 60, 10, 10, 40
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    top = _nice_max(max((w["leads_total"] for w in weekly), default=0))
    slot = plot_w / max(len(weekly), 1)
    bar = slot * 0.7
    out = [f'<svg class="chart weekly-chart" role="img" aria-label="Leads per week by funnel stage" '
           f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">']
    out += _y_axis(e, top, left, plot_w, top_pad, plot_h)
    for i, w in enumerate(weekly):
        x = left + i * slot + (slot - bar) / 2
        y = top_pad + plot_h
        out.append(f'<g class="week" data-week="{e(str(w["week_start"]))}" data-total="{w["leads_total"]}">')
        out.append(f"<title>week of {e(str(w['week_start']))}: {e(_num(w['leads_total']))} leads</title>")
        for stage in STAGES:
            n = w[stage]
            h = plot_h * n / top
            y -= h
            out.append(
                f'<rect class="seg {_stage_class(stage)}" data-stage="{stage}" data-count="{n}" x="{x:.1f}" '
                f'y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{COLORS[stage]}">'
                f"<title>{e(stage)}: {e(_num(n))}</title></rect>"
            )
        label = w["week_start"].strftime("%d %b") if hasattr(w["week_start"], "strftime") else str(w["week_start"])
        out.append(f'<text class="axis" x="{x + bar / 2:.1f}" y="{height - bottom + 16}" '
                   f'text-anchor="middle">{e(label)}</text></g>')
    out.append("</svg>")
    return "".join(out)


def trend_chart(trend: list[dict]) -> str:
    e = html.escape
    if not trend:
        return f'<p class="empty">No limbo snapshots in the last {TREND_DAYS} days.</p>'
    width, height, left, right, top_pad, bottom = 860, 260, 60, 20, 10, 40
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    top = _nice_max(max(p[s] for p in trend for s in LIMBO_STAGES))
    t0 = trend[0]["taken_at"].timestamp()
    t1 = trend[-1]["taken_at"].timestamp()
    span = (t1 - t0) or 1.0

    def xy(p, stage):
        x = left + (plot_w * (p["taken_at"].timestamp() - t0) / span if len(trend) > 1 else plot_w / 2)
        y = top_pad + plot_h - plot_h * p[stage] / top
        return x, y

    out = [f'<svg class="chart trend-chart" role="img" aria-label="Limbo trend" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">']
    out += _y_axis(e, top, left, plot_w, top_pad, plot_h)
    for p, anchor in ((trend[0], "start"), (trend[-1], "end")) if len(trend) > 1 else ((trend[0], "middle"),):
        x, _ = xy(p, LIMBO_STAGES[0])
        out.append(f'<text class="axis" x="{x:.1f}" y="{height - bottom + 16}" text-anchor="{anchor}">'
                   f'{e(p["taken_at"].strftime("%Y-%m-%d %H:%M UTC"))}</text>')
    for stage in LIMBO_STAGES:
        points = [xy(p, stage) for p in trend]
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        out.append(f'<g class="trend {_stage_class(stage)}" data-stage="{stage}">')
        out.append(f'<polyline class="trend-line" points="{coords}" fill="none" stroke="{COLORS[stage]}" '
                   'stroke-width="2"/>')
        if len(points) <= 60:
            for (x, y), p in zip(points, trend, strict=True):
                out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{COLORS[stage]}"><title>'
                           f'{e(stage)} {e(_num(p[stage]))} after run {p["run_id"]}</title></circle>')
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def _legend(stages) -> str:
    return '<ul class="legend">' + "".join(
        f'<li><span class="swatch" style="background:{COLORS[s]}"></span>{html.escape(s)}</li>' for s in stages
    ) + "</ul>"


def _fmt_time(value) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _fmt_duration(seconds) -> str:
    if seconds is None:
        return "-"
    seconds = float(seconds)
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _table(headers: list[str], rows: list[tuple[str, list[str]]], css: str) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join(
        (f'<tr class="{e(cls)}">' if cls else "<tr>") + "".join(f"<td>{e(str(c))}</td>" for c in cells) + "</tr>"
        for cls, cells in rows
    )
    return f'<table class="{e(css)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def runs_table(runs: list[dict]) -> str:
    if not runs:
        return '<p class="empty">No runs recorded yet.</p>'
    headers = ["run", "started (UTC)", "duration", "status", "trigger", "processed", "newly linked",
               "newly driver mapped", "conflicts", "errors", "error"]
    rows = []
    for r in runs:
        status = r["status"] + (" (dry run)" if r["dry_run"] else "")
        rows.append((r["status"], [r["run_id"], _fmt_time(r["started_at"]), _fmt_duration(r["seconds"]), status,
                                   r["triggered_by"], _num(r["processed"]), _num(r["newly_linked"]),
                                   _num(r["newly_driver_mapped"]), _num(r["conflicts"]), _num(r["errors"]),
                                   (r["error"] or "")[:200]]))
    return _table(headers, rows, "runs")


def worklist_table(worklist: list[dict], total: int) -> str:
    if not worklist:
        return '<p class="empty">No open claim worklist rows.</p>'
    headers = ["lead", "external id", "name", "driver", "milestone", "reached on", "days open"]
    rows = [("", [w["lead_id"], w["external_id"] or "", w["lead_name"] or "", w["driver_id"], w["milestone"],
                  w["reached_on"], w["days_open"]]) for w in worklist]
    more = (f'<p class="note">Showing the {len(worklist):,} oldest of {total:,} open rows; the CSV has all.</p>'
            if total > len(worklist) else "")
    return more + _table(headers, rows, "worklist")


def distribution_table(dist: dict | None) -> str:
    if dist is None:
        return '<p class="empty">No limbo snapshot recorded yet (run `cabinet-leads reconcile`).</p>'
    total = sum(dist["stages"].values())
    rows = [("", [s, _num(dist["stages"][s]), _num(dist["recent"][s]),
                  f"{100 * dist['stages'][s] / total:.1f}%" if total else "-"]) for s in STAGES]
    rows.append(("total", ["total", _num(total), _num(sum(dist["recent"].values())), ""]))
    days = int(dist["recent_days"]) if dist.get("recent_days") else None  # the run's own recent window
    window = f"{days} days" if days else "the run's window"
    limbo_cmd = f"cabinet-leads limbo --recent-days {days}" if days else "cabinet-leads limbo"
    caption = (f'<p class="note">After run {dist["run_id"]}, {html.escape(_fmt_time(dist["taken_at"]))} UTC '
               f"(the job's snapshot: the numbers of <code>{limbo_cmd}</code> at that time; "
               + (f"recent: leads created in the {days} days before that run's anchor" if days
                  else "recent: leads of that run's own recent window") + ").</p>")
    table = _table(["limbo_stage", "count", f"recent ({window})", "share"], rows, "distribution")
    # data-stage cells for machines (tests, scrapers)
    for s in STAGES:
        table = table.replace(f"<tr><td>{s}</td>", f'<tr data-stage="{s}"><td>{s}</td>', 1)
    return caption + table


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:16px 24px;color:#222;background:#fff}
h1{font-size:1.4em;margin:0 0 4px}h2{font-size:1.1em;margin:24px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta,.note,.empty{color:#666;font-size:.9em}
table{border-collapse:collapse;font-size:.85em}th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
table.worklist td:nth-child(-n+4),table.worklist th:nth-child(-n+4),table.runs td:last-child{text-align:left}
table.runs tr.failed td,table.runs tr.abandoned td{background:#fde2e2;color:#8b0000;font-weight:600}
table.runs tr.running td{background:#fff7d6}
table tr.total td{font-weight:600}
.chart{max-width:100%;height:auto}.chart .grid{stroke:#eee}.chart .axis{font-size:11px;fill:#555}
.legend{list-style:none;padding:0;margin:4px 0;display:flex;gap:16px;font-size:.85em}
.swatch{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
form.search{margin:12px 0;padding:8px;background:#f7f7fb;border:1px solid #e0e0ea;display:inline-block}
form.search input{width:240px;padding:3px}
pre.explain{background:#f8f8f8;border:1px solid #ddd;padding:8px;overflow-x:auto;font-size:.85em}
"""


def render_html(data: dict, *, search_html: str = "", csv_href: str | None = None) -> str:
    """One self-contained HTML page (inline CSS and SVG, no scripts, no external resources)."""
    e = html.escape
    weekly = data["weekly"]
    period = f"{weekly[0]['week_start']} .. {weekly[-1]['week_start']}" if weekly else "-"
    weekly_section = [
        f'<section id="weekly"><h2>Leads per week by stage (last {len(weekly)} weeks: {e(period)})</h2>',
        _legend(STAGES), weekly_chart(weekly),
        _table(["week_start", "leads_total", *STAGES],
               [("", [w["week_start"], _num(w["leads_total"]), *(_num(w[s]) for s in STAGES)])
                for w in reversed(weekly)], "weekly"),
        "</section>",
    ]
    csv_link = f' <a href="{e(csv_href)}" download>Download CSV</a>' if csv_href else ""
    return "".join([
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>Cabinet funnel</title><style>", CSS, "</style></head><body>",
        "<h1>Cabinet funnel</h1>",
        f'<p class="meta">Generated {e(_fmt_time(data["generated_at"]))} UTC. Lead dates are Lima dates.</p>',
        search_html,
        '<section id="distribution"><h2>Limbo distribution</h2>', distribution_table(data["distribution"]),
        "</section>",
        *weekly_section,
        f'<section id="trend"><h2>Limbo trend after each run (last {TREND_DAYS} days)</h2>',
        _legend(LIMBO_STAGES), trend_chart(data["trend"]), "</section>",
        f'<section id="runs"><h2>Last {len(data["runs"])} runs</h2>', runs_table(data["runs"]), "</section>",
        f'<section id="worklist"><h2>Open claim worklist ({data["worklist_open"]:,} open){csv_link}</h2>',
        worklist_table(data["worklist"], data["worklist_open"]), "</section>",
        "</body></html>",
    ])
