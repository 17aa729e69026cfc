"""Alerts of the runbook's "Monitoreo", decided here and sent by the DAGs (no Airflow in this module).

Limbo alerts: thresholds on the level and on the growth since the previous run of
`limbo_no_identity` (leads of the last week) and `limbo_trips_no_claim` (``evaluate``). Each
(metric, kind) pair is one alert with a memory in ``ops.alert_state``, the way Alertmanager treats
alerts (``decide``, ``remember``): it notifies when it starts to fire, repeats at most once per
repeat interval (default 24 h) while it keeps firing, and notifies once more when it is resolved.

Deadline alerts: ``deadline_notice`` says whether a missed deadline is worth an email, from the
run's state as the scheduler saw it when the deadline passed.
"""

from __future__ import annotations

import datetime as dt
import html
import urllib.parse
from dataclasses import dataclass, replace

from sqlalchemy.engine import Connection

from cabinet_leads.db import read_sql

METRICS = ("limbo_no_identity_last_week", "limbo_trips_no_claim")
KINDS = ("level", "growth")
REPEAT_EVERY = dt.timedelta(hours=24)


@dataclass(frozen=True)
class Thresholds:
    """Alert when a metric is above ``max_*`` or grew by more than ``max_*_growth`` since the last run."""

    max_no_identity_last_week: int = 50
    max_no_identity_growth: int = 20
    max_trips_no_claim: int = 500
    max_trips_no_claim_growth: int = 50

    def limits(self) -> dict[str, tuple[int, int]]:
        return {
            "limbo_no_identity_last_week": (self.max_no_identity_last_week, self.max_no_identity_growth),
            "limbo_trips_no_claim": (self.max_trips_no_claim, self.max_trips_no_claim_growth),
        }


@dataclass(frozen=True)
class Alert:
    metric: str
    value: int
    previous: int | None
    reason: str
    kind: str = "level"  # "level" (above max_*) or "growth" (grew by more than max_*_growth)

    @property
    def key(self) -> str:
        return alert_key(self.metric, self.kind)


def alert_key(metric: str, kind: str) -> str:
    """The name of an alert in ops.alert_state and in the emails, e.g. ``limbo_trips_no_claim``
    (level) or ``limbo_trips_no_claim:growth``."""
    return metric if kind == "level" else f"{metric}:{kind}"


def evaluate(metrics: dict[str, int], previous: dict[str, int] | None, thresholds: Thresholds) -> list[Alert]:
    """Which thresholds the current metrics cross (level, or growth against the previous run's)."""
    alerts = []
    for metric, (max_level, max_growth) in thresholds.limits().items():
        value = int(metrics[metric])
        before = None if not previous or previous.get(metric) is None else int(previous[metric])
        if value > max_level:
            alerts.append(Alert(metric, value, before, f"{value} is above the threshold of {max_level}"))
        if before is not None and value - before > max_growth:
            alerts.append(
                Alert(
                    metric,
                    value,
                    before,
                    f"grew by {value - before} since the previous run (limit {max_growth})",
                    "growth",
                )
            )
    return alerts


# ------------------------------------------------------------------------------ alert memory


@dataclass(frozen=True)
class State:
    """One row of ops.alert_state: what an alert last was and when it last notified."""

    alert: str
    firing: bool
    since: dt.datetime | None = None  # when the current firing started (None while resolved)
    last_notified_at: dt.datetime | None = None
    metric_value: int | None = None
    previous_value: int | None = None
    reason: str | None = None
    run_id: int | None = None


@dataclass(frozen=True)
class Notification:
    """What one run tells on-call about one alert: ``firing`` (it started), ``repeat`` (still
    firing, the repeat interval has passed) or ``resolved`` (it stopped)."""

    alert: str
    status: str
    value: int | None
    previous: int | None
    reason: str
    since: dt.datetime | None


def decide(
    found: list[Alert],
    states: dict[str, State],
    *,
    now: dt.datetime,
    repeat_every: dt.timedelta = REPEAT_EVERY,
    metrics: dict[str, int] | None = None,
    run_id: int | None = None,
) -> tuple[list[Notification], dict[str, State]]:
    """Alertmanager's rules on one run's findings: the notifications to send and the new states.

    An alert fires when its condition starts to hold, repeats when it still holds and its last
    notification is at least ``repeat_every`` old, and is resolved (once) when it no longer holds.
    ``metrics`` (this run's values) fill in the value of a resolved alert."""
    if repeat_every < dt.timedelta(0):
        raise ValueError(f"the repeat interval must not be negative, got {repeat_every}")
    firing = {a.key: a for a in found}
    keys = sorted({alert_key(m, k) for m in METRICS for k in KINDS} | set(firing) | set(states))
    notes: list[Notification] = []
    new_states: dict[str, State] = {}
    for key in keys:
        old = states.get(key)
        alert = firing.get(key)
        if alert is not None:
            was_firing = old is not None and old.firing
            since = old.since if was_firing and old.since is not None else now
            last = old.last_notified_at if was_firing else None
            status = "firing" if not was_firing else ("repeat" if last is None or now - last >= repeat_every else None)
            if status:
                notes.append(Notification(key, status, alert.value, alert.previous, alert.reason, since))
                last = now
            new_states[key] = State(key, True, since, last, alert.value, alert.previous, alert.reason, run_id)
        elif old is not None and old.firing:
            value = (metrics or {}).get(key.split(":")[0], None)
            reason = f"no longer holds (was: {old.reason})"
            notes.append(Notification(key, "resolved", value, old.metric_value, reason, old.since))
            new_states[key] = State(key, False, None, now, value, old.metric_value, None, run_id)
        elif old is not None:
            new_states[key] = replace(old, run_id=run_id)
    return notes, new_states


