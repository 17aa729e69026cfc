"""``cabinet-leads explain LEAD_ID``: why a lead is where it is, readable by a person."""

from __future__ import annotations

import json

from psycopg.rows import dict_row

from cabinet_leads.db import read_sql


def _rows(conn, name: str, **params) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(read_sql(f"explain/{name}.sql"), params).fetchall()


def explain_lead(conn, lead_id: int) -> dict | None:
    """Everything known about one lead (``conn`` is a psycopg connection); None if it does not exist."""
    found = _rows(conn, "lead", lead_id=lead_id)
    if not found:
        return None
    lead = found[0]
    out: dict = {"lead": lead, "link": None, "unmatched": [], "person_keys": [], "driver_accounts": [],
                 "claims": [], "worklist": _rows(conn, "worklist", lead_id=lead_id)}
    links = _rows(conn, "link", lead_id=lead_id)
    if links:
        out["link"] = links[0]
    else:
        out["unmatched"] = _rows(conn, "unmatched", lead_id=lead_id)
    person = lead["person_key"]
    if person is not None:
        out["person_keys"] = _rows(conn, "person_keys", person_key=person)
        out["driver_accounts"] = _rows(conn, "driver_accounts", person_key=person, lead_date=lead["lead_date"])
        out["claims"] = _rows(conn, "claims", person_key=person)
    return out


def _evidence_lines(evidence: dict) -> list[str]:
    lines = []
    if "why" in evidence:
        lines.append(f"why: {evidence['why']}")
    for key in ("matched_keys", "attached_keys", "new_keys", "record_keys", "conflicting_keys"):
        if evidence.get(key):
            lines.append(f"{key.replace('_', ' ')}: " + ", ".join(f"{k}={v}" for k, v in evidence[key].items()))
    for cand in evidence.get("candidates", []):
        keys = ", ".join(f"{k}={v}" for k, v in cand.get("matched_keys", {}).items())
        lines.append(
            f"candidate person {cand['person_key']}: matched {keys or '-'}; person DOC {cand.get('doc') or '-'}; "
            f"name similarity {cand.get('name_similarity')}"
        )
    if evidence.get("problems"):
        lines.append("rejected fields: " + "; ".join(evidence["problems"]))
    if evidence.get("invalid"):
        lines.append(f"invalid data: {evidence['invalid']}")
    return lines


def format_explanation(x: dict) -> str:
    lead = x["lead"]
    name = " ".join(p for p in (lead["first_name"], lead["last_name"]) if p) or "(no name)"
    out = [
        f"lead {lead['lead_id']} ({lead['external_id'] or 'no external id'}), {name}",
        f"  created {lead['lead_created_at']:%Y-%m-%d %H:%M %Z}, lead date {lead['lead_date']} (Lima), "
        f"window {lead['lead_date']} .. +13 days",
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
            f"(run {link['run_id']}, {link['linked_at']:%Y-%m-%d %H:%M})"
        )
        out += ["    " + line for line in _evidence_lines(link["evidence"])]
    elif x["unmatched"]:
        u = x["unmatched"][0]
        out.append(f"  identity: not linked, {u['reason_code']} (snapshot {u['snapshot_date']}, run {u['run_id']})")
        out += ["    " + line for line in _evidence_lines(u["evidence"])]
    else:
        out.append("  identity: not linked; not examined yet (run `cabinet-leads reconcile`)")
    if x["person_keys"]:
        out.append("  person's strong keys: " + ", ".join(
            f"{k['key_type']}={k['key_value']} (from {k['source_table']} {k['source_pk']})" for k in x["person_keys"]))
    if lead["person_key"] is not None:
        if x["driver_accounts"]:
            out.append(f"  driver accounts ({len(x['driver_accounts'])}), shown driver {lead['driver_id']}:")
            out += [f"    {d['driver_id']}: {d['trips_in_window']} trips in window, hired {d['hired_at']}, "
                    f"linked by {d['match_rule']}" for d in x["driver_accounts"]]
        else:
            out.append("  driver accounts: none")
        out.append(f"  trips in 14 days: {lead['trips_14d']}; milestones reached: "
                   f"{lead['milestones_reached'] or '-'}; unclaimed: {lead['milestones_unclaimed'] or '-'}")
        if x["claims"]:
            out.append("  claims: " + ", ".join(
                f"{c['milestone']} by {c['driver_id']} ({c['status'] or 'no status'})" for c in x["claims"]))
    for w in x["worklist"]:
        state = f"resolved {w['resolved_at']:%Y-%m-%d} by {w['resolved_by_claim_id']}" if w["resolved_at"] else "OPEN"
        out.append(f"  worklist: milestone {w['milestone']} reached {w['reached_on']} on {w['driver_id']}: {state}")
    return "\n".join(out)


def to_json(x: dict) -> str:
    return json.dumps(x, default=str, indent=2)
