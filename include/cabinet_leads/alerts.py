"""Limbo alerts of the runbook's "Monitoreo": thresholds on the level and on the growth since the
previous run of `limbo_no_identity` (leads of the last week) and `limbo_trips_no_claim`."""

from __future__ import annotations

import html
from dataclasses import dataclass

METRICS = ("limbo_no_identity_last_week", "limbo_trips_no_claim")


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
                Alert(metric, value, before, f"grew by {value - before} since the previous run (limit {max_growth})")
            )
    return alerts


def email(alerts: list[Alert], *, dag_id: str, run_id: str) -> tuple[str, str]:
    """Subject and HTML body of the alert email (every value escaped)."""
    names = ", ".join(sorted({a.metric for a in alerts}))
    subject = f"[cabinet-leads] limbo alert: {names} ({dag_id})"
    rows = "".join(
        f"<tr><td>{html.escape(a.metric)}</td><td>{a.value}</td><td>{'-' if a.previous is None else a.previous}</td>"
        f"<td>{html.escape(a.reason)}</td></tr>"
        for a in alerts
    )
    body = (
        f"<p>DAG <b>{html.escape(dag_id)}</b>, run <b>{html.escape(run_id)}</b> crossed limbo thresholds.</p>"
        f"<table border='1'><tr><th>metric</th><th>now</th><th>previous run</th><th>why</th></tr>{rows}</table>"
        "<p>Check with <code>cabinet-leads limbo</code> and the runbook's troubleshooting section.</p>"
    )
    return subject, body