def load_states(conn: Connection) -> dict[str, State]:
    rows = conn.exec_driver_sql(read_sql("alerts/load_state.sql")).mappings()
    return {r["alert"]: State(**r) for r in rows}


def save_states(conn: Connection, states: dict[str, State]) -> None:
    sql = read_sql("alerts/save_state.sql")
    for state in states.values():
        conn.exec_driver_sql(sql, vars(state))


def remember(
    conn: Connection,
    found: list[Alert],
    *,
    now: dt.datetime,
    repeat_every: dt.timedelta = REPEAT_EVERY,
    metrics: dict[str, int] | None = None,
    run_id: int | None = None,
) -> list[Notification]:
    """``decide`` against the states stored in ops.alert_state, and store the new ones.

    Runs in the caller's transaction, with a transaction-level lock so that two runs never decide
    at once: send the notifications before committing, and a failed email rolls the state back
    (the retry notifies again instead of never)."""
    conn.exec_driver_sql(read_sql("alerts/lock_state.sql"))
    notes, states = decide(
        found, load_states(conn), now=now, repeat_every=repeat_every, metrics=metrics, run_id=run_id
    )
    save_states(conn, states)
    return notes


def notification_email(notes: list[Notification], *, dag_id: str, run_id: str) -> tuple[str, str]:
    """Subject and HTML body of one email for all of a run's notifications (values escaped)."""
    order = {"firing": 0, "repeat": 1, "resolved": 2}
    notes = sorted(notes, key=lambda n: (order[n.status], n.alert))
    words = {"firing": "firing", "repeat": "still firing", "resolved": "resolved"}
    subject = "[cabinet-leads] limbo alert: " + "; ".join(f"{n.alert} {words[n.status]}" for n in notes)
    rows = "".join(
        f"<tr><td>{html.escape(n.alert)}</td><td>{html.escape(words[n.status])}</td>"
        f"<td>{'-' if n.value is None else n.value}</td><td>{'-' if n.previous is None else n.previous}</td>"
        f"<td>{html.escape(n.reason)}</td><td>{'-' if n.since is None else _utc(n.since)}</td></tr>"
        for n in notes
    )
    body = (
        f"<p>DAG <b>{html.escape(dag_id)}</b>, run <b>{html.escape(run_id)}</b>.</p>"
        "<table border='1'><tr><th>alert</th><th>status</th><th>now</th><th>before</th><th>why</th>"
        f"<th>firing since</th></tr>{rows}</table>"
        "<p>A firing alert is repeated at most once per repeat interval (Airflow Variable "
        "<code>cabinet_leads_alert_repeat_hours</code>) while it holds, and resolved once when it stops. "
        "Check with <code>cabinet-leads limbo</code> and the runbook's troubleshooting section.</p>"
    )
    return subject, body


# ------------------------------------------------------------------------------ deadline


def deadline_notice(
    dag_run: dict, deadline: dict, *, now: dt.datetime, deadline_minutes: float, base_url: str = ""
) -> tuple[str, str] | None:
    """Subject and HTML body of the Deadline Alert email, or None when the run had already ended
    before its deadline (Airflow removes a deadline only when the run succeeds in time, so a run
    that failed early comes here too: its failure was emailed by the task's failure callback).

    ``dag_run`` is the run as Airflow's REST API shows it and ``deadline`` has ``deadline_time``:
    the context the scheduler gives a Deadline Alert callback when the deadline has passed."""
    deadline_time = _aware(deadline["deadline_time"])
    state = str(dag_run.get("state") or "unknown")
    end = _aware(dag_run.get("end_date"))
    if end is not None and end <= deadline_time:
        return None
    dag_id, run_id = str(dag_run["dag_id"]), str(dag_run.get("dag_run_id") or dag_run.get("run_id"))
    queued = _aware(dag_run.get("queued_at")) or _aware(dag_run.get("start_date")) or deadline_time
    started = _aware(dag_run.get("start_date"))
    ran = _duration((end or now) - queued)
    if end is None:
        what = f"still {state} {ran} after it was queued"
    else:
        what = f"{state}, finished {ran} after it was queued"
    subject = f"[cabinet-leads] DEADLINE MISSED: {dag_id} run {run_id} {what} (deadline {deadline_minutes:g} min)"
    link = run_url(base_url, dag_id, run_id)
    items = [
        ("run", html.escape(run_id)),
        ("state", html.escape(state)),
        ("queued at", _utc(queued)),
        ("started at", "-" if started is None else _utc(started)),
        ("ended at", "-" if end is None else _utc(end)),
        ("has run for", f"{ran} since queued"),
        ("deadline", f"{_utc(deadline_time)} ({deadline_minutes:g} min after queued)"),
        ("link", f"<a href='{html.escape(link)}'>{html.escape(link)}</a>"),
    ]
    body = (
        f"<p>A run of <b>{html.escape(dag_id)}</b> is late: {html.escape(what)}, "
        f"past its deadline of {deadline_minutes:g} minutes (Airflow Deadline Alert).</p>"
        "<ul>" + "".join(f"<li>{k}: {v}</li>" for k, v in items) + "</ul>"
        "<p>Look at its running tasks in the Airflow UI (link above); the job holds no lock across runs, "
        "the next run picks up whatever this one does not finish.</p>"
    )
    return subject, body


def run_url(base_url: str, dag_id: str, run_id: str) -> str:
    """The Airflow UI page of one run."""
    quote = urllib.parse.quote
    return f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def _aware(value) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _duration(delta: dt.timedelta) -> str:
    seconds = max(0, round(delta.total_seconds()))
    return f"{seconds} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _utc(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
