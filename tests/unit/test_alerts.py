from cabinet_leads.alerts import Thresholds, email, evaluate

T = Thresholds(max_no_identity_last_week=10, max_no_identity_growth=3, max_trips_no_claim=100, max_trips_no_claim_growth=5)


def test_quiet_below_every_threshold():
    assert evaluate({"limbo_no_identity_last_week": 10, "limbo_trips_no_claim": 100},
                    {"limbo_no_identity_last_week": 7, "limbo_trips_no_claim": 95}, T) == []


def test_level_and_growth_are_separate_alerts():
    alerts = evaluate({"limbo_no_identity_last_week": 11, "limbo_trips_no_claim": 50},
                      {"limbo_no_identity_last_week": 2, "limbo_trips_no_claim": 50}, T)
    assert [(a.metric, a.reason.split()[0]) for a in alerts] == [
        ("limbo_no_identity_last_week", "11"),
        ("limbo_no_identity_last_week", "grew"),
    ]


def test_growth_needs_a_previous_run():
    alerts = evaluate({"limbo_no_identity_last_week": 0, "limbo_trips_no_claim": 101}, None, T)
    assert [a.metric for a in alerts] == ["limbo_trips_no_claim"] and alerts[0].previous is None


def test_email_escapes_and_names_metrics():
    alerts = evaluate({"limbo_no_identity_last_week": 0, "limbo_trips_no_claim": 101}, None, T)
    subject, body = email(alerts, dag_id="d", run_id="<script>")
    assert "limbo_trips_no_claim" in subject and "<script>" not in body and "&lt;script&gt;" in body
