"""``cabinet-leads explain LEAD_ID``: why a lead is where it is, readable by a person."""

from __future__ import annotations

import json

from psycopg.rows import dict_row

from cabinet_leads.db import read_sql

# An explanation is bounded whatever the data (a hub person with thousands of keys, a lead with a
# megabyte in a field): lists show at most MAX_ROWS entries and say how many more there are, raw
# text is cut at MAX_CHARS characters.
MAX_ROWS = 20
MAX_CHARS = 120
MAX_CANDIDATES = 10


def _rows(conn, name: str, **params) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(read_sql(f"explain/{name}.sql"), {"max_rows": MAX_ROWS, **params}).fetchall()


def _more(rows: list[dict]) -> int:
    """How many rows a capped query left out (its rows carry the uncapped ``total``)."""
    return max(0, int(rows[0]["total"]) - len(rows)) if rows else 0


def clip(value, limit: int = MAX_CHARS):
    """``value`` cut to ``limit`` characters, the cut marked; non-strings as they are."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "…[cut]"
    return value


def explain_lead(conn, lead_id: int) -> dict | None:
    """Everything known about one lead (``conn`` is a psycopg connection); None if it does not exist."""
    found = _rows(conn, "lead", lead_id=lead_id, max_chars=MAX_CHARS)
    if not found:
        return None
    lead = {k: clip(v) for k, v in found[0].items()}
    out: dict = {"lead": lead, "link": None, "unmatched": [], "person_keys": [], "driver_accounts": [],
                 "claims": [], "worklist": _rows(conn, "worklist", lead_id=lead_id),
                 "decisions": _rows(conn, "decisions", lead_id=lead_id)}
    links = _rows(conn, "link", lead_id=lead_id)
    out["unmatched"] = _rows(conn, "unmatched", lead_id=lead_id)
    out["conflict"] = None
    if links:
        out["link"] = links[0]
        # a LINK_CONFLICT recorded when its current keys were normalised (not one an edit since undid)
        latest = out["unmatched"][0] if out["unmatched"] else None
        if latest and latest["reason_code"] == "LINK_CONFLICT" and lead["normalised_at"] is not None \
                and latest["recorded_at"] >= lead["normalised_at"]:
            out["conflict"] = latest
    person = lead["person_key"]
    if person is not None:
        out["person_keys"] = _rows(conn, "person_keys", person_key=person)
        out["driver_accounts"] = _rows(conn, "driver_accounts", person_key=person, lead_date=lead["lead_date"])
        out["claims"] = _rows(conn, "claims", person_key=person)
    out["more"] = {name: _more(out[name]) for name in ("person_keys", "driver_accounts", "claims", "worklist", "decisions")}
    return out


def _evidence_lines(evidence: dict) -> list[str]:
    lines = []
    if "why" in evidence:
        lines.append(f"why: {evidence['why']}")
    for key in ("matched_keys", "attached_keys", "new_keys", "record_keys", "conflicting_keys"):
        if evidence.get(key):
            lines.append(f"{key.replace('_', ' ')}: " + ", ".join(f"{k}={v}" for k, v in evidence[key].items()))
    candidates = evidence.get("candidates", [])
    for cand in candidates[:MAX_CANDIDATES]:
        keys = ", ".join(f"{k}={v}" for k, v in cand.get("matched_keys", {}).items())
        lines.append(
            f"candidate person {cand['person_key']}: matched {keys or '-'}; person DOC {cand.get('doc') or '-'}; "
            f"name similarity {cand.get('name_similarity')}"
        )
    if len(candidates) > MAX_CANDIDATES:
        lines.append(f"... and {len(candidates) - MAX_CANDIDATES} more candidates")
    if evidence.get("hot_keys"):
        lines.append("hot keys (shared by records of different people, never linked through): " + ", ".join(
            f"{k}={h['value']} ({h['records']} records, {h['given_names']} given names, {h['docs']} DOCs)"
            for k, h in evidence["hot_keys"].items()))
    if evidence.get("problems"):
        lines.append("rejected fields: " + "; ".join(clip(p) for p in evidence["problems"]))
    if evidence.get("invalid"):
        lines.append(f"invalid data: {clip(evidence['invalid'], 300)}")
    return lines


def format_explanation(x: dict) -> str:
    lead = x["lead"]
    name = " ".join(p for p in (lead["first_name"], lead["last_name"]) if p) or "(no name)"
    out = [
        f"lead {lead['lead_id']} ({lead['external_id'] or 'no external id'}), {name}",
        f"  created {lead['lead_created_at']:%Y-%m-%d %H:%M %Z}, lead date {lead['lead_date']} (Lima), "
        f"window {lead['lead_date']} .. +13 days"
        if lead["lead_created_at"] is not None
        else "  created: not a representable timestamp (no lead date, outside every window)",
        f"  stage: {lead['limbo_stage']}",
        f"  raw: phone={lead['phone']!r} document={lead['document_number']!r} "
        f"license={lead['license_number']!r} plate={lead['plate']!r}",
        f"  normalised: PHONE={lead['key_phone'] or '-'} DOC={lead['key_doc'] or '-'} "
        f"LICENSE={lead['key_license'] or '-'} plate={lead['key_plate'] or '-'}",
    ]
    if lead["problems"]:
        out.append("  rejected fields: " + "; ".join(lead["problems"]))
    if x["link"]:
        link = x["link"]
        out.append(
            f"  identity: person {link['person_key']} by {link['match_rule']} "
            f"({_link_origin(link)}, {link['linked_at']:%Y-%m-%d %H:%M})"
        )
        out += ["    " + line for line in _evidence_lines(link["evidence"])]
        conflict = x.get("conflict")
        if conflict:
            ev = conflict["evidence"]
            others = ", ".join(f"person {c['person_key']}" for c in ev.get("candidates", [])) or "none"
            out.append(f"  CONFLICT (snapshot {conflict['snapshot_date']}, run {conflict['run_id']}): the lead is "
                       f"linked to person {ev.get('linked_person')} but its current keys point to {others}; "
                       "the link stays until a reviewer decides")
            out += ["    " + line for line in _evidence_lines(ev)]
    elif x.get("decisions") and x["decisions"][0]["decision"] in ("dismiss", "unlink"):
        d = x["decisions"][0]
        done = "dismissed" if d["decision"] == "dismiss" else f"unlinked from person {d['person_before']}"
        out.append(f"  identity: not linked: {done} by hand (manual decision {d['decision_id']}); "
                   "the job leaves it to a reviewer")
    elif x["unmatched"]:
        u = x["unmatched"][0]
        out.append(f"  identity: not linked, {u['reason_code']} (snapshot {u['snapshot_date']}, run {u['run_id']})")
        out += ["    " + line for line in _evidence_lines(u["evidence"])]
    else:
        out.append("  identity: not linked; not examined yet (run `cabinet-leads reconcile`)")
    more = x.get("more", {})
    if x["person_keys"]:
        out.append("  person's strong keys: " + ", ".join(
            f"{k['key_type']}={k['key_value']} (from {k['source_table']} {clip(k['source_pk'])})"
            for k in x["person_keys"]) + _and_more(more.get("person_keys")))
    if lead["person_key"] is not None:
        if x["driver_accounts"]:
            total = len(x["driver_accounts"]) + more.get("driver_accounts", 0)
            out.append(f"  driver accounts ({total}), shown driver {clip(lead['driver_id'])}:")
            out += [f"    {clip(d['driver_id'])}: {d['trips_in_window']} trips in window, hired {d['hired_at']}, "
                    f"linked by {d['match_rule']}" for d in x["driver_accounts"]]
            if more.get("driver_accounts"):
                out.append(f"    ... and {more['driver_accounts']} more")
        else:
            out.append("  driver accounts: none")
        out.append(f"  trips in 14 days: {lead['trips_14d']}; milestones reached: "
                   f"{lead['milestones_reached'] or '-'}; unclaimed: {lead['milestones_unclaimed'] or '-'}")
        if x["claims"]:
            out.append("  claims: " + ", ".join(
                f"{c['milestone']} by {clip(c['driver_id'])} ({c['status'] or 'no status'})" for c in x["claims"])
                + _and_more(more.get("claims")))
    for w in x["worklist"]:
        state = f"resolved {w['resolved_at']:%Y-%m-%d} by {w['resolved_by_claim_id']}" if w["resolved_at"] else "OPEN"
        out.append(f"  worklist: milestone {w['milestone']} reached {w['reached_on']} on {clip(w['driver_id'])}: {state}")
    if more.get("worklist"):
        out.append(f"  worklist: ... and {more['worklist']} more")
    out += _decision_lines(x.get("decisions", []), more.get("decisions"))
    return "\n".join(out)


def _link_origin(link: dict) -> str:
    evidence = link["evidence"] if isinstance(link["evidence"], dict) else {}
    if link["run_id"] is None and "decision_id" in evidence:
        return f"manual decision {evidence['decision_id']}"
    return f"run {link['run_id']}"


def _decision_lines(decisions: list[dict], more: int | None) -> list[str]:
    """The manual decisions on the lead (cabinet_leads.review), newest first, with who and why."""
    out = []
    for d in decisions:
        persons = {"link": f" to person {d['person_after']}", "new_person": f": person {d['person_after']}",
                   "unlink": f" from person {d['person_before']}"}.get(d["decision"], "")
        out.append(f"  manual decision {d['decision_id']}: {d['decision']}{persons} by {clip(d['decided_by'])} "
                   f"({d['db_user']}) at {d['decided_at']:%Y-%m-%d %H:%M %Z}: {clip(d['why'], 300)}")
        for label, keys in (("keys attached", d["keys_attached"]), ("keys detached", d["keys_detached"]),
                            ("keys left in place", d["keys_not_attached"])):
            if keys:
                out.append(f"    {label}: " + ", ".join(
                    f"{k}={v['value']} ({v.get('why', '')})" if isinstance(v, dict) else f"{k}={v}"
                    for k, v in keys.items()))
    if more:
        out.append(f"  manual decisions: ... and {more} more")
    return out


def _and_more(n: int | None) -> str:
    return f" ... and {n} more" if n else ""


def to_json(x: dict) -> str:
    return json.dumps(x, default=str, indent=2)
