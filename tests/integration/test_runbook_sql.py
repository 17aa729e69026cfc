"""The runbook's own SQL (docs/runbook-...md, a byte-for-byte copy of the original) runs unchanged."""

from __future__ import annotations

import re

import pytest

from cabinet_leads import db

RUNBOOK = db.PROJECT_ROOT / "docs" / "runbook-reconcile-cabinet-leads-pipeline.md"
ORIGINAL = db.PROJECT_ROOT.parent / "shared" / "seed" / RUNBOOK.name


def runbook_statements() -> list[str]:
    blocks = re.findall(r"```sql\n(.*?)```", RUNBOOK.read_text(encoding="utf-8"), flags=re.S)
    statements = []
    for block in blocks:
        statements += [s.strip() for s in block.split(";") if re.sub(r"--[^\n]*", "", s).strip()]
    return statements


def test_runbook_has_the_five_statements():
    stmts = runbook_statements()
    assert len(stmts) == 5
    assert sum("ops.v_cabinet_leads_limbo" in s for s in stmts) == 3
    assert sum("ops.v_cabinet_14d_funnel_audit_weekly" in s for s in stmts) == 1
    assert sum("canon.identity_unmatched" in s for s in stmts) == 1
    if ORIGINAL.exists():  # beside a checkout (as in CI) the copy must equal the original
        assert RUNBOOK.read_bytes() == ORIGINAL.read_bytes()


@pytest.mark.parametrize("index", range(5))
def test_runbook_statement_runs_unchanged(pg, index):
    pg.execute(
        "insert into public.module_ct_cabinet_leads (external_id, lead_created_at) values "
        "('a', now()), ('b', '2026-01-06 12:00+00'), ('c', '2026-01-05 12:00+00')"
    )
    pg.execute(
        "insert into canon.identity_unmatched (source_table, source_pk, reason_code, snapshot_date, evidence) "
        "values ('module_ct_cabinet_leads', '1', 'NO_CANDIDATES', current_date, '{}')"
    )
    rows = pg.execute(runbook_statements()[index]).fetchall()
    assert rows, "every runbook query returns rows on this data"
    if index == 2:  # count of leads after 2026-01-05 (Lima dates): 'a' and 'b'
        assert rows == [(2,)]
