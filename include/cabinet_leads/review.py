"""Manual resolution (issue 11): a reviewer's decisions on a lead, and the queue of leads to decide.

Decisions (:class:`Reviewer`): ``link``, ``new_person``, ``dismiss``, ``unlink``. Each is one
transaction that

- serialises with the job's identity batches and with other decisions (the engine's identity
  advisory lock, so two decisions on one lead never both win, and a decision never races a batch
  for a key),
- re-reads the lead (its keys through the job's own loader, ``engine.record_keys.load``: stored when
  current, else normalised now with the same guards against hostile rows), checks the C0 rules and refuses with one line (:class:`DecisionRefused`),
- writes the link, person and keys (C0.2: a key owned by another person is never attached, the
  decision says so; C0.1: an unlink is the audited manual action the guard on the links allows),
- records the decision (``ops.manual_decisions``: who, why, person before and after, keys attached,
  detached or left where they were) and the lead's standing decision (``ops.manual_lead_state``),
- recomputes the lead's funnel state and claim worklist with the engine's own set-based statement
  (``engine.funnel_state.recompute``).

The same decision twice changes nothing the second time and says so (``Outcome.changed`` false).
The job never overrides a decision: a linked lead is never re-matched, and a lead dismissed or
unlinked by hand gets no identity work (``reconcile/select_work_leads.sql``) until a reviewer
decides again.

Decisions run as an operator: the owner, or a login in ``cabinet_leads_operator`` (V018); the job's
role (``cabinet_leads_job``) cannot make them (no privilege on the decisions, and the links' guard
refuses it the manual action).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field

from psycopg.rows import dict_row
from sqlalchemy.engine import Connection

from cabinet_leads.db import DbLike, read_sql
from cabinet_leads.engine import changes, funnel_state, linking, record_keys
from cabinet_leads.engine.session import LEADS, WorkSession
from cabinet_leads.normalize import name_similarity

DECISIONS = ("link", "new_person", "dismiss", "unlink")
MAX_TEXT = 500  # --by and --why
MAX_CHARS = 120  # raw text shown in the queue
MAX_CLAIMS = 20  # claims shown per candidate
class DecisionRefused(ValueError):
    """A decision that would break C0, or names what does not exist: one line for the reviewer."""


@dataclass
class Outcome:
    """What a decision did (``changed`` false: it had been made already, nothing changed)."""

    lead_id: int
    decision: str
    changed: bool
    message: str
    decision_id: int | None = None
    person_before: int | None = None
    person_after: int | None = None
    keys_attached: dict = field(default_factory=dict)
    keys_detached: dict = field(default_factory=dict)
    keys_not_attached: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _text(value: str | None, name: str) -> str:
    text = (value or "").strip()
    if not text:
        raise DecisionRefused(f"{name} must say something (who decides, and why)")
    if len(text) > MAX_TEXT:
        raise DecisionRefused(f"{name} is {len(text)} characters long (limit {MAX_TEXT})")
    return text


class Reviewer:
    """Decisions on leads, made as whoever ``db`` connects as (an operator: see the module doc).
    ``db`` is a SQLAlchemy ``Engine``, ``Connection`` or ``Session``, as for the pipeline."""

    def __init__(self, db: DbLike) -> None:
        self.session = WorkSession(db)

    # ------------------------------------------------------------------ the four decisions

    def link(self, lead: int, person: int, by: str, why: str, doc_is_wrong: bool = False) -> Outcome:
        """Link an unlinked lead to an existing person; its free keys attach (C0.2: not those another
        person owns); a DOC that differs from the person's is refused unless ``doc_is_wrong`` (then
        the DOC is not attached, and the evidence says so)."""
        return self._decide(lead, "link", by, why, lambda conn, row, did: self._link(
            conn, row, did, person, by, why, doc_is_wrong), doc_is_wrong=doc_is_wrong)

    def new_person(self, lead: int, by: str, why: str) -> Outcome:
        """The lead becomes a person of its own even though a key points elsewhere (a shared key
        stays with its owner)."""
        return self._decide(lead, "new_person", by, why, lambda conn, row, did: self._new_person(
            conn, row, did, by, why))

    def dismiss(self, lead: int, by: str, why: str) -> Outcome:
        """Spam, a test sign-up, a duplicate: out of the queue and never matched by the job."""
        return self._decide(lead, "dismiss", by, why, self._dismiss)

    def unlink(self, lead: int, by: str, why: str) -> Outcome:
        """Undo a wrong link (the audited manual action C0.1 allows); the keys the lead brought are
        detached unless another record of the person holds them. The job does not re-match the lead
        until a reviewer decides again."""
        return self._decide(lead, "unlink", by, why, lambda conn, row, did: self._unlink(
            conn, row, did, by, why))

    # ------------------------------------------------------------------ one transaction

    def _decide(self, lead_id: int, decision: str, by: str, why: str, body, *, doc_is_wrong: bool = False
                ) -> Outcome:
        by, why = _text(by, "--by"), _text(why, "--why")
        s = self.session
        with s.connect() as conn, s.tx(conn, bookkeeping=True):  # durable, no job statement limit
            linking.lock_identity(s, conn)
            row = s.run_file(conn, "review/lead", {"lead_id": lead_id}).fetchone()
            if row is None:
                raise DecisionRefused(f"no lead with id {lead_id}")
            decision_id = s.run_file(conn, "review/reserve_decision_id").fetchone().decision_id
            out: Outcome = body(conn, row, decision_id)
            if not out.changed:
                return out  # the transaction ends with nothing written (the reserved id is a gap)
            s.run_file(conn, "review/record_decision", {
                "decision_id": decision_id, "lead_id": lead_id, "decision": decision,
                "person_before": out.person_before, "person_after": out.person_after,
                "keys_attached": json.dumps(out.keys_attached), "keys_detached": json.dumps(out.keys_detached),
                "keys_not_attached": json.dumps(out.keys_not_attached), "doc_is_wrong": doc_is_wrong,
                "decided_by": by, "why": why,
            })
            out.decision_id = decision_id
            # the lead's funnel state and worklist, by the engine's own recompute, in this transaction;
            # the mark stays for the next run, so a run whose recompute read the lead before this
            # commit and wrote after it is corrected by the next one
            changes.mark_leads(s, conn, [lead_id])
            funnel_state.recompute(s, conn, [lead_id], run_id=None)
        return out

    def _keys(self, conn: Connection, lead_id: int) -> tuple[dict[str, str], str, str]:
        """The lead's valid strong keys and folded names as the job sees them (its loader: the stored
        keys when current, else normalised now, with the same guards against hostile rows)."""
        [loaded] = record_keys.load(self.session, conn, LEADS, [lead_id], dt.datetime.now(dt.UTC))
        rec = linking.to_record(loaded)
        return ({} if rec.invalid_reason else dict(rec.keys)), rec.name, rec.given_name

    def _owners(self, conn: Connection, keys: dict[str, str]) -> dict[str, int]:
        if not keys:
            return {}
        found = self.session.run_file(conn, "reconcile/find_key_owners",
                                      {"key_types": list(keys), "key_values": list(keys.values())})
        return {f.key_type: f.person_key for f in found}

    def _attach(self, conn: Connection, lead_id: int, person: int, keys: dict[str, str], owners: dict[str, int],
                not_attached: dict) -> tuple[dict, dict]:
        """Attach the keys no one owns (C0.5) and return (attached, matched); a key owned by another
        person stays with its owner (C0.2) and is listed in ``not_attached``."""
        attached, matched = {}, {}
        for key_type, value in keys.items():
            owner = owners.get(key_type)
            if owner == person:
                matched[key_type] = value
            elif owner is not None:
                not_attached[key_type] = {"value": value, "owner": owner,
                                          "why": f"owned by person {owner} (C0.2: a key belongs to one person)"}
            else:
                attached[key_type] = value
        if attached:
            self.session.run_file(conn, "reconcile/insert_person_keys", {
                "run_id": None, "key_type": list(attached), "key_value": list(attached.values()),
                "person_key": [person] * len(attached), "source_table": [LEADS] * len(attached),
                "source_pk": [str(lead_id)] * len(attached),
            })
        return attached, matched

    def _insert_link(self, conn: Connection, lead_id: int, person: int, rule: str, evidence: dict) -> None:
        self.session.run_file(conn, "reconcile/insert_links", {
            "source_table": LEADS, "run_id": None, "source_pk": [str(lead_id)], "person_key": [person],
            "match_rule": [rule], "evidence": json.dumps([evidence], sort_keys=True, default=str),
        })

    @staticmethod
    def _refuse_linked(row, what: str) -> None:
        raise DecisionRefused(f"lead {row.lead_id} is already linked to person {row.linked_person} "
                              f"({row.match_rule}): {what}")

    def _link(self, conn: Connection, row, decision_id: int, person: int, by: str, why: str,
              doc_is_wrong: bool) -> Outcome:
        lead_id = row.lead_id
        target = self.session.run_file(conn, "review/person", {"person_key": person}).fetchone()
        if target is None:
            raise DecisionRefused(f"no person with key {person}")
        if row.linked_person == person:
            return Outcome(lead_id, "link", False, f"lead {lead_id} is already linked to person {person} "
                           "(nothing changed)", person_before=person, person_after=person)
        if row.linked_person is not None:
            self._refuse_linked(row, "unlink it first (cabinet-leads resolve --unlink)")
        keys, _name, _given = self._keys(conn, lead_id)
        not_attached: dict = {}
        doc = keys.get("DOC")
        if doc and target.doc and doc != target.doc and not doc_is_wrong:
            raise DecisionRefused(
                f"lead {lead_id}'s DOC {doc} differs from person {person}'s DOC {target.doc} (C0.3); "
                "if the lead's DOC is wrong, say so with --doc-is-wrong")
        if doc and doc_is_wrong:
            keys.pop("DOC")
            not_attached["DOC"] = {"value": doc, "why": "declared wrong by the reviewer"
                                   + (f"; the person's DOC is {target.doc}" if target.doc else "")}
        owners = self._owners(conn, keys)
        attached, matched = self._attach(conn, lead_id, person, keys, owners, not_attached)
        self._insert_link(conn, lead_id, person, "MANUAL_LINK", {
            "rule": "MANUAL_LINK", "decision_id": decision_id, "decided_by": by, "why": why,
            "matched_keys": matched, "attached_keys": attached, "not_attached_keys": not_attached,
            "doc_is_wrong": doc_is_wrong, "record_keys": keys | ({"DOC": doc} if doc else {}),
        })
        return Outcome(lead_id, "link", True, f"lead {lead_id} linked to person {person}"
                       + _keys_note(attached, not_attached), person_before=None, person_after=person,
                       keys_attached=attached, keys_not_attached=not_attached)

    def _new_person(self, conn: Connection, row, decision_id: int, by: str, why: str) -> Outcome:
        lead_id = row.lead_id
        if row.linked_person is not None:
            if row.standing == "new_person" and row.standing_person == row.linked_person:
                return Outcome(lead_id, "new_person", False, f"lead {lead_id} is already person "
                               f"{row.linked_person} of its own (nothing changed)",
                               person_before=row.linked_person, person_after=row.linked_person)
            self._refuse_linked(row, "unlink it first (cabinet-leads resolve --unlink)")
        keys, name, given = self._keys(conn, lead_id)
        person = self.session.run_file(conn, "review/insert_person",
                                       {"name_folded": name, "given_name": given}).fetchone().person_key
        not_attached: dict = {}
        owners = self._owners(conn, keys)
        attached, _matched = self._attach(conn, lead_id, person, keys, owners, not_attached)
        self._insert_link(conn, lead_id, person, "MANUAL_NEW_PERSON", {
            "rule": "MANUAL_NEW_PERSON", "decision_id": decision_id, "decided_by": by, "why": why,
            "new_keys": attached, "not_attached_keys": not_attached, "record_keys": keys,
        })
        return Outcome(lead_id, "new_person", True, f"lead {lead_id} is now person {person} of its own"
                       + _keys_note(attached, not_attached), person_after=person, keys_attached=attached,
                       keys_not_attached=not_attached)

    def _dismiss(self, conn: Connection, row, decision_id: int) -> Outcome:
        lead_id = row.lead_id
        if row.linked_person is not None:
            self._refuse_linked(row, "a dismissed lead has no identity; unlink it first if the link is wrong")
        if row.standing == "dismiss":
            return Outcome(lead_id, "dismiss", False, f"lead {lead_id} is already dismissed (decision "
                           f"{row.standing_decision}; nothing changed)")
        return Outcome(lead_id, "dismiss", True, f"lead {lead_id} dismissed")

    def _unlink(self, conn: Connection, row, decision_id: int, by: str, why: str) -> Outcome:
        lead_id = row.lead_id
        if row.linked_person is None:
            if row.standing == "unlink":
                return Outcome(lead_id, "unlink", False, f"lead {lead_id} is already unlinked (decision "
                               f"{row.standing_decision}; nothing changed)")
            raise DecisionRefused(f"lead {lead_id} is not linked: nothing to unlink")
        s = self.session
        s.run_file(conn, "review/declare_manual_action",
                   {"reason": f"decision {decision_id}: unlink lead {lead_id} by {by}: {why}"})
        person = s.run_file(conn, "review/delete_link", {"lead_id": lead_id}).fetchone().person_key
        detached, kept = {}, {}
        for k in s.run_file(conn, "review/detach_keys", {"person_key": person, "lead_id": lead_id}):
            if k.needed_by is None:
                detached[k.key_type] = k.key_value
            else:
                kept[k.key_type] = {"value": k.key_value, "why": f"still needed by {k.needed_by}"}
        note = f"; keys detached: {_pairs(detached)}" if detached else ""
        note += f"; kept (another record of the person holds them): {_pairs(kept)}" if kept else ""
        return Outcome(lead_id, "unlink", True, f"lead {lead_id} unlinked from person {person}{note}",
                       person_before=person, keys_detached=detached, keys_not_attached=kept)


def _pairs(keys: dict) -> str:
    return ", ".join(f"{k}={v['value'] if isinstance(v, dict) else v}" for k, v in keys.items())


def _keys_note(attached: dict, not_attached: dict) -> str:
    note = f"; keys attached: {_pairs(attached)}" if attached else ""
    if not_attached:
        note += "; not attached: " + ", ".join(f"{k}={v['value']} ({v['why']})" for k, v in not_attached.items())
    return note


# ---------------------------------------------------------------------- the queue


def review_queue(conn, limit: int = 20) -> tuple[int, list[dict]]:
    """(entries in the whole queue, the first ``limit`` of them in order). ``conn`` is a psycopg
    connection, or a SQLAlchemy one. Each entry: the lead, its outcome, data-quality hints, and every
    candidate person with matched and conflicting keys, names side by side with their similarity,
    driver accounts, trips and reached milestones in the lead's window, and claims."""
    raw = conn.connection.driver_connection if isinstance(conn, Connection) else conn
    with raw.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(read_sql("review/queue.sql"), {
            "max_entries": limit, "max_chars": MAX_CHARS, "max_claims": MAX_CLAIMS}).fetchall()
    total = int(rows[0]["total"]) if rows else 0
    out = []
    for r in rows:
        entry = {k: _clip(v) for k, v in r.items() if k != "total"}
        lead_name = r["name_folded"] or ""
        for cand in entry["candidates"]:
            cand["names"] = {"lead": lead_name, "person": cand["person_name"],
                             "similarity": name_similarity(lead_name, cand["person_name"])}
        entry["hints"] = _hints(r)
        entry["commands"] = _commands(r)
        out.append(entry)
    return total, out


