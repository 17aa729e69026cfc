"""Least privilege (V009): the job runs whole as cabinet_leads_job and can do nothing else; the
dashboard reads as cabinet_leads_reader and can write nothing. Real logins on the real server."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import psycopg
import pytest
from psycopg import sql

from cabinet_leads import ReconcileCabinetLeadsPipeline, db, explain, funnel, report, synthetic
from cabinet_leads.pipeline import EXTRA_KEYS, STAT_KEYS
from tests.conftest import JOB_LOGIN, READER_LOGIN, ensure_login, fresh_database, with_user

ANCHOR = dt.datetime(2025, 6, 2, 17, 0, tzinfo=dt.UTC)
SOURCES = ("module_ct_cabinet_leads", "drivers", "driver_daily_trips", "milestone_claims")
ADMIN_LOGIN = "cabinet_leads_test_admin"  # a login in neither group: the manual-action administrator
# The job's only deletes: marks it takes, and the kept state of leads deleted upstream (V011).
JOB_DELETES = (sql.Identifier("ops", "lead_marks"), sql.Identifier("ops", "lead_state"))
COMPARED = tuple(k for k in STAT_KEYS + EXTRA_KEYS if k != "retries")


def reconcile(url: str) -> list[dict]:
    """Two runs of the whole job on `url` (whoever its user is)."""
    engine = db.make_engine(url)
    try:
        pipeline = ReconcileCabinetLeadsPipeline(engine, batch_size=100)
        return [pipeline.run_reconcile(anchor=ANCHOR), pipeline.run_reconcile(anchor=ANCHOR)]
    finally:
        engine.dispose()


def links(url: str) -> set[tuple]:
    with psycopg.connect(url) as conn:
        return set(conn.execute("select source_table, source_pk, person_key, match_rule from canon.identity_links"))


def refused(url: str, *statements: str | sql.Composable, error=psycopg.errors.InsufficientPrivilege, match: str | None = None):
    """Each statement, in its own transaction, fails with `error` (rolled back)."""
    with psycopg.connect(url) as conn:
        for statement in statements:
            with pytest.raises(error, match=match):
                conn.execute(statement)
            conn.rollback()


def test_whole_reconcile_runs_as_the_job_role_like_the_owner(server_url, template_url, db_url, job_url):
    synthetic.seed(db_url, leads=600, seed=3, anchor=ANCHOR.date())
    with fresh_database(server_url, template_url) as owner_url:
        synthetic.seed(owner_url, leads=600, seed=3, anchor=ANCHOR.date())
        as_owner = reconcile(owner_url)
        owner_links = links(owner_url)
    with psycopg.connect(job_url) as conn:
        assert conn.execute("select current_user").fetchone()[0] == JOB_LOGIN
    as_job = reconcile(job_url)

    first, second = as_job
    assert first["newly_linked"] > 400 and first["processed"] == 600
    for key in COMPARED:
        assert [s[key] for s in as_job] == [s[key] for s in as_owner], key
    assert (second["newly_linked"], second["new_persons"]) == (0, 0)
    assert links(db_url) == owner_links
    with psycopg.connect(db_url) as conn:
        runs = conn.execute("select status from ops.reconcile_runs order by run_id").fetchall()
    assert runs == [("success",), ("success",)]


@pytest.fixture
def linked_db(db_url):
    """A small reconciled data set (as the owner): links exist to be attacked."""
    synthetic.seed(db_url, leads=120, seed=5, anchor=ANCHOR.date())
    reconcile(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("create table public.payroll (driver_id text, salary numeric)")
        conn.execute("insert into public.payroll values ('D1', 1000)")
        assert conn.execute("select count(*) from canon.identity_links").fetchone()[0] > 100
    return db_url


def derived_tables(url: str) -> list[sql.Identifier]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select schemaname, tablename from pg_tables where schemaname in ('canon', 'ops') order by 1, 2"
        ).fetchall()
    return [sql.Identifier(schema, table) for schema, table in rows]


def test_job_role_can_neither_delete_nor_rewrite_nor_read_beyond_its_sources(linked_db, job_url):
    before = links(linked_db)
    tables = derived_tables(linked_db)
    assert sql.Identifier("canon", "identity_links") in tables and sql.Identifier("ops", "schema_migrations") in tables
    refused(
        job_url,
        "truncate canon.identity_links",
        "delete from canon.identity_links",
        "update canon.identity_links set match_rule = 'EDITED'",
        *[sql.SQL("delete from {}").format(t) for t in tables if t not in JOB_DELETES],
        *[sql.SQL("truncate {}").format(t) for t in tables],
        "select * from public.payroll",
        "insert into public.module_ct_cabinet_leads (lead_created_at) values (now())",
        "update public.drivers set phone = null",
        "delete from public.milestone_claims",
        "truncate public.driver_daily_trips",
        "update ops.milestone_config set active = false",
        "insert into ops.schema_migrations (version, name, checksum) values ('999', 'x', 'x')",
        "insert into canon.identity_link_audit (operation, reason, old_row) values ('DELETE', 'x', '{}')",
        "create table canon.mine (id int)",
        "create table ops.mine (id int)",
        "create function canon.mine() returns int language sql as 'select 1'",
        "alter table canon.identity_links disable trigger identity_links_guard",
        "drop trigger identity_links_guard on canon.identity_links",
        "set session_replication_role = replica",
    )
    # declaring a manual action changes nothing for the job
    with psycopg.connect(job_url) as conn:
        for statement in ("delete from canon.identity_links", "update canon.identity_links set person_key = 1"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with conn.transaction():
                    conn.execute("set local cabinet_leads.manual_action = 'x'")
                    conn.execute(statement)
    # what it may do, it can: read the sources and the derived tables, add a link
    with psycopg.connect(job_url) as conn:
        for table in SOURCES:
            conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier("public", table))).fetchone()
        conn.execute("select count(*) from ops.v_cabinet_leads_limbo").fetchone()
        conn.execute("select * from ops.milestone_config").fetchall()
        conn.execute(
            "insert into canon.identity_links (source_table, source_pk, person_key, match_rule, evidence) "
            "select 'drivers', 'NEW-ACCOUNT', person_key, 'TEST', '{}' from canon.identity_registry limit 1"
        )
        conn.rollback()
    assert links(linked_db) == before


def test_the_guard_refuses_the_manual_action_to_job_members_only(linked_db, job_url, server_url, job_login):
    """Even given DELETE/UPDATE by mistake, a member of cabinet_leads_job cannot declare the manual
    action (the guard refuses it); an administrator outside the group and the owner can, audited."""
    admin = ensure_login(server_url, ADMIN_LOGIN, None)
    with psycopg.connect(linked_db, autocommit=True) as owner:
        owner.execute(f'grant delete, update on canon.identity_links to "{job_login}", "{admin}"')
        owner.execute(f'grant select, insert on canon.identity_link_audit to "{admin}"')
        owner.execute(f'grant usage on schema canon to "{admin}"')
        owner.execute(f'grant select on canon.identity_links to "{admin}"')
        lead_links = [
            r[0]
            for r in owner.execute(
                "select source_pk from canon.identity_links where source_table = 'drivers' order by 1 limit 3"
            )
        ]

    with psycopg.connect(job_url) as conn:
        for statement in ("delete from canon.identity_links", "update canon.identity_links set match_rule = 'X'"):
            with pytest.raises(psycopg.errors.RaiseException, match="cabinet_leads_job"):
                with conn.transaction():
                    conn.execute("set local cabinet_leads.manual_action = 'OPS-9: I am the job'")
                    conn.execute(statement)
    # the owner cannot lend the job its rights by `set role` either: the current user is checked
    with psycopg.connect(linked_db) as owner:
        with pytest.raises(psycopg.errors.RaiseException, match="cabinet_leads_job"):
            with owner.transaction():
                owner.execute(f'set local role "{job_login}"')
                owner.execute("set local cabinet_leads.manual_action = 'OPS-9'")
                owner.execute("delete from canon.identity_links")

    # without a declaration, nobody rewrites a link
    refused(with_user(linked_db, admin), "delete from canon.identity_links",
            error=psycopg.errors.RaiseException, match="C0.1")
    # with one, the administrator and the owner (a superuser) can, audited with their names
    with psycopg.connect(with_user(linked_db, admin)) as conn, conn.transaction():
        conn.execute("set local cabinet_leads.manual_action = 'OPS-10: split a wrong merge'")
        conn.execute("delete from canon.identity_links where source_table = 'drivers' and source_pk = %s",
                     (lead_links[0],))
    with psycopg.connect(linked_db) as owner:
        with owner.transaction():
            owner.execute("set local cabinet_leads.manual_action = 'OPS-11: fix by the owner'")
            owner.execute("update canon.identity_links set match_rule = 'MANUAL' "
                          "where source_table = 'drivers' and source_pk = %s", (lead_links[1],))
        audit = owner.execute(
            "select operation, reason, db_user, old_row ->> 'source_pk' from canon.identity_link_audit order by 1"
        ).fetchall()
        owner_name = owner.execute("select current_user").fetchone()[0]
    assert audit == [
        ("DELETE", "OPS-10: split a wrong merge", admin, lead_links[0]),
        ("UPDATE", "OPS-11: fix by the owner", owner_name, lead_links[1]),
    ]


def test_grants_are_least_privilege_and_cover_later_migrations(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        def privileges(role: str, schema: str) -> dict[str, set[str]]:
            rows = conn.execute(
                "select format('%%I.%%I', n.nspname, c.relname), p.privilege_type "
                "from pg_class as c join pg_namespace as n on c.relnamespace = n.oid "
                "cross join lateral aclexplode(c.relacl) as p "
                "where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'm', 'S') "
                "and p.grantee = %s::regrole",
                (schema, role),
            ).fetchall()
            out: dict[str, set[str]] = {}
            for name, privilege in rows:
                out.setdefault(name, set()).add(privilege)
            return out

        reading = {f"public.{t}": {"SELECT"} for t in SOURCES}
        for role in ("cabinet_leads_job", "cabinet_leads_reader"):
            assert privileges(role, "public") == reading, role
        job = privileges("cabinet_leads_job", "canon") | privileges("cabinet_leads_job", "ops")
        reader = privileges("cabinet_leads_reader", "canon") | privileges("cabinet_leads_reader", "ops")
        assert not any({"TRUNCATE", "REFERENCES", "TRIGGER"} & p for p in job.values())
        # MAINTAIN (PostgreSQL 17+): ANALYZE of the tables a big run fills (V015), nothing else
        maintained = {t for t, p in job.items() if "MAINTAIN" in p}
        if conn.execute("select current_setting('server_version_num')::integer").fetchone()[0] >= 170000:
            assert maintained == {"canon.identity_links", "canon.record_keys", "canon.person_keys",
                                  "canon.identity_registry", "ops.lead_state", "ops.milestone_claim_worklist",
                                  "ops.lead_marks"}
        else:
            assert maintained == set()
        job = {t: p - {"MAINTAIN"} for t, p in job.items()}
        # DELETE only on the kept funnel state's own work tables (marks taken; state of deleted leads)
        assert {t for t, p in job.items() if "DELETE" in p} == {"ops.lead_marks", "ops.lead_state"}
        assert job["ops.schema_views"] == {"SELECT"}
        assert job["canon.identity_links"] == {"SELECT", "INSERT"}
        assert "canon.identity_link_audit" not in job
        assert job["ops.milestone_config"] == job["ops.schema_migrations"] == {"SELECT"}
        assert job["canon.identity_registry_person_key_seq"] == {"USAGE"}
        for table in ("canon.record_keys", "ops.reconcile_runs", "ops.person_inputs", "ops.weekly_funnel_snapshots"):
            assert job[table] == {"SELECT", "INSERT", "UPDATE"}, table
        assert job["ops.lead_state"] == job["ops.lead_marks"] == {"SELECT", "INSERT", "UPDATE", "DELETE"}
        for view in ("ops.v_cabinet_leads_limbo", "ops.v_cabinet_14d_funnel_audit_weekly",
                     "ops.v_cabinet_lead_milestones"):
            assert job[view] == {"SELECT"}, view
        # an automatically updatable view writes with its owner's rights: none may be writable by
        # the roles (a later migration that adds one revokes INSERT/UPDATE from cabinet_leads_job)
        updatable = {r[0] for r in conn.execute(
            "select format('%I.%I', table_schema, table_name) from information_schema.views "
            "where table_schema in ('canon', 'ops') and (is_updatable = 'YES' or is_insertable_into = 'YES')"
        )}
        for view in updatable:
            assert not {"INSERT", "UPDATE", "DELETE"} & (job.get(view, set()) | reader.get(view, set())), view
        assert all(p == {"SELECT"} for name, p in reader.items() if not name.endswith("_seq"))
        assert {"ops.v_cabinet_leads_limbo", "canon.identity_links", "ops.milestone_claim_worklist"} <= set(reader)
        for role in ("cabinet_leads_job", "cabinet_leads_reader"):
            for schema in ("public", "canon", "ops"):
                assert conn.execute("select has_schema_privilege(%s, %s, 'CREATE')", (role, schema)).fetchone() == (
                    False,
                ), (role, schema)
            assert conn.execute("select rolcanlogin or rolsuper from pg_roles where rolname = %s",
                                (role,)).fetchone() == (False,)

        # a later migration of the same owner: its table is the job's to write, the reader's to read
        conn.execute("create table ops.later_table (id bigint generated by default as identity primary key)")
        later = privileges("cabinet_leads_job", "ops")
        assert later["ops.later_table"] == {"SELECT", "INSERT", "UPDATE"}
        assert later["ops.later_table_id_seq"] == {"USAGE"}
        assert privileges("cabinet_leads_reader", "ops")["ops.later_table"] == {"SELECT"}


def cli(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cabinet_leads", *args], capture_output=True, text=True,
                          env=dict(os.environ, DATABASE_URL=url), timeout=120)


def test_cli_commands_as_the_roles(db_url, job_url, reader_url, tmp_path):
    """`reconcile` (dry and real) and `health` as the job; the read commands as the reader; what a
    role may not do ends in one clear line."""
    synthetic.seed(db_url, leads=80, seed=9)
    dry = cli(job_url, "reconcile", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    real = cli(job_url, "reconcile", "--json")
    assert real.returncode == 0, real.stderr
    assert json.loads(real.stdout)["newly_linked"] > 0
    assert json.loads(dry.stdout)["newly_linked"] == json.loads(real.stdout)["newly_linked"]
    health = cli(job_url, "health")
    assert health.returncode == 0, health.stdout + health.stderr

    for args in (("limbo", "--json"), ("explain", "1"), ("report", "--html", str(tmp_path / "report.html"))):
        res = cli(reader_url, *args)
        assert res.returncode == 0, (args, res.stderr)

    for url, args in ((reader_url, ("reconcile",)), (job_url, ("migrate",))):
        res = cli(url, *args)
        assert res.returncode == 1, (args, res.stdout)
        assert res.stderr.startswith("cabinet-leads: error: permission denied") and res.stderr.count("\n") == 1, (
            args, res.stderr)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select status, dry_run from ops.reconcile_runs order by run_id").fetchall() == [
            ("success", True), ("success", False)]


# ------------------------------------------------------------------ the dashboard as cabinet_leads_reader


@pytest.fixture(scope="module")
def reader_seeded(seeded, reader_login):
    """The shared reconciled data set, seen through the reader's login."""
    url = with_user(seeded.url, reader_login)
    engine = db.make_engine(url)
    yield url, engine
    engine.dispose()


