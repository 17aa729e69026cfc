"""Manual resolution (issue 11): decisions, refusals, the job leaving decisions alone, the queue.
Real PostgreSQL, hand-built data, the real pipeline."""

from __future__ import annotations

import json
import threading

import psycopg
import pytest

from cabinet_leads import ReconcileCabinetLeadsPipeline, db, explain
from cabinet_leads.review import DecisionRefused, Reviewer, review_queue
from tests.conftest import ensure_login, with_user
from tests.integration.test_cli import run_cli
from tests.integration.test_identity_rules import ANCHOR, add_driver, add_lead, link_of

OPERATOR_LOGIN = "cabinet_leads_test_operator"
DOC_A, DOC_B = "DNI:45873216", "DNI:41234567"


def run(engine) -> dict:
    return ReconcileCabinetLeadsPipeline(engine).run_reconcile(anchor=ANCHOR)


def person_of_driver(pg, driver_id: str) -> int:
    return link_of(pg, "drivers", driver_id)[0]


@pytest.fixture
def world(pg, engine):
    """Two driver persons (A with trips and a claim in March, B without) and leads of every kind:
      1  AMBIGUOUS: its PHONE is A's, its DOC is B's (money at stake: A has trips in its window)
      2  AMBIGUOUS: only B's PHONE matches and the names differ; older than 1, nothing at stake
      3  NO_CANDIDATES: A's DNI typed into the phone field (oldest)
      4  NO_CANDIDATES: a landline
      5  NEW_IDENTITY (linked)
      6  NO_CANDIDATES: a placeholder phone (spam)
      7, 8 linked to A by its DOC; 7 brought a LICENSE that 8 holds too
    """
    add_driver(pg, "D1", phone="984217563", doc="45873216")
    add_driver(pg, "D2", phone="987651432", doc="41234567", first="Rosa", last="Huaman Torres")
    pg.execute("insert into public.driver_daily_trips values ('D1', '2026-03-11', 3), ('D1', '2026-02-01', 9)")
    pg.execute("insert into public.milestone_claims values ('C1', 'D1', 1, '2026-03-12 10:00+00', 'approved')")
    add_lead(pg, 1, phone="984217563", doc="41234567", created="2026-03-10 15:00+00")
    add_lead(pg, 2, phone="987651432", first="Pedro", last="Rojas Diaz", created="2026-03-01 15:00+00")
    add_lead(pg, 3, phone="45873216", created="2026-02-20 15:00+00")
    add_lead(pg, 4, phone="(01) 421-5678", created="2026-03-05 15:00+00")
    add_lead(pg, 5, doc="47651234", phone="912846375", first="Ana", last="Flores Rios", created="2026-03-06 15:00+00")
    add_lead(pg, 6, phone="999999999", first="Test", last="Test", created="2026-03-07 15:00+00")
    add_lead(pg, 7, doc="45873216", license="Q5829174", created="2026-03-08 15:00+00")
    add_lead(pg, 8, doc="45873216", license="Q5829174", created="2026-03-09 15:00+00")
    run(engine)
    a, b = person_of_driver(pg, "D1"), person_of_driver(pg, "D2")
    reasons = dict(pg.execute("select source_pk::int, reason_code from canon.identity_unmatched"))
    assert reasons == {1: "AMBIGUOUS", 2: "AMBIGUOUS", 3: "NO_CANDIDATES", 4: "NO_CANDIDATES",
                       6: "NO_CANDIDATES"}
    assert link_of(pg, "module_ct_cabinet_leads", 5)[1] == "NEW_IDENTITY"
    assert link_of(pg, "module_ct_cabinet_leads", 7)[0] == link_of(pg, "module_ct_cabinet_leads", 8)[0] == a
    return {"a": a, "b": b, "reviewer": Reviewer(engine), "engine": engine}


def verified(engine) -> None:
    """The funnel state followed the decision: kept state equals the live views."""
    total, diffs = ReconcileCabinetLeadsPipeline(engine).verify()
    assert total == 0, diffs


def stage(pg, lead: int) -> tuple:
    return pg.execute("select v.limbo_stage, v.person_key, v.dismissed, s.limbo_stage from ops.v_cabinet_leads_limbo "
                      "as v left join ops.lead_state as s using (lead_id) where v.lead_id = %s", (lead,)).fetchone()


