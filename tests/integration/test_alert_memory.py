"""The limbo alerts' memory (ops.alert_state, V010) on a real PostgreSQL: Alertmanager's rules
across runs, concurrent deciders, and a failed email that leaves the state as it was."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from cabinet_leads import alerts

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
TRIPS = alerts.Alert("limbo_trips_no_claim", 813, 813, "813 is above the threshold of 500")


def remember(engine, found, now, **kw):
    with engine.begin() as conn:
        notes = alerts.remember(conn, found, now=now, metrics={"limbo_trips_no_claim": 12}, **kw)
    return [(n.alert, n.status) for n in notes]


def test_fire_silence_repeat_resolve_across_transactions(engine, pg):
    assert remember(engine, [TRIPS], T0, run_id=1) == [("limbo_trips_no_claim", "firing")]
    assert remember(engine, [TRIPS], T0 + dt.timedelta(hours=1), run_id=2) == []
    assert remember(engine, [TRIPS], T0 + dt.timedelta(hours=24), run_id=3) == [("limbo_trips_no_claim", "repeat")]
    row = pg.execute(
        "select firing, since, last_notified_at, metric_value, run_id from ops.alert_state "
        "where alert = 'limbo_trips_no_claim'"
    ).fetchone()
    assert row == (True, T0, T0 + dt.timedelta(hours=24), 813, 3)
    assert remember(engine, [], T0 + dt.timedelta(hours=25), run_id=4) == [("limbo_trips_no_claim", "resolved")]
    assert remember(engine, [], T0 + dt.timedelta(hours=26), run_id=5) == []
    assert pg.execute(
        "select firing, since, metric_value from ops.alert_state where alert = 'limbo_trips_no_claim'"
    ).fetchone() == (False, None, 12)


def test_a_failed_email_rolls_the_state_back_so_the_retry_notifies(engine, pg):
    with pytest.raises(ConnectionRefusedError), engine.begin() as conn:
        assert alerts.remember(conn, [TRIPS], now=T0)
        raise ConnectionRefusedError("smtp down")  # what sending the email raised
    assert pg.execute("select count(*) from ops.alert_state").fetchone()[0] == 0
    assert remember(engine, [TRIPS], T0 + dt.timedelta(minutes=1)) == [("limbo_trips_no_claim", "firing")]


def test_two_runs_deciding_at_once_notify_once(engine):
    """The advisory lock makes the second decider wait for the first one's commit."""
    first_decided, release = threading.Event(), threading.Event()
    results = {}

    def slow_first():
        with engine.begin() as conn:
            results["first"] = alerts.remember(conn, [TRIPS], now=T0)
            first_decided.set()
            release.wait(10)

    thread = threading.Thread(target=slow_first)
    thread.start()
    assert first_decided.wait(10)
    second = threading.Thread(target=lambda: results.update(second=remember(engine, [TRIPS], T0)))
    second.start()
    second.join(0.5)
    assert second.is_alive()  # waiting for the lock
    release.set()
    thread.join(10)
    second.join(10)
    assert [n.status for n in results["first"]] == ["firing"] and results["second"] == []
