"""The funnel views on a hand-built fixture whose every count is worked out by hand below.

Lima is UTC-5 all year (no DST). Leads:

  L1  2026-03-02 04:59Z = Sun 03-01 23:59 Lima, week 02-23, no link                 -> NO_IDENTITY
  L2  2026-03-02 05:00Z = Mon 03-02 00:00 Lima, week 03-02, person P2, no driver    -> NO_DRIVER
  L3  03-02, P3/D3, 4 trips on 03-16 = lead_date + 14 (day 15, outside the window)   -> NO_TRIPS_14D
  L4  03-02, P4/D4, 3 trips on 03-15 = lead_date + 13 (day 14, inside), no claim    -> TRIPS_NO_CLAIM
  L5  03-02, P5 with D5a (2 trips) and D5b (4 trips): 6 trips, milestones 1 and 5;
      claim 1 on D5a, claim 5 on the second account D5b                              -> OK, driver D5b
  L6  03-02, P6 with D6a (hired 02-01) and D6b (hired 01-15), 2 trips each; the only
      claim is 'rejected'                                                             -> TRIPS_NO_CLAIM, driver D6b
  L7  2026-03-09 04:00Z = Sun 03-08 23:00 Lima, week 03-02, P5 again (second sign-up):
      P5's trips are before its window                                                -> NO_TRIPS_14D
  L8  2026-03-09 05:30Z = Mon 03-09, week 03-09, P8/D8 with 26 trips, claims 1 and 5 -> TRIPS_NO_CLAIM {25}
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

D = dt.date


def _link(pg, table: str, pk: str, person: int) -> None:
    pg.execute(
        "insert into canon.identity_links (source_table, source_pk, person_key, match_rule, evidence) "
        "values (%s, %s, %s, 'TEST', %s)",
        (table, pk, person, json.dumps({"fixture": True})),
    )


@pytest.fixture
def funnel_fixture(pg):
    leads = [
        (1, "2026-03-02 04:59:00+00"),
        (2, "2026-03-02 05:00:00+00"),
        (3, "2026-03-02 15:00:00+00"),
        (4, "2026-03-02 15:00:00+00"),
        (5, "2026-03-02 15:00:00+00"),
        (6, "2026-03-02 15:00:00+00"),
        (7, "2026-03-09 04:00:00+00"),
        (8, "2026-03-09 05:30:00+00"),
    ]
    for lead_id, created in leads:
        pg.execute(
            "insert into public.module_ct_cabinet_leads (id, external_id, lead_created_at) values (%s, %s, %s)",
            (lead_id, f"CAB-{lead_id}", created),
        )
    for person in (2, 3, 4, 5, 6, 8):
        pg.execute("insert into canon.identity_registry (person_key) values (%s)", (person,))
    drivers = [
        ("D3", 3, "2026-01-10"),
        ("D4", 4, "2026-01-10"),
        ("D5a", 5, "2026-01-01"),
        ("D5b", 5, "2026-02-01"),
        ("D6a", 6, "2026-02-01"),
        ("D6b", 6, "2026-01-15"),
        ("D8", 8, "2026-01-10"),
    ]
    for driver_id, person, hired in drivers:
        pg.execute("insert into public.drivers (driver_id, hired_at) values (%s, %s)", (driver_id, hired))
        _link(pg, "drivers", driver_id, person)
    for lead_id, person in [(2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 5), (8, 8)]:
        _link(pg, "module_ct_cabinet_leads", str(lead_id), person)
    trips = [
        ("D3", D(2026, 3, 16), 4),
        ("D4", D(2026, 3, 15), 3),
        ("D5a", D(2026, 3, 3), 2),
        ("D5b", D(2026, 3, 4), 4),
        ("D6a", D(2026, 3, 5), 2),
        ("D6b", D(2026, 3, 6), 2),
        ("D8", D(2026, 3, 9), 4),
        ("D8", D(2026, 3, 10), 10),
        ("D8", D(2026, 3, 12), 12),
    ]
    for row in trips:
        pg.execute("insert into public.driver_daily_trips values (%s, %s, %s)", row)
    claims = [
        ("C1", "D5a", 1, "approved"),
        ("C2", "D5b", 5, "pending"),
        ("C3", "D6a", 1, "rejected"),
        ("C4", "D8", 1, None),
        ("C5", "D8", 5, "approved"),
    ]
    for claim_id, driver_id, milestone, status in claims:
        pg.execute(
            "insert into public.milestone_claims values (%s, %s, %s, '2026-03-20 12:00+00', %s)",
            (claim_id, driver_id, milestone, status),
        )
    return pg


def _limbo(pg) -> dict[int, tuple]:
    rows = pg.execute(
        "select lead_id, lead_date, week_start, limbo_stage, person_key, driver_id, trips_14d, "
        "milestones_unclaimed from ops.v_cabinet_leads_limbo"
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_limbo_view_stage_per_lead(funnel_fixture):
    got = _limbo(funnel_fixture)
    assert got == {
        1: (D(2026, 3, 1), D(2026, 2, 23), "NO_IDENTITY", None, None, 0, []),
        2: (D(2026, 3, 2), D(2026, 3, 2), "NO_DRIVER", 2, None, 0, []),
        3: (D(2026, 3, 2), D(2026, 3, 2), "NO_TRIPS_14D", 3, "D3", 0, []),
        4: (D(2026, 3, 2), D(2026, 3, 2), "TRIPS_NO_CLAIM", 4, "D4", 3, [1]),
        5: (D(2026, 3, 2), D(2026, 3, 2), "OK", 5, "D5b", 6, []),
        6: (D(2026, 3, 2), D(2026, 3, 2), "TRIPS_NO_CLAIM", 6, "D6b", 4, [1]),
        7: (D(2026, 3, 8), D(2026, 3, 2), "NO_TRIPS_14D", 5, "D5a", 0, []),
        8: (D(2026, 3, 9), D(2026, 3, 9), "TRIPS_NO_CLAIM", 8, "D8", 26, [25]),
    }


def test_weekly_audit_counts(funnel_fixture):
    rows = funnel_fixture.execute(
        "select week_start, leads_total, limbo_no_identity, limbo_no_driver, limbo_no_trips_14d, "
        "limbo_trips_no_claim, limbo_ok from ops.v_cabinet_14d_funnel_audit_weekly order by week_start"
    ).fetchall()
    assert rows == [
        (D(2026, 2, 23), 1, 1, 0, 0, 0, 0),
        (D(2026, 3, 2), 6, 0, 1, 2, 2, 1),
        (D(2026, 3, 9), 1, 0, 0, 0, 1, 0),
    ]


def test_milestones_come_from_configuration(funnel_fixture):
    funnel_fixture.execute("update ops.milestone_config set active = false where milestone = 25")
    assert _limbo(funnel_fixture)[8][2] == "OK"
    funnel_fixture.execute("insert into ops.milestone_config (milestone) values (3)")
    # L5 has 6 trips and no claim for 3 now; L4 has exactly 3 trips.
    got = _limbo(funnel_fixture)
    assert got[5][2] == "TRIPS_NO_CLAIM" and got[5][6] == [3]
    assert got[4][6] == [1, 3]


def test_claim_arriving_moves_lead_to_ok(funnel_fixture):
    funnel_fixture.execute("insert into public.milestone_claims values ('C9', 'D4', 1, now(), 'pending')")
    assert _limbo(funnel_fixture)[4][2] == "OK"


def test_milestone_view_reached_on_and_claims(funnel_fixture):
    rows = funnel_fixture.execute(
        "select lead_id, milestone, reached_on, claim_id from ops.v_cabinet_lead_milestones order by 1, 2"
    ).fetchall()
    assert rows == [
        (4, 1, D(2026, 3, 15), None),
        (5, 1, D(2026, 3, 3), "C1"),
        (5, 5, D(2026, 3, 4), "C2"),
        (6, 1, D(2026, 3, 5), None),
        (8, 1, D(2026, 3, 9), "C4"),
        (8, 5, D(2026, 3, 10), "C5"),
        (8, 25, D(2026, 3, 12), None),
    ]


def test_view_data_tests_unique_not_null_relationships(funnel_fixture):
    pg = funnel_fixture
    assert pg.execute(
        "select count(*), count(distinct lead_id), count(lead_date), count(limbo_stage) from ops.v_cabinet_leads_limbo"
    ).fetchone() == (8, 8, 8, 8)
    assert pg.execute("select count(*) from public.module_ct_cabinet_leads").fetchone()[0] == 8
    orphans = pg.execute(
        "select count(*) from ops.v_cabinet_leads_limbo v where v.person_key is not null "
        "and not exists (select 1 from canon.identity_registry r where r.person_key = v.person_key)"
    ).fetchone()[0]
    assert orphans == 0
    stages = {r[0] for r in pg.execute("select distinct limbo_stage from ops.v_cabinet_leads_limbo")}
    assert stages <= {"NO_IDENTITY", "NO_DRIVER", "NO_TRIPS_14D", "TRIPS_NO_CLAIM", "OK"}
    weeks = pg.execute(
        "select count(*), count(distinct week_start), bool_and(extract(isodow from week_start) = 1) "
        "from ops.v_cabinet_14d_funnel_audit_weekly"
    ).fetchone()
    assert weeks == (3, 3, True)
