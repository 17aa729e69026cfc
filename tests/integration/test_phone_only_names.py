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
