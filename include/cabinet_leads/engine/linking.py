"""Identity: candidates, decision and writes for one batch of records whose keys are stored.

One batch is one transaction with a constant number of statements, whatever its size. First what
needs no lock: load the batch (:func:`cabinet_leads.engine.record_keys.load`, which normalises and
stores whatever was edited upstream since the record-keys phase), mark its leads for the funnel
state, and find its hot keys (they depend on the stored record keys only). Then the identity lock,
held to the commit: every owner of the batch's keys and the candidate persons' profiles, the
decision in Python (``identity.match_batch``, ``identity.link_conflicts``), and persons, keys,
links and unmatched outcomes written with one statement each. Only that decision serialises:
concurrent batches (parallel ranges, overlapping runs) decide against each other's committed
persons, as the serial run would; the unique constraints of C0 (C0.1, C0.2) are the last line, and
a batch that still hits one is retried (:func:`cabinet_leads.engine.session.with_retries`).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import zoneinfo
from collections import Counter

from sqlalchemy.engine import Connection

from cabinet_leads import identity
from cabinet_leads.engine import changes, record_keys
from cabinet_leads.engine.record_keys import Row
from cabinet_leads.engine.session import LEADS, WorkSession

IDENTITY_LOCK_KEY = 0x43414233  # "CAB3": identity decisions of concurrent batches serialise
HOT_KEY_SCAN = 1000  # records looked at per key value to decide whether it is hot
LIMA = zoneinfo.ZoneInfo("America/Lima")


def identity_batch(
    session: WorkSession, conn: Connection, table: str, ids: list, run_id: int, anchor: dt.datetime, *,
    hot_key_limit: int,
) -> dict:
    """Decide and write the identities of one batch (one transaction); its statistics."""
    started = time.perf_counter()
    before = session.statements.n
    stats: dict = {}
    with session.tx(conn):
        # first what needs no lock: the batch's rows, their marks, their hot keys (record keys only)
        rows = record_keys.load(session, conn, table, ids, anchor)
        record_keys.store(session, conn, table, [r for r in rows if r.stale])  # edited since the keys phase
        if table == LEADS:
            changes.mark_leads(session, conn, ids)
        pending = [r.source_pk for r in rows if r.renormalised]
        if pending:  # decided below, in this transaction
            session.run_file(conn, "reconcile/clear_identity_pending", {"source_table": table, "source_pk": pending})
        records = [to_record(r) for r in rows if r.linked_person_key is None]
        # linked records whose keys changed: the link stays (C0.1), a conflict is surfaced
        linked = [(to_record(r), r.linked_person_key) for r in rows if r.linked_person_key is not None
                  and r.renormalised]
        wanted = sorted({(k, v) for rec in records + [rec for rec, _ in linked] if not rec.invalid_reason
                         for k, v in rec.keys.items()})
        hot = hot_keys(session, conn, wanted, hot_key_limit)
        # then the decision and its writes, one batch at a time: the lock is held to the commit
        waited = lock_identity(session, conn)
        if table == LEADS:
            records = without_held(session, conn, records)
        decisions = decide(session, conn, records, linked, wanted, hot)
        write(session, conn, table, decisions, run_id, anchor)

        counts = Counter(u.reason_code for u in decisions.unmatched)
        stats["link_conflicts"] = counts[identity.LINK_CONFLICT]
        if table == LEADS:
            stats["processed"] = len(rows)
            stats["newly_linked"] = len(decisions.links)
            stats["still_no_candidates"] = counts[identity.NO_CANDIDATES]
            stats["conflicts"] = counts[identity.AMBIGUOUS]
        else:
            stats["drivers_processed"] = len(rows)
            stats["drivers_linked"] = len(decisions.links)
            stats["driver_conflicts"] = counts[identity.AMBIGUOUS]
        stats["errors"] = counts[identity.INVALID_DATA]
        stats["new_persons"] = len(decisions.new_persons)
        stats["batches"] = 1
        stats["identity_lock_wait_s"] = waited
    session.statements.per_batch.append(session.statements.n - before)
    ms = (time.perf_counter() - started) * 1000
    (session.timings.lead_batch_ms if table == LEADS else session.timings.driver_batch_ms).append(ms)
    session.timings.identity_lock_wait_s += waited
    return stats


def lock_identity(session: WorkSession, conn: Connection) -> float:
    """Take the identity lock for the rest of the transaction; the seconds waited for it (exactly 0
    when it was free: a try first, the blocking wait timed only when another batch holds it)."""
    if session.exec(conn, "select pg_try_advisory_xact_lock(%(k)s)", {"k": IDENTITY_LOCK_KEY}).fetchone()[0]:
        return 0.0
    started = time.perf_counter()
    session.exec(conn, "select pg_advisory_xact_lock(%(k)s)", {"k": IDENTITY_LOCK_KEY}, name="wait for the identity lock")
    return time.perf_counter() - started


def without_held(session: WorkSession, conn: Connection, records: list[identity.Record]) -> list[identity.Record]:
    """``records`` less the leads a reviewer dismissed or unlinked by hand since the batch was chosen
    (issue 11: the job never overrides a manual decision). Read under the identity lock, which the
    decisions (:mod:`cabinet_leads.review`) take too; select_work_leads.sql leaves such leads out before."""
    if not records:
        return records
    held = {r.source_pk for r in session.run_file(conn, "reconcile/held_leads",
                                                    {"source_pk": [r.source_pk for r in records]})}
    return [r for r in records if r.source_pk not in held] if held else records


def hot_keys(session: WorkSession, conn: Connection, wanted: list[tuple[str, str]], hot_key_limit: int
             ) -> dict[tuple[str, str], dict]:
    """The hot values among ``wanted`` (key type, value), with the counts that make them hot. They
    depend on the stored record keys only, never on identities: no lock needed."""
    if not wanted:
        return {}
    found = session.run_file(conn, "reconcile/find_hot_keys", {
        "key_types": [k for k, _ in wanted], "key_values": [v for _, v in wanted],
        "hot_limit": hot_key_limit, "scan": HOT_KEY_SCAN})
    return {(f.key_type, f.key_value): {"records": f.records, "given_names": f.given_names, "docs": f.docs}
            for f in found}


def decide(
    session: WorkSession, conn: Connection, records: list[identity.Record],
    linked: list[tuple[identity.Record, int]], wanted: list[tuple[str, str]], hot: dict[tuple[str, str], dict],
) -> identity.BatchDecisions:
    """Candidates (owners of the batch's keys, their persons' profiles), then the decisions
    (``identity.match_batch``, ``identity.link_conflicts``). Under the identity lock."""
    owners: dict[tuple[str, str], int] = {}
    persons: dict[int, identity.Person] = {}
    if wanted:
        keys = {"key_types": [k for k, _ in wanted], "key_values": [v for _, v in wanted]}
        for f in session.run_file(conn, "reconcile/find_key_owners", keys):
            owners[(f.key_type, f.key_value)] = f.person_key
            persons[f.person_key] = identity.Person(f.person_key, f.person_doc, f.name_folded, f.given_name)
        profiled = sorted(set(persons) | {p for _, p in linked})
        if profiled:
            for f in session.run_file(conn, "reconcile/person_profiles", {"person_keys": profiled}):
                person = persons.setdefault(f.person_key, identity.Person(f.person_key))
                person.doc = person.doc or f.doc
                person.licenses = set(f.licenses)
                person.names = list(zip(f.given_names, f.full_names, strict=True))
    decisions = identity.match_batch(records, owners, persons, hot)
    decisions.unmatched += identity.link_conflicts(linked, owners, persons)
    return decisions


def write(
    session: WorkSession, conn: Connection, table: str, d: identity.BatchDecisions, run_id: int, anchor: dt.datetime
) -> None:
    """New persons, attached keys, links and unmatched outcomes: one statement each."""
    real: dict[int, int] = {}
    if d.new_persons:
        temp_ids = sorted(d.new_persons, reverse=True)  # -1, -2, ...: creation order
        allocated = [r[0] for r in session.run_file(conn, "reconcile/allocate_person_keys", {"n": len(temp_ids)})]
        real = dict(zip(temp_ids, allocated, strict=True))
        session.run_file(
            conn,
            "reconcile/insert_persons",
            {
                "run_id": run_id,
                "person_key": allocated,
                "name_folded": [d.new_persons[t].name for t in temp_ids],
                "given_name": [d.new_persons[t].given_name for t in temp_ids],
            },
        )

    def key_of(p: int) -> int:
        return real.get(p, p)

    if d.attached_keys:
        items = list(d.attached_keys.items())
        session.run_file(
            conn,
            "reconcile/insert_person_keys",
            {
                "run_id": run_id,
                "key_type": [k[0] for k, _ in items],
                "key_value": [k[1] for k, _ in items],
                "person_key": [key_of(p) for _, (p, _) in items],
                "source_table": [table] * len(items),
                "source_pk": [rec.source_pk for _, (_, rec) in items],
            },
        )
    if d.links:
        evidence = []
        for link in d.links:
            ev = dict(link.evidence)
            ev["run_id"] = run_id
            if link.person_key < 0:
                ev["person_key"] = key_of(link.person_key)
            evidence.append(ev)
        session.run_file(
            conn,
            "reconcile/insert_links",
            {
                "source_table": table,
                "run_id": run_id,
                "source_pk": [link.record.source_pk for link in d.links],
                "person_key": [key_of(link.person_key) for link in d.links],
                "match_rule": [link.match_rule for link in d.links],
                "evidence": json.dumps(evidence, sort_keys=True),
            },
        )
    if d.unmatched:
        session.run_file(
            conn,
            "reconcile/upsert_unmatched",
            {
                "source_table": table,
                "run_id": run_id,
                "snapshot_date": lima_date(anchor),
                "source_pk": [u.record.source_pk for u in d.unmatched],
                "reason_code": [u.reason_code for u in d.unmatched],
                "evidence": json.dumps([_resolve_temp(u.evidence, key_of) for u in d.unmatched], sort_keys=True),
            },
        )


def to_record(r: Row) -> identity.Record:
    """What the matcher sees of a loaded row: its valid strong keys, folded names, problems."""
    return identity.Record(
        source_pk=r.source_pk,
        keys={k: v for k, v in (("PHONE", r.keys["phone"]), ("DOC", r.keys["doc"]), ("LICENSE", r.keys["license"]))
              if v},
        name=r.keys["name_folded"] or "",
        given_name=r.keys["given_name"] or "",
        problems=tuple(r.keys["problems"]),
        invalid_reason=r.keys["invalid_reason"],
    )


def _resolve_temp(evidence: dict, key_of) -> dict:
    """Replace temporary (negative) person keys in candidate lists with the allocated ones."""
    if "candidates" in evidence:
        evidence = dict(evidence)
        evidence["candidates"] = [
            {**c, "person_key": key_of(c["person_key"])} for c in evidence["candidates"]
        ]
    return evidence


def lima_date(ts: dt.datetime) -> dt.date:
    """The day in Lima of ``ts`` (naive: UTC): the unmatched snapshot's date."""
    return (ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)).astimezone(LIMA).date()
