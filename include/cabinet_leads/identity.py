"""Identity matching by the C0 rules (SPEC section 4), as a pure function over one batch.

The database side (pipeline) loads a batch of records with their normalised keys and every
existing owner of those keys, calls :func:`match_batch`, and writes the decisions back in a
constant number of statements. Records are decided one after the other in the given order, as
if processed one at a time, so two records of the same batch that share a new key end up on the
same new person, and the outcome does not depend on the batch size.

Rules:
- C0.3 a link needs a strong-key match; keys pointing to more than one person, or a DOC or LICENSE
  that differs from the candidate's, make the record AMBIGUOUS (no link, no new person). A link
  through the phone alone (no DOC or LICENSE agreeing; relatives share phones) also needs the names
  to agree (:func:`cabinet_leads.normalize.name_mismatch`: first given name and paternal surname)
  with one of the records already linked to the person; a missing name never agrees.
- C0.4 valid keys and no candidate: a new person (NEW_IDENTITY); no valid key: NO_CANDIDATES.
- C0.5 a record that links attaches its other (unowned) strong keys to the person.
- Hot keys: a key value that the data shows is shared by records of clearly different people
  (``hot_keys``, found by the pipeline) is never matched or attached: the record is decided on its
  other keys, and is AMBIGUOUS (why "hot key", with the counts) when it has no other key.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from cabinet_leads.normalize import name_mismatch, name_similarity

KEY_TYPES = ("PHONE", "DOC", "LICENSE")

NO_CANDIDATES = "NO_CANDIDATES"
AMBIGUOUS = "AMBIGUOUS"
INVALID_DATA = "INVALID_DATA"
LINK_CONFLICT = "LINK_CONFLICT"
NEW_IDENTITY = "NEW_IDENTITY"


@dataclass
class Record:
    """One source record (lead or driver account) with its normalised keys."""

    source_pk: str
    keys: dict[str, str]  # key_type -> normalised value, valid strong keys only
    name: str = ""
    given_name: str = ""
    problems: tuple[str, ...] = ()
    invalid_reason: str | None = None
    hot_keys: dict[str, dict] = field(default_factory=dict)  # key_type -> value and counts, never used


@dataclass
class Person:
    """What the matcher needs to know of an existing person."""

    person_key: int
    doc: str | None = None
    name: str = ""
    given_name: str = ""
    licenses: set[str] = field(default_factory=set)
    # (given name, full name), folded, of records linked to the person (a sample of them)
    names: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Link:
    record: Record
    person_key: int  # negative: a person created in this batch (see new_persons)
    match_rule: str
    evidence: dict


@dataclass
class Unmatched:
    record: Record
    reason_code: str
    evidence: dict


@dataclass
class BatchDecisions:
    links: list[Link] = field(default_factory=list)
    unmatched: list[Unmatched] = field(default_factory=list)
    new_persons: dict[int, Person] = field(default_factory=dict)  # temporary (negative) key -> person
    # (key_type, key_value) -> (person_key, record that brought it)
    attached_keys: dict[tuple[str, str], tuple[int, Record]] = field(default_factory=dict)


def match_rule_for(matched: list[str]) -> str:
    """'MATCH_DOC', 'MATCH_DOC_PHONE', ...: which strong keys matched, in a fixed order."""
    return "MATCH_" + "_".join(k for k in ("DOC", "PHONE", "LICENSE") if k in matched)


def without_hot_keys(rec: Record, hot_keys: dict[tuple[str, str], dict]) -> Record:
    """``rec`` with its hot key values moved from ``keys`` to ``hot_keys`` (evidence only)."""
    hot = {k: {"value": v, **hot_keys[(k, v)]} for k, v in rec.keys.items() if (k, v) in hot_keys}
    if not hot:
        return rec
    return Record(rec.source_pk, {k: v for k, v in rec.keys.items() if k not in hot}, rec.name, rec.given_name,
                  rec.problems, rec.invalid_reason, hot)


def match_batch(
    records: list[Record],
    key_owners: dict[tuple[str, str], int],
    persons: dict[int, Person],
    hot_keys: dict[tuple[str, str], dict] | None = None,
) -> BatchDecisions:
    """Decide every record of a batch. ``key_owners`` and ``persons`` are read, never modified;
    ``hot_keys`` maps (key_type, value) to the counts that make the value hot."""
    owners = dict(key_owners)
    people = dict(persons)
    out = BatchDecisions()
    next_temp = -1

    for rec in records:
        if rec.invalid_reason:
            out.unmatched.append(Unmatched(rec, INVALID_DATA, {"invalid": rec.invalid_reason, **_keys_evidence(rec)}))
            continue
        rec = without_hot_keys(rec, hot_keys or {})
        if not rec.keys and rec.hot_keys:
            out.unmatched.append(
                Unmatched(rec, AMBIGUOUS, {"why": "hot key: its only strong keys are shared by records of "
                                                  "different people", **_keys_evidence(rec)})
            )
            continue
        if not rec.keys:
            out.unmatched.append(
                Unmatched(rec, NO_CANDIDATES, {"why": "no valid strong key (PHONE, DOC, LICENSE)", **_keys_evidence(rec)})
            )
            continue

        matched: dict[int, list[str]] = {}
        for key_type, value in rec.keys.items():
            owner = owners.get((key_type, value))
            if owner is not None:
                matched.setdefault(owner, []).append(key_type)

        if not matched:
            person_key = next_temp
            next_temp -= 1
            person = Person(person_key, doc=rec.keys.get("DOC"), name=rec.name, given_name=rec.given_name,
                            licenses={rec.keys["LICENSE"]} if "LICENSE" in rec.keys else set(),
                            names=[(rec.given_name, rec.name)])
            people[person_key] = person
            out.new_persons[person_key] = person
            for key_type, value in rec.keys.items():
                owners[(key_type, value)] = person_key
                out.attached_keys[(key_type, value)] = (person_key, rec)
            out.links.append(
                Link(rec, person_key, NEW_IDENTITY, {"rule": NEW_IDENTITY, "new_keys": dict(rec.keys), **_keys_evidence(rec)})
            )
            continue

        candidates = [
            {
                "person_key": p,
                "matched_keys": {k: rec.keys[k] for k in kinds},
                "doc": people[p].doc if p in people else None,
                "name_similarity": name_similarity(rec.name, people[p].name) if p in people else None,
            }
            for p, kinds in sorted(matched.items())
        ]
        if len(matched) > 1:
            out.unmatched.append(
                Unmatched(rec, AMBIGUOUS, {"why": "strong keys point to more than one person", "candidates": candidates,
                                           **_keys_evidence(rec)})
            )
            continue

        (person_key, kinds), = matched.items()
        person = people.get(person_key, Person(person_key))
        doc = rec.keys.get("DOC")
        if doc and person.doc and doc != person.doc:
            out.unmatched.append(
                Unmatched(rec, AMBIGUOUS, {"why": "DOC differs from the candidate person's DOC",
                                           "conflicting_keys": {"DOC": {"record": doc, "person": person.doc}},
                                           "candidates": candidates, **_keys_evidence(rec)})
            )
            continue
        lic = rec.keys.get("LICENSE")
        if lic and person.licenses and lic not in person.licenses:
            out.unmatched.append(
                Unmatched(rec, AMBIGUOUS, {"why": "LICENSE differs from the candidate person's LICENSE",
                                           "conflicting_keys": {"LICENSE": {"record": lic,
                                                                            "person": sorted(person.licenses)}},
                                           "candidates": candidates, **_keys_evidence(rec)})
            )
            continue
        if kinds == ["PHONE"]:
            why = _phone_only_names(rec, person)
            if why:
                out.unmatched.append(
                    Unmatched(rec, AMBIGUOUS, {"why": f"only the PHONE matches and the names do not agree: {why}",
                                               "names": {"record": rec.name,
                                                         "person": sorted({n for _, n in person.names})[:5]},
                                               "candidates": candidates, **_keys_evidence(rec)})
                )
                continue

        attached = {}
        for key_type, value in rec.keys.items():
            if (key_type, value) not in owners:
                owners[(key_type, value)] = person_key
                out.attached_keys[(key_type, value)] = (person_key, rec)
                attached[key_type] = value
        # what later records of the batch must see of the person (a copy: the inputs stay as given)
        people[person_key] = replace(
            person,
            doc=person.doc or doc,
            licenses=person.licenses | ({lic} if lic else set()),
            names=[*person.names, (rec.given_name, rec.name)],
        )
        rule = match_rule_for(kinds)
        out.links.append(
            Link(rec, person_key, rule, {"rule": rule, "matched_keys": {k: rec.keys[k] for k in kinds},
                                         "attached_keys": attached, "candidate": candidates[0], **_keys_evidence(rec)})
        )
    return out


def link_conflicts(
    linked: list[tuple[Record, int]], key_owners: dict[tuple[str, str], int], persons: dict[int, Person]
) -> list[Unmatched]:
    """Records already linked (C0.1: the link stays) whose current keys point to another person, or
    whose DOC or LICENSE now differs from their person's: each a LINK_CONFLICT for review."""
    out = []
    for rec, person_key in linked:
        if rec.invalid_reason or not rec.keys:
            continue
        person = persons.get(person_key, Person(person_key))
        others: dict[int, dict[str, str]] = {}
        for key_type, value in rec.keys.items():
            owner = key_owners.get((key_type, value))
            if owner is not None and owner != person_key:
                others.setdefault(owner, {})[key_type] = value
        conflicting = {}
        doc, lic = rec.keys.get("DOC"), rec.keys.get("LICENSE")
        if doc and person.doc and doc != person.doc:
            conflicting["DOC"] = {"record": doc, "person": person.doc}
        if lic and person.licenses and lic not in person.licenses:
            conflicting["LICENSE"] = {"record": lic, "person": sorted(person.licenses)}
        if others or conflicting:
            why = "its keys now point to another person" if others else "its keys now differ from its person's"
            out.append(Unmatched(rec, LINK_CONFLICT, {
                "why": f"linked record in conflict: {why} (the link stays; review it)",
                "linked_person": person_key,
                "candidates": [{"person_key": p, "matched_keys": ks} for p, ks in sorted(others.items())],
                "conflicting_keys": conflicting,
                **_keys_evidence(rec),
            }))
    return out


def _phone_only_names(rec: Record, person: Person) -> str | None:
    """None when the record's names agree with one of the person's linked records, else why not."""
    if not person.names:
        return "the person's records have no name"
    reasons = [name_mismatch(rec.given_name, rec.name, given, full) for given, full in person.names]
    if None in reasons:
        return None
    # the record's own missing name first, else the most telling difference
    for why in ("given name missing", "surname missing", "first given name differs", "paternal surname differs"):
        if why in reasons:
            return why
    return reasons[0]


def _keys_evidence(rec: Record) -> dict:
    ev: dict = {"record_keys": dict(rec.keys)}
    if rec.hot_keys:
        ev["hot_keys"] = rec.hot_keys
    if rec.problems:
        ev["problems"] = list(rec.problems)
    return ev
