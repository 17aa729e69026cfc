"""The command line as a user runs it: a real process, a real database, exit codes and stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def run_cli(
    *args: str, database_url: str | None = None, timeout: int = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env or {})}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "cabinet_leads", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_help_lists_the_commands():
    res = run_cli("--help")
    assert res.returncode == 0
    for command in ("migrate", "seed", "reconcile", "limbo", "audit", "explain", "health", "stop"):
        assert f"    {command} " in res.stdout


@pytest.mark.parametrize(
    "args",
    [("bogus",), ("limbo", "--recent-days", "0"), ("seed", "--leads", "many"), ("audit", "--weeks", "-1"), ()],
)
def test_bad_arguments_give_one_line_and_exit_2(args):
    res = run_cli(*args)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0], res.stderr


def test_unreachable_database_gives_one_line(tmp_path):
    res = run_cli("limbo", database_url=f"postgresql://nobody@/nowhere?host={tmp_path}")
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cabinet-leads: error: cannot reach the database"), res.stderr


def test_migrate_limbo_audit_json(db_url, pg):
    assert run_cli("migrate", database_url=db_url).stdout.strip() == "schema up to date"
    pg.execute(
        "insert into public.module_ct_cabinet_leads (external_id, lead_created_at) "
        "values ('a', now() - interval '2 days'), ('b', now() - interval '60 days')"
    )
    limbo = json.loads(run_cli("limbo", "--json", database_url=db_url).stdout)
    assert limbo[0] == {"limbo_stage": "NO_IDENTITY", "lead_count": 2, "recent_count": 1}
    assert [r["limbo_stage"] for r in limbo] == ["NO_IDENTITY", "NO_DRIVER", "NO_TRIPS_14D", "TRIPS_NO_CLAIM", "OK"]
    audit = json.loads(run_cli("audit", "--json", "--weeks", "52", database_url=db_url).stdout)
    assert sum(r["leads_total"] for r in audit) == 2
    assert sum(r["limbo_no_identity"] for r in audit) == 2
    text = run_cli("limbo", database_url=db_url).stdout
    assert "NO_IDENTITY" in text and "total" in text


def test_stop_refuses_when_database_url_is_set(db_url):
    res = run_cli("stop", database_url=db_url)
    assert res.returncode == 2 and "DATABASE_URL is set" in res.stderr


def test_reconcile_explain_health(db_url, pg):
    pg.execute(
        "insert into public.module_ct_cabinet_leads (id, external_id, lead_created_at, first_name, last_name, phone, "
        "document_number) values (1, 'a', now() - interval '1 day', 'José', 'Ñáñez Peña', '+51 984 217 563', "
        "'45873216'), (2, 'b', now() - interval '1 day', 'Ana', 'Ruiz', '45873216', '')"
    )
    health = run_cli("health", database_url=db_url)
    assert health.returncode == 1 and "no successful reconcile run" in health.stdout
    dry = json.loads(run_cli("reconcile", "--dry-run", "--json", database_url=db_url).stdout)
    assert dry["newly_linked"] == 1 and dry["still_no_candidates"] == 1
    assert pg.execute("select count(*) from canon.identity_links").fetchone()[0] == 0
    # the dry run is recorded as such, and does not count as a successful run for health
    assert pg.execute("select dry_run, status from ops.reconcile_runs").fetchall() == [(True, "success")]
    assert run_cli("health", database_url=db_url).returncode == 1
    res = run_cli("reconcile", "--recent-days", "7", "--limbo-stages", "NO_IDENTITY,NO_DRIVER", database_url=db_url)
    assert res.returncode == 0, res.stderr
    assert "newly_linked" in res.stdout and "still_no_candidates" in res.stdout
    assert pg.execute("select count(*) from canon.identity_links").fetchone()[0] == 1
    explained = run_cli("explain", "1", database_url=db_url).stdout
    assert "stage: NO_DRIVER" in explained and "NEW_IDENTITY" in explained and "DNI:45873216" in explained
    unlinked = run_cli("explain", "2", database_url=db_url).stdout
    assert "NO_CANDIDATES" in unlinked and "rejected fields" in unlinked
    assert json.loads(run_cli("explain", "1", "--json", database_url=db_url).stdout)["link"]["match_rule"] == "NEW_IDENTITY"
    missing = run_cli("explain", "999", database_url=db_url)
    assert missing.returncode == 1 and missing.stderr.strip() == "cabinet-leads: error: no lead with id 999"
    assert run_cli("health", "--max-age", "2h", database_url=db_url).returncode == 0
    pg.execute("update ops.reconcile_runs set finished_at = now() - interval '3 hours'")
    stale = run_cli("health", "--json", database_url=db_url)
    assert stale.returncode == 1 and json.loads(stale.stdout)["healthy"] is False


@pytest.mark.parametrize(
    "args", [("reconcile", "--limbo-stages", "OK"), ("reconcile", "--batch-size", "10"), ("health", "--max-age", "soon")]
)
def test_reconcile_and_health_reject_bad_values(args):
    res = run_cli(*args)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
