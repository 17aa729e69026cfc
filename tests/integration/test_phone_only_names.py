"""No lead linked to the wrong person (issue 15, C0.3): a differing LICENSE is a conflict, and a link
through the phone alone needs the names to agree with one of the person's linked records."""

from __future__ import annotations

import pytest

from tests.integration.test_identity_rules import add_driver, add_lead, link_of, run, unmatched_of

PHONE = "951736284"


def _ambiguous_why(pg, lead_id) -> str:
    reason, evidence = unmatched_of(pg, lead_id)
    assert reason == "AMBIGUOUS", evidence
    return evidence["why"]


@pytest.mark.parametrize(
    ("lead_first", "lead_last", "why"),
    [
        (None, "Quispe Mamani", "given name missing"),  # a nameless lead
        ("Juan", None, "surname missing"),
        ("Juan", "Rojas Flores", "paternal surname differs"),  # same given name, another family
        ("Yony Anthony", "Quispe Mamani", "first given name differs"),
        ("Juana", "Quispe Mamani", "first given name differs"),  # a sister
    ],
)
def test_phone_only_match_needs_agreeing_names(pg, engine, lead_first, lead_last, why):
    add_driver(pg, "D1", phone=PHONE, doc="45873216", first="Juan", last="Quispe Mamani")
    add_lead(pg, 1, phone=PHONE, first=lead_first, last=lead_last)
    run(engine)
    assert link_of(pg, "module_ct_cabinet_leads", 1) is None
    assert _ambiguous_why(pg, 1).endswith(why)


@pytest.mark.parametrize(
    ("lead_first", "lead_last"),
    [("JUAN", "Mamani Quispe"), ("Jaun", "Quispe"), ("juan carlos", "Quipse Mamani"), ("Juán", "QUISPE")],
    ids=["swapped-surnames", "given-name-typo", "surname-typo", "accents"],
)
def test_phone_only_match_with_agreeing_names_links(pg, engine, lead_first, lead_last):
    add_driver(pg, "D1", phone=PHONE, doc="45873216", first="Juan", last="Quispe Mamani")
    add_lead(pg, 1, phone=PHONE, first=lead_first, last=lead_last)
    run(engine)
    assert link_of(pg, "module_ct_cabinet_leads", 1)[1] == "MATCH_PHONE"


def test_person_created_by_a_nameless_record_accepts_no_phone_only_link(pg, engine):
    add_driver(pg, "D1", phone=PHONE, doc="45873216", first=None, last=None)
    add_lead(pg, 1, phone=PHONE, first="Juan", last="Quispe Mamani")
    run(engine)
    assert _ambiguous_why(pg, 1).endswith("given name missing")


def test_names_of_every_linked_record_count_not_only_the_creator(pg, engine):
    add_driver(pg, "D1", phone=PHONE, doc="45873216", first=None, last=None)  # nameless creator
    add_lead(pg, 1, doc="45873216", first="Juan", last="Quispe Mamani")  # linked by its DNI, named
    run(engine)
    add_lead(pg, 2, phone=PHONE, first="Juan", last="Quispe", created="2026-03-11 15:00+00",
             updated="2026-03-11 15:05+00")
    run(engine)
    assert link_of(pg, "module_ct_cabinet_leads", 2)[1] == "MATCH_PHONE"


def test_a_differing_licence_is_a_conflict(pg, engine):
    add_driver(pg, "D1", phone=PHONE, license="Q45873216", first="Juan", last="Quispe Mamani")
    add_lead(pg, 1, phone=PHONE, license="K41890582", first="Juan", last="Quispe Mamani")
    run(engine)
    assert link_of(pg, "module_ct_cabinet_leads", 1) is None
    reason, evidence = unmatched_of(pg, 1)
    assert reason == "AMBIGUOUS" and evidence["why"] == "LICENSE differs from the candidate person's LICENSE"
    assert evidence["conflicting_keys"]["LICENSE"] == {"record": "K41890582", "person": ["Q45873216"]}


def test_a_doc_agreeing_needs_no_names(pg, engine):
    add_driver(pg, "D1", phone=PHONE, doc="45873216", first="Juan", last="Quispe Mamani")
    add_lead(pg, 1, phone=PHONE, doc="45873216", first=None, last=None)
    run(engine)
    assert link_of(pg, "module_ct_cabinet_leads", 1)[1] == "MATCH_DOC_PHONE"


def _linked_then_edited(pg, engine, *, bump: bool, **edit) -> tuple[int, int]:
    add_driver(pg, "D1", phone="951736284", doc="45873216", first="Juan", last="Quispe Mamani")
    add_driver(pg, "D2", phone="984217563", doc="41736285", first="Rosa", last="Flores Peña")
    add_lead(pg, 1, phone="951736284", doc="45873216", first="Juan", last="Quispe Mamani")
    run(engine)
    juan, rosa = (link_of(pg, "drivers", d)[0] for d in ("D1", "D2"))
    sets = ", ".join(f"{k} = %({k})s" for k in edit) + (", updated_at = updated_at + interval '1 day'" if bump else "")
    pg.execute(f"update public.module_ct_cabinet_leads set {sets} where id = 1", edit)  # noqa: S608
    return juan, rosa


@pytest.mark.parametrize("bump", [True, False], ids=["updated_at-bumped", "not-bumped-caught-by-full"])
def test_an_edit_pointing_a_linked_lead_to_another_person_is_a_link_conflict(pg, engine, bump):
    from cabinet_leads import ReconcileCabinetLeadsPipeline, explain
    from tests.integration.test_identity_rules import ANCHOR

    juan, rosa = _linked_then_edited(pg, engine, bump=bump, phone="984217563")
    stats = ReconcileCabinetLeadsPipeline(engine).run_reconcile(anchor=ANCHOR)
    if not bump:
        assert stats["link_conflicts"] == 0  # updated_at unchanged: not re-read by a plain run
        stats = ReconcileCabinetLeadsPipeline(engine, full=True).run_reconcile(anchor=ANCHOR)
    assert stats["link_conflicts"] == 1
    assert link_of(pg, "module_ct_cabinet_leads", 1)[0] == juan  # C0.1: the link stays
    reason, evidence = unmatched_of(pg, 1)
    assert reason == "LINK_CONFLICT" and evidence["linked_person"] == juan
    assert evidence["candidates"] == [{"person_key": rosa, "matched_keys": {"PHONE": "+51984217563"}}]
    text = explain.format_explanation(explain.explain_lead(pg, 1))
    assert "CONFLICT" in text and f"linked to person {juan}" in text and f"person {rosa}" in text


def test_a_linked_lead_whose_doc_now_differs_is_a_link_conflict(pg, engine):
    juan, _ = _linked_then_edited(pg, engine, bump=True, document_number="47382916")
    run(engine)
    reason, evidence = unmatched_of(pg, 1)
    assert reason == "LINK_CONFLICT"
    assert evidence["conflicting_keys"] == {"DOC": {"record": "DNI:47382916", "person": "DNI:45873216"}}
    assert link_of(pg, "module_ct_cabinet_leads", 1)[0] == juan