def decisions(pg) -> list[tuple]:
    return pg.execute("select lead_id, decision, person_before, person_after, decided_by, why, db_user "
                      "from ops.manual_decisions order by decision_id").fetchall()


def checksum(pg) -> tuple:
    return pg.execute(
        "select (select md5(string_agg(format('%s|%s|%s|%s|%s', source_table, source_pk, person_key, match_rule, "
        "evidence), ',' order by link_id)) from canon.identity_links), "
        "(select md5(string_agg(format('%s|%s|%s', key_type, key_value, person_key), ',' order by key_type, "
        "key_value)) from canon.person_keys), "
        "(select md5(string_agg(m::text, ',' order by decision_id)) from ops.manual_decisions as m), "
        "(select md5(string_agg(s::text, ',' order by lead_id)) from ops.manual_lead_state as s)"
    ).fetchone()


# ---------------------------------------------------------------------- each decision


def test_link_refuses_a_doc_conflict_and_links_when_the_doc_is_declared_wrong(pg, world):
    r, a, b = world["reviewer"], world["a"], world["b"]
    with pytest.raises(DecisionRefused, match=f"DOC {DOC_B} differs from person {a}'s DOC {DOC_A}.*--doc-is-wrong"):
        r.link(1, a, "ana", "phone and name agree")
    assert link_of(pg, "module_ct_cabinet_leads", 1) is None and decisions(pg) == []

    out = r.link(1, a, "ana", "phone and name agree; the DOC is B's, a typo", doc_is_wrong=True)
    assert out.changed and out.person_after == a and out.keys_attached == {}
    assert out.keys_not_attached["DOC"]["value"] == DOC_B and "declared wrong" in out.keys_not_attached["DOC"]["why"]
    person, rule, evidence = link_of(pg, "module_ct_cabinet_leads", 1)
    assert (person, rule) == (a, "MANUAL_LINK")
    assert evidence["matched_keys"] == {"PHONE": "+51984217563"} and evidence["doc_is_wrong"] is True
    assert evidence["decision_id"] == out.decision_id and evidence["decided_by"] == "ana"
    assert pg.execute("select person_key from canon.person_keys where key_value = %s", (DOC_B,)).fetchone() == (b,)
    owner = pg.execute("select current_user").fetchone()[0]
    assert decisions(pg) == [(1, "link", None, a, "ana", "phone and name agree; the DOC is B's, a typo", owner)]
    row = pg.execute("select keys_not_attached, doc_is_wrong from ops.manual_decisions").fetchone()
    assert row[0]["DOC"]["value"] == DOC_B and row[1] is True
    # the funnel follows in the same transaction: A has a driver, 3 trips, milestone 1 claimed
    assert stage(pg, 1) == ("OK", a, False, "OK")
    verified(world["engine"])

    again = r.link(1, a, "ana", "again", doc_is_wrong=True)
    assert not again.changed and "already linked" in again.message and again.decision_id is None
    assert len(decisions(pg)) == 1
    with pytest.raises(DecisionRefused, match=f"lead 1 is already linked to person {a} \\(MANUAL_LINK\\)"):
        r.link(1, b, "ana", "no, B")
    with pytest.raises(DecisionRefused, match="already linked"):
        r.new_person(1, "ana", "no")
    # explain shows the decision, who and why
    with psycopg.connect(db.libpq_url(pg.info.dsn)) as conn:
        x = explain.explain_lead(conn, 1)
    text = explain.format_explanation(x)
    assert f"manual decision {out.decision_id}: link to person {a} by ana" in text
    assert "the DOC is B's, a typo" in text and f"DOC={DOC_B} (declared wrong" in text


