"""One test per C0 rule and per reason code, on small hand-built data, through the real pipeline."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from cabinet_leads import ReconcileCabinetLeadsPipeline

ANCHOR = dt.datetime(2026, 3, 20, 12, 0, tzinfo=dt.UTC)


def add_lead(pg, lead_id, *, phone=None, doc=None, license=None, first="Juan", last="Quispe Mamani",
             created="2026-03-10 15:00+00", updated="2026-03-10 15:05+00"):
    pg.execute(
        "insert into public.module_ct_cabinet_leads (id, external_id, lead_created_at, first_name, last_name, "
        "phone, document_number, license_number, updated_at) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (lead_id, f"CAB-{lead_id}", created, first, last, phone, doc, license, updated),
    )


def add_driver(pg, driver_id, *, phone=None, doc=None, license=None, first="Juan", last="Quispe Mamani",
               hired="2026-03-01 00:00+00"):
    pg.execute(
        "insert into public.drivers (driver_id, first_name, last_name, phone, document_number, license_number, "
        "hired_at, updated_at) values (%s, %s, %s, %s, %s, %s, %s, '2026-03-01 00:00+00')",
        (driver_id, first, last, phone, doc, license, hired),
    )


def run(engine, **kw) -> dict:
    return ReconcileCabinetLeadsPipeline(engine).run_reconcile(anchor=ANCHOR, **kw)


def link_of(pg, table, pk):
    return pg.execute(
        "select person_key, match_rule, evidence from canon.identity_links where source_table = %s and source_pk = %s",
        (table, str(pk)),
    ).fetchone()


def unmatched_of(pg, pk, table="module_ct_cabinet_leads"):
    return pg.execute(
        "select reason_code, evidence from canon.identity_unmatched where source_table = %s and source_pk = %s",
        (table, str(pk)),
    ).fetchone()


def persons(pg) -> int:
    return pg.execute("select count(*) from canon.identity_registry").fetchone()[0]


def test_c04_new_identity_and_c05_keys_attached(pg, engine):
    add_lead(pg, 1, phone="+51 984 217 563", doc="45.873.216", license="q-4587321")
    stats = run(engine)
    person, rule, evidence = link_of(pg, "module_ct_cabinet_leads", 1)
    assert rule == "NEW_IDENTITY"
    assert evidence["new_keys"] == {"PHONE": "+51984217563", "DOC": "DNI:45873216", "LICENSE": "Q4587321"}
    assert evidence["run_id"] == stats["run_id"]
    keys = pg.execute("select key_type, key_value from canon.person_keys where person_key = %s order by 1",
                      (person,)).fetchall()
    assert keys == [("DOC", "DNI:45873216"), ("LICENSE", "Q4587321"), ("PHONE", "+51984217563")]
    assert stats["newly_linked"] == 1 and stats["new_persons"] == 1


def test_c03_link_on_one_strong_key_any_format_and_c05_attach(pg, engine):
    add_driver(pg, "D1", phone="984217563", doc="45873216")
    add_lead(pg, 1, phone="0051984217563", license="Q3216458")  # same phone, other format, plus a licence
    run(engine)
    driver_person = link_of(pg, "drivers", "D1")[0]
    person, rule, evidence = link_of(pg, "module_ct_cabinet_leads", 1)
    assert person == driver_person and rule == "MATCH_PHONE"
    assert evidence["matched_keys"] == {"PHONE": "+51984217563"}
    assert evidence["attached_keys"] == {"LICENSE": "Q3216458"}  # C0.5
    owner = pg.execute("select person_key from canon.person_keys where key_value = 'Q3216458'").fetchone()[0]
    assert owner == person
    assert persons(pg) == 1


def test_names_and_plates_never_link_on_their_own(pg, engine):
    add_driver(pg, "D1", phone="984217563", doc="45873216", first="Rosa", last="Flores Peña")
    pg.execute("update public.drivers set plate = 'A1B-234'")
    add_lead(pg, 1, first="Rosa", last="Flores Peña")  # same name, no strong key
    pg.execute("update public.module_ct_cabinet_leads set plate = 'A1B234'")
    stats = run(engine)
    assert link_of(pg, "module_ct_cabinet_leads", 1) is None
    reason, evidence = unmatched_of(pg, 1)
    assert reason == "NO_CANDIDATES" and evidence["record_keys"] == {}
    assert stats["still_no_candidates"] == 1


def test_c03_keys_of_two_persons_are_ambiguous(pg, engine):
    add_driver(pg, "D1", phone="984217563", doc="11111118")
    add_driver(pg, "D2", phone="951736284", doc="22222228")
    add_lead(pg, 1, phone="984217563", doc="22222228")  # phone of D1's person, DNI of D2's person
    before = persons(pg)
    stats = run(engine)
    assert link_of(pg, "module_ct_cabinet_leads", 1) is None
    reason, evidence = unmatched_of(pg, 1)
    assert reason == "AMBIGUOUS"
    named = {c["person_key"]: c["matched_keys"] for c in evidence["candidates"]}
    assert named == {
        link_of(pg, "drivers", "D1")[0]: {"PHONE": "+51984217563"},
        link_of(pg, "drivers", "D2")[0]: {"DOC": "DNI:22222228"},
    }
    assert persons(pg) == before + 2  # the two drivers' persons, no new person for the lead
    assert stats["conflicts"] == 1


def test_c03_doc_conflict_is_ambiguous(pg, engine):
    add_driver(pg, "D1", phone="984217563", doc="11111118", first="Juan")
    add_lead(pg, 1, phone="984217563", doc="33333338", first="Juan")  # same phone, another DNI
    run(engine)
    assert link_of(pg, "module_ct_cabinet_leads", 1) is None
    reason, evidence = unmatched_of(pg, 1)
    assert reason == "AMBIGUOUS"
    assert evidence["conflicting_keys"]["DOC"] == {"record": "DNI:33333338", "person": "DNI:11111118"}
    assert [c["matched_keys"] for c in evidence["candidates"]] == [{"PHONE": "+51984217563"}]
    # the conflicting DNI was not given to anybody
    assert pg.execute("select count(*) from canon.person_keys where key_value = 'DNI:33333338'").fetchone()[0] == 0


def test_shared_family_phone_with_other_given_name_is_not_linked(pg, engine):
    add_driver(pg, "D1", phone="984217563", doc="11111118", first="Juan", last="Quispe Mamani")
    add_lead(pg, 1, phone="984 217 563", first="Luis Alberto", last="Quispe Flores")  # relative, no DNI given
    add_lead(pg, 2, phone="984-217-563", first="JUAN", last="Mamani Quispe")  # the driver himself, surnames swapped
    run(engine)
    assert link_of(pg, "module_ct_cabinet_leads", 1) is None
    assert unmatched_of(pg, 1)[0] == "AMBIGUOUS"
    assert link_of(pg, "module_ct_cabinet_leads", 2)[0] == link_of(pg, "drivers", "D1")[0]


def test_c04_no_valid_key_is_no_candidates(pg, engine):
    # a DNI typed into the phone field, a landline, placeholders: nothing strong
    add_lead(pg, 1, phone="45873216", doc="00000000")
    add_lead(pg, 2, phone="(01) 4567890", doc="", license="")
    stats = run(engine)
    for lead in (1, 2):
        assert link_of(pg, "module_ct_cabinet_leads", lead) is None
        assert unmatched_of(pg, lead)[0] == "NO_CANDIDATES"
    assert unmatched_of(pg, 1)[1]["problems"], "the rejected fields are named in the evidence"
    assert stats["still_no_candidates"] == 2 and persons(pg) == 0


def test_invalid_data_is_an_error_and_the_batch_goes_on(pg, engine):
    add_lead(pg, 1, phone="984217563", first="x" * 3000)
    add_lead(pg, 2, phone="951736284", created="2031-01-01 00:00+00", updated="2031-01-01 00:00+00")
    add_lead(pg, 3, phone="998877665")
    stats = run(engine)
    assert stats["errors"] == 2
    for lead in (1, 2):
        reason, evidence = unmatched_of(pg, lead)
        assert reason == "INVALID_DATA" and evidence["invalid"]
    assert link_of(pg, "module_ct_cabinet_leads", 3)[1] == "NEW_IDENTITY"


def test_duplicate_sign_ups_in_one_batch_make_one_person(pg, engine):
    add_lead(pg, 1, phone="984217563")
    add_lead(pg, 2, phone="+51984217563", doc="44444448")
    add_lead(pg, 3, doc="44.444.448", license="B99887766")
    run(engine)
    people = {link_of(pg, "module_ct_cabinet_leads", i)[0] for i in (1, 2, 3)}
    assert len(people) == 1 and persons(pg) == 1
    assert [link_of(pg, "module_ct_cabinet_leads", i)[1] for i in (1, 2, 3)] == [
        "NEW_IDENTITY", "MATCH_PHONE", "MATCH_DOC"]


def test_c01_existing_links_are_never_rewritten(pg, engine):
    add_lead(pg, 1, phone="984217563")
    run(engine)
    first = link_of(pg, "module_ct_cabinet_leads", 1)
    # upstream changes the lead to another person's data: the link stays, the job does not fail
    add_driver(pg, "D9", phone="955123789", doc="55555558")
    pg.execute("update public.module_ct_cabinet_leads set phone = '955123789', updated_at = now() where id = 1")
    run(engine)
    assert link_of(pg, "module_ct_cabinet_leads", 1) == first
    with pytest.raises(psycopg.errors.RaiseException):
        pg.execute("update canon.identity_links set person_key = person_key")


def test_c02_a_key_belongs_to_one_person_across_batches(pg, engine):
    for i in range(1, 126):  # three batches of the smallest batch size, each with both phones
        add_lead(pg, i, phone="984217563" if i % 2 else "951736284", doc=None)
    ReconcileCabinetLeadsPipeline(engine, batch_size=50).run_reconcile(anchor=ANCHOR)
    owners = pg.execute("select key_value, count(distinct person_key) from canon.person_keys group by 1").fetchall()
    assert all(n == 1 for _, n in owners) and len(owners) == 2
    assert persons(pg) == 2


def test_driver_mapping_most_trips_across_accounts(pg, engine):
    add_driver(pg, "D1", phone="984217563", doc="45873216", hired="2026-01-01 00:00+00")
    add_driver(pg, "D2", doc="45873216", license="Q1112223", hired="2026-02-01 00:00+00")
    pg.execute("insert into public.driver_daily_trips values ('D1', '2026-03-11', 1), ('D2', '2026-03-12', 6)")
    add_lead(pg, 1, phone="984217563")
    stats = run(engine)
    row = pg.execute("select limbo_stage, driver_id, trips_14d from ops.v_cabinet_leads_limbo").fetchone()
    assert row == ("TRIPS_NO_CLAIM", "D2", 7)
    assert stats["newly_driver_mapped"] == 1
    worklist = pg.execute("select milestone, driver_id, reached_on from ops.milestone_claim_worklist order by 1").fetchall()
    assert worklist == [(1, "D2", dt.date(2026, 3, 11)), (5, "D2", dt.date(2026, 3, 12))]
