"""Hostile source rows (issue 9): timestamps Python cannot hold, over-long fields, placeholder and
hub key values, and data that would make pages unbounded. Real PostgreSQL, the real pipeline."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from cabinet_leads import ReconcileCabinetLeadsPipeline, explain, funnel, report
from cabinet_leads.normalize import MAX_FIELD_LENGTH, normalize_doc, normalize_license, normalize_phone
from tests.integration.test_identity_rules import ANCHOR, add_driver, add_lead, link_of, unmatched_of
from tests.integration.test_report import load_plugin_module

# Each value Python's datetime cannot hold, as PostgreSQL spells it.
HOSTILE_TIMESTAMPS = ("infinity", "-infinity", "0044-03-15 00:00+00 BC", "12000-01-01 00:00+00", "294276-12-31 00:00+00")
HOSTILE_DATES = ("infinity", "-infinity", "0044-03-15 BC", "12000-01-01")
GOOD_CREATED = "2026-03-10 15:00+00"


def _arrange_hostile(pg) -> dict:
    """10 good leads (unique phone and DNI), one good driver account with trips and a claim of the
    first good lead's person, and every hostile value in every timestamp column of the four source
    tables."""
    good = list(range(1, 11))
    for i in good:
        add_lead(pg, i, phone=f"96{i:07d}", doc=f"4{i:07d}", first=f"Nombre{chr(64 + i)}", created=GOOD_CREATED)
    add_driver(pg, "D-GOOD", phone="960000001", doc="40000001", first="NombreA")
    pg.execute("insert into public.driver_daily_trips values ('D-GOOD', '2026-03-11', 3)")
    bad_leads: dict[int, str] = {}
    bad_drivers: dict[str, str] = {}
    next_id = 100
    for value in HOSTILE_TIMESTAMPS:
        for column in ("lead_created_at", "updated_at"):
            created = value if column == "lead_created_at" else GOOD_CREATED
            updated = value if column == "updated_at" else "2026-03-10 15:05+00"
            add_lead(pg, next_id, phone=f"97{next_id:07d}", doc=f"5{next_id:07d}", created=created, updated=updated)
            bad_leads[next_id] = column
            next_id += 1
        for column in ("hired_at", "updated_at"):
            driver_id = f"D-BAD-{next_id}"
            pg.execute(
                "insert into public.drivers (driver_id, first_name, phone, document_number, hired_at, updated_at) "
                "values (%s, 'Malo', %s, %s, %s, %s)",
                (driver_id, f"98{next_id:07d}", f"6{next_id:07d}",
                 value if column == "hired_at" else "2026-03-01 00:00+00",
                 value if column == "updated_at" else "2026-03-01 00:00+00"),
            )
            bad_drivers[driver_id] = column
            next_id += 1
        pg.execute(
            "insert into public.milestone_claims values (%s, 'D-GOOD', 1, %s, 'approved')", (f"C-{next_id}", value)
        )
        next_id += 1
    for value in HOSTILE_DATES:
        pg.execute("insert into public.driver_daily_trips values ('D-GOOD', %s, 7)", (value,))
    return {"good": good, "bad_leads": bad_leads, "bad_drivers": bad_drivers}


def test_hostile_timestamps_never_stop_a_run_and_every_reader_answers(pg, engine, tmp_path):
    data = _arrange_hostile(pg)
    pipeline = ReconcileCabinetLeadsPipeline(engine)
    first = pipeline.run_reconcile(anchor=ANCHOR)
    second = pipeline.run_reconcile(anchor=ANCHOR)

    assert first["errors"] == len(data["bad_leads"]) + len(data["bad_drivers"])
    assert second["errors"] == 0 and second["newly_linked"] == 0  # nothing left to redo
    for lead_id in data["good"]:
        assert link_of(pg, "module_ct_cabinet_leads", lead_id) is not None, lead_id
    for lead_id, column in data["bad_leads"].items():
        reason, evidence = unmatched_of(pg, lead_id)
        assert reason == "INVALID_DATA" and column in evidence["invalid"], (lead_id, evidence)
        assert link_of(pg, "module_ct_cabinet_leads", lead_id) is None
    for driver_id, column in data["bad_drivers"].items():
        reason, evidence = unmatched_of(pg, driver_id, table="drivers")
        assert reason == "INVALID_DATA" and column in evidence["invalid"], (driver_id, evidence)

    # the good lead's trips count (hostile trip dates never fall in a window); its claim counts
    state = pg.execute("select limbo_stage, trips_14d from ops.v_cabinet_leads_limbo where lead_id = 1").fetchone()
    assert state == ("OK", 3)
    clamped = pg.execute(
        "select count(*) from ops.v_cabinet_leads_limbo where lead_date is null and limbo_stage = 'NO_IDENTITY'"
    ).fetchone()[0]
    assert clamped == sum(1 for c in data["bad_leads"].values() if c == "lead_created_at")

    with engine.connect() as conn:
        distribution = funnel.limbo_distribution(conn, recent_days=30)
        audit = funnel.weekly_audit(conn, weeks=520)
        page = report.render_html(report.collect(conn))
    assert sum(r.lead_count for r in distribution) == 10 + len(data["bad_leads"])
    assert all(row["week_start"] is not None for row in audit)
    assert sum(row["leads_total"] for row in audit) == 10 + sum(
        1 for c in data["bad_leads"].values() if c != "lead_created_at")
    assert "<svg" in page

    client = TestClient(load_plugin_module().create_app(get_conn=engine.connect, require_login=False))
    for lead_id in [1, *data["bad_leads"]]:
        answer = client.get("/", params={"q": str(lead_id)})
        assert answer.status_code == 200 and f"lead {lead_id} (" in answer.text
        found = explain.explain_lead(pg, lead_id)
        text = explain.format_explanation(found)
        json.loads(explain.to_json(found))
        if data["bad_leads"].get(lead_id) == "lead_created_at":
            assert "not a representable timestamp" in text
    assert client.get("/").status_code == 200


def test_over_long_fields_are_refused_before_any_work(pg, engine):
    add_lead(pg, 1, phone="961000001", first="x" * 1_000_000, last="y" * 600)
    add_lead(pg, 2, phone="961000002", doc="1" * 1_000_000)
    add_lead(pg, 3, phone="961000003")
    stats = ReconcileCabinetLeadsPipeline(engine).run_reconcile(anchor=ANCHOR)

    assert stats["errors"] == 2 and stats["newly_linked"] == 1
    assert "first_name is 1000000 characters long" in unmatched_of(pg, 1)[1]["invalid"]
    assert "document_number is 1000000 characters long" in unmatched_of(pg, 2)[1]["invalid"]
    longest = pg.execute(
        "select max(greatest(length(name_folded), length(given_name), length(coalesce(invalid_reason, '')), "
        "length(problems::text))) from canon.record_keys"
    ).fetchone()[0]
    assert longest <= MAX_FIELD_LENGTH
    assert pg.execute("select max(length(evidence::text)) from canon.identity_unmatched").fetchone()[0] < 2000


@pytest.mark.parametrize(
    ("column", "value"),
    [("phone", "951847362"), ("doc", "47382916"), ("license", "K47382916")],
    ids=["phone", "doc", "license"],
)
def test_hot_key_shared_by_strangers_links_nobody(pg, engine, column, value):
    """A value no list knows, typed by 300 unrelated people (other names, own or no DOC), is quarantined."""
    for i in range(1, 301):
        keys = {column: value}
        if column != "doc" and i % 2:
            keys["doc"] = f"7{i:07d}"  # half of them give their own DNI too
        add_lead(pg, i, first=f"Persona{i}", last=f"Apellido{i}", **keys)
    stats = ReconcileCabinetLeadsPipeline(engine, batch_size=100).run_reconcile(anchor=ANCHOR)

    key_type = {"phone": "PHONE", "doc": "DOC", "license": "LICENSE"}[column]
    normalised = {"phone": normalize_phone, "doc": normalize_doc, "license": normalize_license}[column](value)
    assert pg.execute("select count(*) from canon.person_keys where key_type = %s and key_value = %s",
                      (key_type, normalised)).fetchone()[0] == 0
    through = pg.execute(
        "select count(*) from canon.identity_links where evidence -> 'matched_keys' ->> %s = %s",
        (key_type, normalised),
    ).fetchone()[0]
    assert through == 0
    hot = pg.execute(
        "select count(*), min((evidence -> 'hot_keys' -> %s ->> 'records')::int) from canon.identity_unmatched "
        "where reason_code = 'AMBIGUOUS' and evidence ->> 'why' like 'hot key%%'",
        (key_type,),
    ).fetchone()
    only_key = 300 if column == "doc" else 150  # leads without a DOC of their own
    assert hot[0] == only_key and hot[1] > 5
    assert stats["newly_linked"] == 300 - only_key  # the others link by their own DOC, never by the hot value
    text = explain.format_explanation(explain.explain_lead(pg, 2))
    assert "hot key" in text


def test_relatives_sharing_a_phone_are_not_a_hot_key(pg, engine):
    for i, first in enumerate(("Juan", "Rosa", "Luis"), start=1):
        add_lead(pg, i, phone="951847362", doc=f"7{i:07d}", first=first)
    add_lead(pg, 4, phone="951847362", first="Juan")  # Juan again, phone only: links to Juan's person
    ReconcileCabinetLeadsPipeline(engine).run_reconcile(anchor=ANCHOR)
    assert link_of(pg, "module_ct_cabinet_leads", 4)[1] == "MATCH_PHONE"
    assert pg.execute("select count(*) from canon.identity_unmatched where evidence ? 'hot_keys'").fetchone()[0] == 0


def test_pages_stay_bounded_whatever_the_data(pg, engine):
    """A phone shared by 20,000 leads, a person with 3,000 keys, a lead with megabyte fields."""
    pg.execute(
        "insert into public.module_ct_cabinet_leads (id, lead_created_at, first_name, phone) "
        "select g, '2026-03-10 15:00+00', repeat('n', 400), '951847362' from generate_series(1, 20000) as g"
    )
    pg.execute(
        "insert into canon.record_keys (source_table, source_pk, source_updated_at, phone) "
        "select 'module_ct_cabinet_leads', g::text, now(), '+51951847362' from generate_series(1, 20000) as g"
    )
    person = pg.execute("insert into canon.identity_registry default values returning person_key").fetchone()[0]
    pg.execute(
        "insert into canon.person_keys (key_type, key_value, person_key, source_table, source_pk) "
        "select 'LICENSE', 'L' || g, %s, 'module_ct_cabinet_leads', '1' from generate_series(1, 3000) as g",
        (person,),
    )
    pg.execute(
        "insert into canon.identity_links (source_table, source_pk, person_key, match_rule, evidence) "
        "select 'module_ct_cabinet_leads', g::text, %s, 'MATCH_LICENSE', '{}' from generate_series(1, 20000) as g",
        (person,),
    )
    pg.execute(
        "update public.module_ct_cabinet_leads set first_name = repeat('x', 1000000), "
        "external_id = repeat('e', 2000) where id = 1"
    )
    text = explain.format_explanation(explain.explain_lead(pg, 1))
    assert len(text) < 10_000 and "... and 2980 more" in text

    client = TestClient(load_plugin_module().create_app(get_conn=engine.connect, require_login=False))
    page = client.get("/", params={"q": "951 847 362"})
    assert page.status_code == 200
    assert len(page.content) < 200_000, len(page.content)
    assert f"the first {report.SEARCH_ROWS} of 20000 leads" in page.text


def test_common_fake_values_typed_by_300_people_link_nobody(pg, engine):
    """The values of the fuzz run (phone 987654321, DNI 12345678, licence 987654321) are placeholders."""
    for i in range(1, 301):
        add_lead(pg, i, phone="987 654 321", doc="Nro. 12345678", license="987654321",
                 first=f"Persona{i}", last=f"Apellido{i}")
    stats = ReconcileCabinetLeadsPipeline(engine).run_reconcile(anchor=ANCHOR)
    assert stats["newly_linked"] == 0 and stats["still_no_candidates"] == 300
    assert pg.execute("select count(*) from canon.person_keys").fetchone()[0] == 0
    problems = unmatched_of(pg, 1)[1]["problems"]
    assert {"phone: placeholder value", "doc: placeholder value", "license: placeholder value"} <= set(problems)