def test_link_attaches_free_keys_only(pg, world):
    """The lead's current row is what counts; free keys attach (C0.5), a key of another person never
    does (C0.2: the decision and the link's evidence say so)."""
    r, a, b = world["reviewer"], world["a"], world["b"]
    # edited upstream since the job read it: its DOC is now A's, and B has another DOC
    pg.execute("update public.module_ct_cabinet_leads set document_number = '45873216', "
               "updated_at = '2026-03-15 00:00+00' where id = 2")
    with pytest.raises(DecisionRefused, match=f"lead 2's DOC {DOC_A} differs from person {b}'s DOC {DOC_B}"):
        r.link(2, b, "luis", "same person")
    pg.execute("update public.module_ct_cabinet_leads set document_number = null, license_number = 'Z4861537', "
               "updated_at = '2026-03-16 00:00+00' where id = 2")
    out = r.link(2, b, "luis", "called the driver")
    assert out.keys_attached == {"LICENSE": "Z4861537"} and out.keys_not_attached == {}
    assert link_of(pg, "module_ct_cabinet_leads", 2)[2]["matched_keys"] == {"PHONE": "+51987651432"}
    assert pg.execute("select person_key, source_table, source_pk from canon.person_keys "
                      "where key_value = 'Z4861537'").fetchone() == (b, "module_ct_cabinet_leads", "2")

    pg.execute("update public.module_ct_cabinet_leads set phone = '984217563', updated_at = now() where id = 4")
    out = r.link(4, b, "luis", "A's phone, but it is B's relative")
    assert out.changed and out.keys_attached == {}
    assert out.keys_not_attached["PHONE"] == {"value": "+51984217563", "owner": a,
                                              "why": f"owned by person {a} (C0.2: a key belongs to one person)"}
    assert "not attached: PHONE=+51984217563 (owned by person" in out.message
    assert link_of(pg, "module_ct_cabinet_leads", 4)[2]["not_attached_keys"]["PHONE"]["owner"] == a
    assert pg.execute("select person_key from canon.person_keys where key_value = '+51984217563'").fetchone() == (a,)
    verified(world["engine"])


def test_new_person_keeps_shared_keys_with_their_owner(pg, world):
    r, b = world["reviewer"], world["b"]
    out = r.new_person(2, "eva", "Pedro is Rosa's son: same family phone")
    person = out.person_after
    assert out.changed and person not in (world["a"], b)
    assert out.keys_attached == {} and out.keys_not_attached["PHONE"] == {
        "value": "+51987651432", "owner": b, "why": f"owned by person {b} (C0.2: a key belongs to one person)"}
    assert link_of(pg, "module_ct_cabinet_leads", 2)[:2] == (person, "MANUAL_NEW_PERSON")
    assert pg.execute("select name_folded from canon.identity_registry where person_key = %s",
                      (person,)).fetchone() == ("pedro rojas diaz",)
    assert stage(pg, 2) == ("NO_DRIVER", person, False, "NO_DRIVER")
    verified(world["engine"])
    again = r.new_person(2, "eva", "twice")
    assert not again.changed and again.person_after == person and "nothing changed" in again.message
    with pytest.raises(DecisionRefused, match="already linked"):
        r.new_person(5, "eva", "linked by the job")
    assert [d[1] for d in decisions(pg)] == ["new_person"]


def test_dismiss_shows_as_a_flag_and_stays_out_of_the_queue(pg, world):
    r = world["reviewer"]
    week = ("select limbo_no_identity, dismissed from ops.v_cabinet_14d_funnel_audit_weekly "
            "where week_start = '2026-03-02'")
    assert pg.execute(week).fetchone() == (2, 0)  # leads 4 and 6
    out = r.dismiss(6, "eva", "test sign-up")
    assert pg.execute(week).fetchone() == (2, 1)  # still without identity, now counted as dismissed
    assert out.changed and out.message == "lead 6 dismissed"
    assert stage(pg, 6) == ("NO_IDENTITY", None, True, "NO_IDENTITY")
    assert pg.execute("select count(*) from ops.v_cabinet_leads_limbo where dismissed").fetchone() == (1,)
    again = r.dismiss(6, "eva", "again")
    assert not again.changed and f"already dismissed (decision {out.decision_id}" in again.message
    with pytest.raises(DecisionRefused, match="lead 5 is already linked.*unlink it first"):
        r.dismiss(5, "eva", "looks fake")
    with pytest.raises(DecisionRefused, match="no lead with id 999"):
        r.dismiss(999, "eva", "x")
    with pytest.raises(DecisionRefused, match="--why must say something"):
        r.dismiss(4, "eva", "  ")
    _total, entries = review_queue(pg, 50)
    assert 6 not in [e["lead_id"] for e in entries]
    verified(world["engine"])