def test_dashboard_and_explain_work_as_the_reader(seeded, reader_seeded):
    url, engine = reader_seeded
    with engine.connect() as conn:
        assert conn.exec_driver_sql("select current_user").scalar() == READER_LOGIN
        data = report.collect(conn)
        results = report.search(conn, str(seeded.hostile_id))
        csv_text = report.worklist_csv(conn)
        distribution = funnel.limbo_distribution(conn)
        weeks = funnel.weekly_audit(conn, weeks=4)
    with seeded.engine.connect() as conn:
        assert data["distribution"] == report.collect(conn)["distribution"]
    assert data["worklist_open"] > 0 and len(data["runs"]) == 3 and distribution and weeks
    assert len(results) == 1 and csv_text.count("\n") > 1
    page = report.render_html(data, search_html=report.render_search(str(seeded.hostile_id), results))
    assert page.count('<g class="week"') == 12

    with psycopg.connect(url) as conn:
        linked = conn.execute(
            "select source_pk::bigint from canon.identity_links "
            "where source_table = 'module_ct_cabinet_leads' order by 1 limit 1"
        ).fetchone()[0]
        found = explain.explain_lead(conn, linked)
        unlinked = explain.explain_lead(conn, seeded.hostile_id)
    assert found["link"] is not None and found["person_keys"] and found["driver_accounts"]
    assert unlinked["lead"]["lead_id"] == seeded.hostile_id