def _clip(value, limit: int = MAX_CHARS):
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "…[cut]"
    return value


def _hints(r: dict) -> list[str]:
    """Data-quality hints from what normalisation rejected (cabinet_leads.normalize problems)."""
    hints = []
    for problem in r["problems"] or []:
        if "looks like a DNI" in problem:
            owner = r["phone_is_doc_of"]
            hints.append("a DNI typed into the phone field" + (
                f": those digits are the DOC of person {owner}" if owner else ""))
        elif problem == "phone: landline":
            hints.append("a landline in the phone field (only mobiles are keys)")
        elif "placeholder" in problem:
            hints.append(f"a placeholder value: {problem}")
        else:
            hints.append(problem)
    if r["reason_code"] == "NO_CANDIDATES" and not (r["phone"] or r["doc"] or r["license"]):
        hints.append("no valid strong key: the job cannot match it; link it by hand, fix it upstream or dismiss it")
    return hints


def _commands(r: dict) -> list[str]:
    lead = r["lead_id"]
    persons = [c["person_key"] for c in r["candidates"]]
    if r["phone_is_doc_of"] is not None and r["phone_is_doc_of"] not in persons:
        persons.append(r["phone_is_doc_of"])
    cmds = [f"cabinet-leads resolve {lead} --link {p} --why '...'" for p in persons]
    cmds += [f"cabinet-leads resolve {lead} --new-person --why '...'",
             f"cabinet-leads resolve {lead} --dismiss --why '...'"]
    return cmds


