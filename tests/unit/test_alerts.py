import datetime as dt

import pytest

from cabinet_leads.alerts import (
    Alert,
    State,
    Thresholds,
    deadline_notice,
    decide,
    evaluate,
    notification_email,
)

T = Thresholds(max_no_identity_last_week=10, max_no_identity_growth=3, max_trips_no_claim=100, max_trips_no_claim_growth=5)
T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def test_quiet_below_every_threshold():
    assert evaluate({"limbo_no_identity_last_week": 10, "limbo_trips_no_claim": 100},
                    {"limbo_no_identity_last_week": 7, "limbo_trips_no_claim": 95}, T) == []


def test_level_and_growth_are_separate_alerts():
    alerts = evaluate({"limbo_no_identity_last_week": 11, "limbo_trips_no_claim": 50},
                      {"limbo_no_identity_last_week": 2, "limbo_trips_no_claim": 50}, T)
    assert [(a.key, a.reason.split()[0]) for a in alerts] == [
        ("limbo_no_identity_last_week", "11"),
        ("limbo_no_identity_last_week:growth", "grew"),
    ]


def test_growth_needs_a_previous_run():
    alerts = evaluate({"limbo_no_identity_last_week": 0, "limbo_trips_no_claim": 101}, None, T)
    assert [a.metric for a in alerts] == ["limbo_trips_no_claim"] and alerts[0].previous is None


# ------------------------------------------------------------------ memory: Alertmanager's rules

TRIPS = Alert("limbo_trips_no_claim", 813, 813, "813 is above the threshold of 500")


def run(found, states, now, repeat=dt.timedelta(hours=24)):
    notes, new = decide(found, states, now=now, repeat_every=repeat, metrics={"limbo_trips_no_claim": 10})
    return [(n.alert, n.status) for n in notes], new


def test_fires_once_then_repeats_after_the_interval_then_resolves_once():
    sent, states = run([TRIPS], {}, T0)
    assert sent == [("limbo_trips_no_claim", "firing")]
    for hours in range(1, 24):  # every hourly run of the next day holds the same numbers: silence
        sent, states = run([TRIPS], states, T0 + hours * HOUR)
        assert sent == [], hours
    sent, states = run([TRIPS], states, T0 + 24 * HOUR)
    assert sent == [("limbo_trips_no_claim", "repeat")]
    assert states["limbo_trips_no_claim"].since == T0  # still the same firing
    sent, states = run([TRIPS], states, T0 + 25 * HOUR)
    assert sent == []
    sent, states = run([], states, T0 + 26 * HOUR)
    assert sent == [("limbo_trips_no_claim", "resolved")]
    assert states["limbo_trips_no_claim"].firing is False
    sent, states = run([], states, T0 + 27 * HOUR)
    assert sent == []
    sent, states = run([TRIPS], states, T0 + 28 * HOUR)  # holds again: a new firing at once
    assert sent == [("limbo_trips_no_claim", "firing")] and states["limbo_trips_no_claim"].since == T0 + 28 * HOUR


def test_alerts_are_independent_and_a_growth_alert_is_its_own():
    growth = Alert("limbo_trips_no_claim", 900, 813, "grew by 87 since the previous run (limit 50)", "growth")
    sent, states = run([TRIPS], {}, T0)
    sent, states = run([TRIPS, growth], states, T0 + HOUR)
    assert sent == [("limbo_trips_no_claim:growth", "firing")]
    sent, states = run([TRIPS], states, T0 + 2 * HOUR)
    assert sent == [("limbo_trips_no_claim:growth", "resolved")]


def test_repeat_interval_zero_repeats_every_run_and_negative_is_refused():
    _, states = run([TRIPS], {}, T0)
    sent, _ = run([TRIPS], states, T0 + dt.timedelta(minutes=1), repeat=dt.timedelta(0))
    assert sent == [("limbo_trips_no_claim", "repeat")]
    with pytest.raises(ValueError, match="negative"):
        run([TRIPS], states, T0, repeat=dt.timedelta(hours=-1))


def test_a_remembered_alert_that_was_resolved_stays_quiet():
    states = {"limbo_trips_no_claim": State("limbo_trips_no_claim", False, None, T0, 10, 813)}
    sent, new = run([], states, T0 + HOUR)
    assert sent == [] and new["limbo_trips_no_claim"].firing is False


def test_notification_email_escapes_and_says_firing_or_resolved():
    notes, _ = decide([Alert("limbo_trips_no_claim", 101, None, "<b>101</b>")], {}, now=T0)
    subject, body = notification_email(notes, dag_id="d", run_id="<script>")
    assert subject == "[cabinet-leads] limbo alert: limbo_trips_no_claim firing"
    assert "<script>" not in body and "&lt;script&gt;" in body and "&lt;b&gt;101" in body


# ------------------------------------------------------------------ deadline

DEADLINE = {"id": "x", "deadline_time": "2026-03-02T10:45:00+00:00"}


def dag_run(state, end=None):
    return {"dag_id": "d", "dag_run_id": "manual__2026-03-02T10:00:00+00:00", "state": state,
            "queued_at": "2026-03-02T10:00:00Z", "start_date": "2026-03-02T10:00:05Z", "end_date": end}


def test_a_run_that_ended_before_its_deadline_gets_no_email():
    now = T0 + dt.timedelta(minutes=46)
    for state in ("failed", "success"):
        assert deadline_notice(dag_run(state, "2026-03-02T10:03:00Z"), DEADLINE, now=now, deadline_minutes=45) is None


def test_a_late_run_is_named_with_its_state_its_time_and_a_link():
    now = T0 + dt.timedelta(minutes=46)
    subject, body = deadline_notice(dag_run("running"), DEADLINE, now=now, deadline_minutes=45,
                                    base_url="http://af:8080/")
    assert subject == ("[cabinet-leads] DEADLINE MISSED: d run manual__2026-03-02T10:00:00+00:00 still running "
                       "46 min after it was queued (deadline 45 min)")
    assert "state: running" in body and "46 min since queued" in body
    assert "href='http://af:8080/dags/d/runs/manual__2026-03-02T10%3A00%3A00%2B00%3A00'" in body


def test_a_run_that_ended_after_its_deadline_is_still_reported_late():
    now = T0 + dt.timedelta(minutes=50)
    subject, _ = deadline_notice(dag_run("failed", "2026-03-02T10:48:00Z"), DEADLINE, now=now, deadline_minutes=45)
    assert "failed, finished 48 min after it was queued" in subject