def test_unlink_is_audited_detaches_only_unneeded_keys_and_is_not_rematched(pg, world):
    r, a = world["reviewer"], world["a"]
    new_person = link_of(pg, "module_ct_cabinet_leads", 5)[0]
    out = r.unlink(5, "olga", "OPS-42: two people on one sign-up")
    assert out.changed and out.person_before == new_person and out.person_after is None
    assert out.keys_detached == {"DOC": "DNI:47651234", "PHONE": "+51912846375"}
    assert link_of(pg, "module_ct_cabinet_leads", 5) is None
    audit = pg.execute("select operation, reason, old_row ->> 'source_pk' from canon.identity_link_audit").fetchall()
    assert audit == [("DELETE", f"decision {out.decision_id}: unlink lead 5 by olga: OPS-42: two people on one "
                                "sign-up", "5")]
    assert pg.execute("select count(*) from canon.person_keys where person_key = %s", (new_person,)).fetchone() == (0,)
    assert stage(pg, 5) == ("NO_IDENTITY", None, False, "NO_IDENTITY")
    verified(world["engine"])
    with psycopg.connect(pg.info.dsn) as conn:
        text = explain.format_explanation(explain.explain_lead(conn, 5))
    assert (f"identity: not linked: unlinked from person {new_person} by hand (manual decision {out.decision_id}); "
            "the job leaves it to a reviewer") in text
    assert not r.unlink(5, "olga", "again").changed
    with pytest.raises(DecisionRefused, match="lead 3 is not linked: nothing to unlink"):
        r.unlink(3, "olga", "x")

    # lead 7 brought the LICENSE that lead 8 (same person) holds too: it stays with the person
    out7 = r.unlink(7, "olga", "wrong merge")
    assert out7.keys_detached == {} and out7.keys_not_attached == {
        "LICENSE": {"value": "Q5829174", "why": "still needed by module_ct_cabinet_leads 8"}}
    assert pg.execute("select person_key from canon.person_keys where key_value = 'Q5829174'").fetchone() == (a,)

    # the unlinked lead is in the queue with its former person; it can be decided again
    _total, entries = review_queue(pg, 50)
    e5 = next(e for e in entries if e["lead_id"] == 5)
    assert e5["reason_code"] == "UNLINKED" and e5["unlinked_from"] == new_person
    assert [c["person_key"] for c in e5["candidates"]] == [new_person]
    assert r.link(5, new_person, "olga", "it was right after all").changed
    assert link_of(pg, "module_ct_cabinet_leads", 5)[:2] == (new_person, "MANUAL_LINK")
    verified(world["engine"])


def test_unknown_person_and_lead_are_refused(world):
    r = world["reviewer"]
    with pytest.raises(DecisionRefused, match="no person with key 424242"):
        r.link(1, 424242, "x", "y")
    with pytest.raises(DecisionRefused, match="no lead with id 77"):
        r.link(77, world["a"], "x", "y")
    with pytest.raises(DecisionRefused, match="no lead with id 77"):
        r.unlink(77, "x", "y")


# ---------------------------------------------------------------------- the job leaves decisions alone


def test_the_job_never_overrides_a_manual_decision(pg, world):
    r, a = world["reviewer"], world["a"]
    r.link(1, a, "ana", "checked", doc_is_wrong=True)
    r.new_person(2, "ana", "a relative")
    r.dismiss(6, "ana", "spam")
    r.unlink(5, "ana", "wrong")
    # upstream edits that would make the job match the held leads at once
    pg.execute("update public.module_ct_cabinet_leads set phone = '984217563', updated_at = now() where id = 6")
    pg.execute("update public.module_ct_cabinet_leads set first_name = 'Anita', updated_at = now() where id = 5")
    pg.execute("update public.module_ct_cabinet_leads set first_name = 'Juanito', updated_at = now() where id = 1")
    before = checksum(pg)
    first, second = run(world["engine"]), run(world["engine"])
    assert checksum(pg) == before
    assert link_of(pg, "module_ct_cabinet_leads", 6) is None and link_of(pg, "module_ct_cabinet_leads", 5) is None
    assert first["newly_linked"] == second["newly_linked"] == 0
    assert stage(pg, 6)[2] is True
    verified(world["engine"])


# ---------------------------------------------------------------------- concurrency