def format_queue(total: int, entries: list[dict]) -> str:
    if not entries:
        return "review queue: empty"
    lines = [f"review queue: {total} lead(s), showing {len(entries)}"]
    for e in entries:
        name = " ".join(p for p in (e["first_name"], e["last_name"]) if p) or "(no name)"
        stake = ", money at stake" if e["at_stake"] else ""
        lines.append(f"lead {e['lead_id']} ({e['external_id'] or 'no external id'}) {e['reason_code']}{stake}: "
                     f"{name}, lead date {e['lead_date']}")
        lines.append(f"  keys: PHONE={e['phone'] or '-'} DOC={e['doc'] or '-'} LICENSE={e['license'] or '-'}"
                     f"  raw phone={e['raw_phone']!r} document={e['raw_document']!r}")
        if e["why"]:
            lines.append(f"  why: {e['why']}")
        if e["unlinked_from"]:
            lines.append(f"  unlinked by hand from person {e['unlinked_from']}")
        for h in e["hints"]:
            lines.append(f"  hint: {h}")
        for c in e["candidates"]:
            matched = ", ".join(f"{k}={v}" for k, v in c["matched_keys"].items()) or "-"
            conflicts = ", ".join(f"{k} {v['record']} vs {v['person']}" for k, v in c["conflicting_keys"].items())
            lines.append(f"  candidate person {c['person_key']}: matched {matched}"
                         + (f"; conflicts {conflicts}" if conflicts else "")
                         + f"; names {c['names']['lead']!r} vs {c['names']['person']!r} "
                           f"(similarity {c['names']['similarity']})")
            claims = ", ".join(f"{x['milestone']} by {x['driver_id']}" for x in c["claims"]) or "none"
            lines.append(f"    driver accounts {', '.join(c['driver_ids']) or 'none'}; "
                         f"{c['trips_in_window']} trips in window; milestones {c['milestones_reached'] or '-'}; "
                         f"claims {claims}")
        lines.append(f"  $ {e['commands'][0]}")
    return "\n".join(lines)
