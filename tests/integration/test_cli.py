"""The command line as a user runs it: a real process, a real database, exit codes and stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def run_cli(*args: str, database_url: str | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "cabinet_leads", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_help_lists_the_commands():
    res = run_cli("--help")
    assert res.returncode == 0
    for command in ("migrate", "seed", "limbo", "audit", "stop"):
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