def race(*calls) -> list:
    """Run the calls at once from threads; their outcomes or exceptions, in call order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def go(i, call):
        barrier.wait()
        try:
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 (collected for the assertions)
            results[i] = exc

    threads = [threading.Thread(target=go, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_concurrent_decisions_on_one_lead_exactly_one_wins(pg, world, db_url):
    a = world["a"]
    engines = [db.make_engine(db_url) for _ in range(2)]
    try:
        one, other = (Reviewer(e) for e in engines)
        results = race(lambda: one.link(1, a, "t1", "race", doc_is_wrong=True), lambda: other.new_person(1, "t2", "race"))
        won = [x for x in results if not isinstance(x, Exception)]
        lost = [x for x in results if isinstance(x, Exception)]
        assert len(won) == 1 and won[0].changed
        assert len(lost) == 1 and isinstance(lost[0], DecisionRefused) and "already linked" in str(lost[0])
        # the same decision twice at once: one makes it, the other says nothing changed
        results = race(lambda: one.dismiss(3, "t1", "spam"), lambda: other.dismiss(3, "t2", "spam"))
        assert sorted(x.changed for x in results) == [False, True]
    finally:
        for e in engines:
            e.dispose()
    assert pg.execute("select count(*) from canon.identity_links where source_pk = '1' "
                      "and source_table = 'module_ct_cabinet_leads'").fetchone() == (1,)
    assert [d[0] for d in decisions(pg)] == [1, 3]
    verified(world["engine"])


# ---------------------------------------------------------------------- the queue


def test_queue_order_candidates_and_hints(pg, world):
    a, b = world["a"], world["b"]
    total, entries = review_queue(pg, 10)
    assert total == 5
    # AMBIGUOUS with money at stake, AMBIGUOUS, then NO_CANDIDATES oldest first
    assert [(e["lead_id"], e["reason_code"], e["at_stake"]) for e in entries] == [
        (1, "AMBIGUOUS", True), (2, "AMBIGUOUS", False),
        (3, "NO_CANDIDATES", False), (4, "NO_CANDIDATES", False), (6, "NO_CANDIDATES", False)]
    first = entries[0]
    assert [c["person_key"] for c in first["candidates"]] == [a, b]  # most trips first
    ca, cb = first["candidates"]
    assert ca["matched_keys"] == {"PHONE": "+51984217563"} and cb["matched_keys"] == {"DOC": DOC_B}
    assert ca["conflicting_keys"] == {"DOC": {"record": DOC_B, "person": DOC_A}} and cb["conflicting_keys"] == {}
    assert (ca["driver_ids"], ca["trips_in_window"], ca["milestones_reached"]) == (["D1"], 3, [1])
    assert ca["claims"] == [{"claim_id": "C1", "driver_id": "D1", "milestone": 1, "status": "approved"}]
    assert (cb["driver_ids"], cb["trips_in_window"], cb["claims"]) == (["D2"], 0, [])
    assert ca["names"] == {"lead": "juan quispe mamani", "person": "juan quispe mamani", "similarity": 100}
    second = entries[1]
    assert second["candidates"][0]["names"]["lead"] == "pedro rojas diaz"
    assert second["candidates"][0]["names"]["similarity"] < 60
    assert second["why"].startswith("only the PHONE matches and the names do not agree")
    hints = {e["lead_id"]: e["hints"] for e in entries}
    assert f"a DNI typed into the phone field: those digits are the DOC of person {a}" in hints[3]
    assert any("landline" in h for h in hints[4])
    assert any("placeholder" in h for h in hints[6])
    assert review_queue(pg, 2)[1] == entries[:2] and review_queue(pg, 2)[0] == 5
    assert entries[0]["commands"][:2] == [f"cabinet-leads resolve 1 --link {p} --why '...'" for p in (a, b)]
    assert entries[2]["commands"][0] == f"cabinet-leads resolve 3 --link {a} --why '...'"  # the DNI's owner


# ---------------------------------------------------------------------- who may decide


@pytest.fixture
def operator_url(db_url, server_url) -> str:
    return with_user(db_url, ensure_login(server_url, OPERATOR_LOGIN, "cabinet_leads_operator"))


def test_decisions_run_as_an_operator_never_as_the_job_or_the_reader(pg, world, operator_url, job_url, reader_url):
    for url in (job_url, reader_url):
        engine = db.make_engine(url)
        try:
            r = Reviewer(engine)
            for decide, args in ((r.dismiss, (6,)), (r.unlink, (5,)), (r.link, (2, world["b"])), (r.new_person, (4,))):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    decide(*args, "job", "x")
        finally:
            engine.dispose()
    assert decisions(pg) == [] and link_of(pg, "module_ct_cabinet_leads", 5) is not None

    engine = db.make_engine(operator_url)
    try:
        r = Reviewer(engine)
        assert r.unlink(5, "olga", "wrong").changed
        assert r.link(2, world["b"], "olga", "called").changed
        assert r.new_person(4, "olga", "own person").changed
        assert r.dismiss(6, "olga", "spam").changed
    finally:
        engine.dispose()
    assert {d[6] for d in decisions(pg)} == {OPERATOR_LOGIN}
    assert pg.execute("select db_user from canon.identity_link_audit").fetchall() == [(OPERATOR_LOGIN,)]
    verified(world["engine"])


def test_the_operator_role_writes_only_what_a_decision_writes(pg):
    rows = pg.execute(
        "select format('%I.%I', n.nspname, c.relname), p.privilege_type "
        "from pg_class as c join pg_namespace as n on c.relnamespace = n.oid "
        "cross join lateral aclexplode(c.relacl) as p "
        "where n.nspname in ('public', 'canon', 'ops') and p.grantee = 'cabinet_leads_operator'::regrole "
        "and p.privilege_type not in ('SELECT', 'USAGE')").fetchall()
    writes: dict[str, set[str]] = {}
    for table, privilege in rows:
        writes.setdefault(table, set()).add(privilege)
    assert writes == {
        "canon.identity_links": {"INSERT", "DELETE"},
        "canon.identity_link_audit": {"INSERT"},
        "canon.person_keys": {"INSERT", "DELETE"},
        "canon.identity_registry": {"INSERT"},
        "ops.manual_decisions": {"INSERT"},
        "ops.manual_lead_state": {"INSERT", "UPDATE"},
        "ops.lead_state": {"INSERT", "UPDATE", "DELETE"},
        "ops.lead_marks": {"INSERT"},
        "ops.milestone_claim_worklist": {"INSERT", "UPDATE"},
    }
    job = pg.execute(
        "select p.privilege_type from pg_class as c cross join lateral aclexplode(c.relacl) as p "
        "where c.oid in ('ops.manual_decisions'::regclass, 'ops.manual_lead_state'::regclass) "
        "and p.grantee = 'cabinet_leads_job'::regrole").fetchall()
    assert job == [("SELECT",), ("SELECT",)]
    assert pg.execute("select rolcanlogin from pg_roles where rolname = 'cabinet_leads_operator'").fetchone() == (False,)


# ---------------------------------------------------------------------- the command line


def test_cli_review_resolve_and_explain(pg, world, db_url):
    a = world["a"]
    res = run_cli("--help")
    assert "    review " in res.stdout and "    resolve " in res.stdout
    res = run_cli("review", "--json", "--limit", "3", database_url=db_url)
    assert res.returncode == 0, res.stderr
    queue = json.loads(res.stdout)
    assert queue["total"] == 5 and [e["lead_id"] for e in queue["entries"]] == [1, 2, 3]
    res = run_cli("review", database_url=db_url)
    assert res.returncode == 0 and "lead 1 (CAB-1) AMBIGUOUS, money at stake" in res.stdout
    assert f"candidate person {a}: matched PHONE=+51984217563; conflicts DOC {DOC_B} vs {DOC_A}" in res.stdout

    res = run_cli("resolve", "1", "--link", str(a), "--why", "typo", "--by", "ana", database_url=db_url)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith("cabinet-leads: refused: lead 1's DOC") and res.stderr.count("\n") == 1
    res = run_cli("resolve", "1", "--link", str(a), "--doc-is-wrong", "--why", "typo", "--by", "ana",
                  database_url=db_url)
    assert res.returncode == 0, res.stderr
    (line,) = res.stdout.splitlines()
    assert line.startswith("decision ") and f"lead 1 linked to person {a}; not attached: DOC={DOC_B}" in line
    res = run_cli("resolve", "1", "--link", str(a), "--doc-is-wrong", "--why", "typo", "--by", "ana",
                  database_url=db_url)
    assert res.returncode == 0 and res.stdout == f"lead 1 is already linked to person {a} (nothing changed)\n"
    res = run_cli("resolve", "6", "--dismiss", "--why", "spam", "--json", database_url=db_url)
    assert res.returncode == 0 and json.loads(res.stdout)["changed"] is True
    res = run_cli("resolve", "99", "--dismiss", "--why", "x", database_url=db_url)
    assert (res.returncode, res.stderr) == (1, "cabinet-leads: refused: no lead with id 99\n")
    for args in (("1", "--why", "x"), ("1", "--dismiss", "--unlink", "--why", "x"), ("1", "--dismiss"),
                 ("x", "--dismiss", "--why", "y"), ("1", "--dismiss", "--doc-is-wrong", "--why", "x"),
                 ("1", "--link", "two", "--why", "x")):
        res = run_cli("resolve", *args, database_url=db_url)
        assert res.returncode == 2 and res.stderr.count("\n") == 1, (args, res.stderr)

    res = run_cli("explain", "1", database_url=db_url)
    assert res.returncode == 0
    assert "by MANUAL_LINK (manual decision" in res.stdout and "by ana (" in res.stdout and ": typo" in res.stdout
    res = run_cli("explain", "6", database_url=db_url)
    assert "manual decision" in res.stdout and ": dismiss by " in res.stdout and "spam" in res.stdout
    assert [d[:2] for d in decisions(pg)] == [(1, "link"), (6, "dismiss")]


def test_cli_resolve_as_the_operator_and_refused_to_the_job(pg, world, operator_url, job_url):
    res = run_cli("resolve", "6", "--dismiss", "--why", "spam", "--by", "olga", database_url=job_url)
    assert res.returncode == 1 and res.stderr.startswith("cabinet-leads: error: permission denied")
    assert res.stderr.count("\n") == 1 and decisions(pg) == []
    res = run_cli("resolve", "6", "--dismiss", "--why", "spam", "--by", "olga", database_url=operator_url)
    assert res.returncode == 0, res.stderr
    res = run_cli("review", "--json", database_url=operator_url)
    assert res.returncode == 0 and 6 not in [e["lead_id"] for e in json.loads(res.stdout)["entries"]]
    assert decisions(pg) == [(6, "dismiss", None, None, "olga", "spam", OPERATOR_LOGIN)]


def test_a_batch_chosen_before_a_decision_leaves_the_decision_alone(pg, world):
    """The job chose its work before the reviewer dismissed a lead; its batch decides under the
    identity lock, which decisions take too, and leaves the dismissed lead alone."""
    from cabinet_leads.engine import linking
    from cabinet_leads.engine.session import LEADS, WorkSession
    from cabinet_leads.params import HOT_KEY_LIMIT

    # leads 3 and 4 now carry A's phone and A's names: a batch links them through the phone
    pg.execute("update public.module_ct_cabinet_leads set phone = '984217563', updated_at = now() where id in (3, 4)")
    world["reviewer"].dismiss(4, "eva", "duplicate of lead 3")
    session = WorkSession(world["engine"])
    with session.connect() as conn:
        stats = linking.identity_batch(session, conn, LEADS, [3, 4], 0, ANCHOR, hot_key_limit=HOT_KEY_LIMIT.default)
    assert stats["newly_linked"] == 1
    assert link_of(pg, "module_ct_cabinet_leads", 3)[:2] == (world["a"], "MATCH_PHONE")
    assert link_of(pg, "module_ct_cabinet_leads", 4) is None


def test_a_decision_reads_the_lead_through_the_jobs_loader_and_its_guards(pg, world):
    """A lead edited upstream into a hostile row (a creation time no client can hold) is read as the
    job reads it: INVALID_DATA, so its new licence is not attached, whatever the row's other fields."""
    r, b = world["reviewer"], world["b"]
    pg.execute("update public.module_ct_cabinet_leads set license_number = 'Z4861537', "
               "lead_created_at = 'infinity', updated_at = now() where id = 4")
    out = r.link(4, b, "luis", "known in person")
    assert out.changed and out.keys_attached == {} and out.keys_not_attached == {}
    assert pg.execute("select count(*) from canon.person_keys where key_value = 'Z4861537'").fetchone() == (0,)
    verified(world["engine"])
