"""Record keys: load the source records of a scope, normalise each once per change, store the keys
in ``canon.record_keys``.

This is the first phase of a range's work, in large chunks (one transaction of ``CHUNK`` records
each) and without the identity lock: normalisation and key storage of parallel ranges run in
parallel. A stored record awaits its identity decision (``identity_pending``) until the identity
phase (:mod:`cabinet_leads.engine.linking`) decides it, so a run that dies between the two phases
leaves its records to the next run. The identity phase loads its batch with :func:`load` too, and
normalises and stores whatever was edited upstream in between (rare), so its outcome never rests
on stale keys.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from cabinet_leads.engine.session import DRIVERS, LEADS, WorkSession, chunks, with_retries
from cabinet_leads.normalize import MAX_FIELD_LENGTH, normalize_record

FIELDS = ("first_name", "last_name", "phone", "document_number", "license_number", "plate")
CHUNK = 5000  # records loaded, normalised and stored per transaction
# After a phase that stored this many records (a cold run, a big backfill), the tables the identity
# phase reads are ANALYZEd, so its statements are planned against the data they will meet.
ANALYZE_AFTER = 20_000


@dataclass
class Row:
    """A loaded source record with its normalised keys."""

    source_pk: str
    updated_at: str  # the source's updated_at as PostgreSQL's text (any timestamp round-trips)
    keys: dict | None
    linked_person_key: int | None
    fingerprint: int | None = None  # of the fields the job uses (ops.lead_fingerprint / driver_fingerprint)
    # new or changed upstream since its identity was last decided: normalised by this load
    # (``stale``) or by the record-keys phase (stored, identity pending)
    renormalised: bool = False
    stale: bool = False  # normalised by this load: its keys must be stored


def load(session: WorkSession, conn: Connection, table: str, ids: Sequence, anchor: dt.datetime, *,
         stale_only: bool = False) -> list[Row]:
    """The records ``ids`` of ``table`` (only those whose stored keys are stale with ``stale_only``),
    with their keys: stored ones when fresh, else normalised now (``stale``). Inside the caller's
    transaction."""
    name = "reconcile/load_lead_batch" if table == LEADS else "reconcile/load_driver_batch"
    keys = [str(i) for i in ids]
    params = {"ids": keys if table == DRIVERS else list(ids), "keys": keys, "max_len": MAX_FIELD_LENGTH,
              "stale_only": stale_only}
    rows = []
    for r in session.run_file(conn, name, params):
        m = r._asdict()
        row = Row(m["source_pk"], m["updated_at"], None, m["linked_person_key"], m["fingerprint"],
                  renormalised=m["identity_pending"])
        if m["keys_fresh"]:
            row.keys = {
                "phone": m["key_phone"],
                "doc": m["key_doc"],
                "license": m["key_license"],
                "plate": m["key_plate"],
                "name_folded": m["name_folded"],
                "given_name": m["given_name"],
                "problems": list(m["problems"] or []),
                "invalid_reason": m["invalid_reason"],
            }
        else:
            row.keys = normalise_row(m, anchor)
            row.renormalised = row.stale = True
        rows.append(row)
    return rows


def store(session: WorkSession, conn: Connection, table: str, rows: Sequence[Row]) -> int:
    """Store the keys of ``rows`` (one statement; inside the caller's transaction); they then await
    their identity decision."""
    if not rows:
        return 0
    session.run_file(
        conn,
        "reconcile/upsert_record_keys",
        {
            "source_table": table,
            "source_pk": [r.source_pk for r in rows],
            "source_updated_at": [r.updated_at for r in rows],
            "source_fingerprint": [r.fingerprint for r in rows],
            "phone": [r.keys["phone"] for r in rows],
            "doc": [r.keys["doc"] for r in rows],
            "license": [r.keys["license"] for r in rows],
            "plate": [r.keys["plate"] for r in rows],
            "name_folded": [r.keys["name_folded"] for r in rows],
            "given_name": [r.keys["given_name"] for r in rows],
            "problems": [json.dumps(r.keys["problems"]) for r in rows],
            "invalid_reason": [r.keys["invalid_reason"] for r in rows],
        },
    )
    return len(rows)


def refresh(session: WorkSession, conn: Connection, table: str, ids: Sequence, anchor: dt.datetime, *,
            chunk: int = CHUNK) -> dict[str, int]:
    """The record-keys phase of a scope: normalise and store the keys of every record of ``ids``
    whose stored keys are stale, ``chunk`` records per transaction, no identity lock."""
    started = time.perf_counter()
    stored = 0
    for part in chunks(ids, chunk):
        def work(part=part) -> dict:
            with session.tx(conn):
                return {"record_keys_stored": store(session, conn, table, load(session, conn, table, part, anchor,
                                                                               stale_only=True))}
        stored += with_retries(work)["record_keys_stored"]
    if stored >= ANALYZE_AFTER:
        analyze(session, conn)
    session.timings.record_keys_s += time.perf_counter() - started
    return {"record_keys_stored": stored}


def analyze(session: WorkSession, conn: Connection) -> None:
    """Fresh statistics for the tables the identity phase reads (owner, or MAINTAIN on PostgreSQL 17+;
    otherwise the server skips a table with a warning and the statements still hold: see their SQL)."""
    with session.tx(conn):
        session.run_file(conn, "reconcile/analyze_identity_tables")


def invalid_reason(m, anchor: dt.datetime) -> str | None:
    """Why a loaded record cannot be processed (its columns named), or None. The load statement
    decided in SQL what Python can hold: ``unrepresentable`` names timestamp columns outside years
    1-9999, ``field_lengths`` gives the true lengths of the fields it cut to ``MAX_FIELD_LENGTH``."""
    if m["unrepresentable"]:
        return f"{m['unrepresentable']}: not a representable timestamp (supported: years 1 to 9999)"
    for name, length in zip(FIELDS, m["field_lengths"], strict=True):
        if length is not None and length > MAX_FIELD_LENGTH:
            return f"{name} is {length} characters long (limit {MAX_FIELD_LENGTH})"
    created = m["lead_created_at"]
    if created is not None and created > anchor + dt.timedelta(days=1):
        return f"lead_created_at {created.isoformat()} is in the future"
    return None


_NO_KEYS = {"phone": None, "doc": None, "license": None, "plate": None, "name_folded": "", "given_name": "",
            "problems": []}


def normalise_row(m, anchor: dt.datetime) -> dict:
    """Normalised keys of one raw record; a record that cannot be processed gets an invalid_reason
    and is not normalised at all (no work, nothing stored beyond the reason)."""
    invalid = invalid_reason(m, anchor)
    if invalid:
        return {**_NO_KEYS, "invalid_reason": invalid}
    try:
        nk = normalize_record(
            m["first_name"], m["last_name"], m["phone"], m["document_number"], m["license_number"], m["plate"]
        )
    except Exception as exc:  # one bad record never sinks its batch
        return {**_NO_KEYS, "invalid_reason": f"normalisation failed: {type(exc).__name__}: {exc}"[:MAX_FIELD_LENGTH]}
    return {
        "phone": nk.phone,
        "doc": nk.doc,
        "license": nk.license,
        "plate": nk.plate,
        "name_folded": nk.name,
        "given_name": nk.given_name,
        "problems": list(nk.problems),
        "invalid_reason": nk.invalid_reason,
    }