def test_reader_writes_nothing(reader_seeded):
    url, _engine = reader_seeded
    refused(
        url,
        "insert into ops.reconcile_runs (triggered_by) values ('reader')",
        "update ops.reconcile_runs set status = 'failed'",
        "delete from ops.limbo_snapshots",
        "update canon.identity_links set match_rule = 'X'",
        "delete from canon.identity_links",
        "truncate canon.record_keys",
        "insert into public.module_ct_cabinet_leads (lead_created_at) values (now())",
        "update public.drivers set phone = null",
        "select nextval('canon.identity_registry_person_key_seq')",
        "create table ops.mine (id int)",
    )


def test_the_job_role_refreshes_the_statistics_of_the_tables_a_big_run_fills(linked_db, job_url):
    """V015: before recomputing a big backlog the job analyses the tables it filled (no plan cliff on
    stale estimates); the job role may do so without owning them (MAINTAIN, PostgreSQL 17+)."""
    notices: list[str] = []
    with psycopg.connect(job_url, autocommit=True) as conn:
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary))
        conn.execute(db.read_sql("funnel_state/analyze_written.sql"))
    assert notices == []
    with psycopg.connect(linked_db) as conn:
        estimated, actual = conn.execute(
            "select c.reltuples::bigint, (select count(*) from canon.identity_links) from pg_class as c "
            "where c.oid = 'canon.identity_links'::regclass"
        ).fetchone()
    assert estimated == actual > 100
