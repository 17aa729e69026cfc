"""Migrations: apply on an empty database, re-apply as a no-op, roll back a failed one whole."""

from __future__ import annotations

import psycopg
import pytest

from cabinet_leads import db
from tests.conftest import drop_database, with_dbname


@pytest.fixture
def empty_db(server_url):
    name = "t_empty_migrate"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"')
    url = with_dbname(server_url, name)
    yield url
    drop_database(server_url, url)


def test_apply_on_empty_database_then_noop(empty_db):
    versions = [m.version for m in db.list_migrations()]
    assert db.migrate(empty_db) == versions
    assert db.migrate(empty_db) == []
    with psycopg.connect(empty_db) as conn:
        recorded = [r[0] for r in conn.execute("select version from ops.schema_migrations order by 1")]
        assert recorded == versions
        for view in ("ops.v_cabinet_leads_limbo", "ops.v_cabinet_14d_funnel_audit_weekly"):
            assert conn.execute("select to_regclass(%s)", (view,)).fetchone()[0] is not None


def test_failed_migration_rolls_back_whole(empty_db, tmp_path):
    (tmp_path / "V001__ok.sql").write_text("create table public.first_ok (id int);")
    (tmp_path / "V002__broken.sql").write_text(
        "create table public.half_done (id int);\ninsert into public.half_done values (1);\nselect nope from nowhere;"
    )
    with pytest.raises(psycopg.errors.UndefinedTable):
        db.migrate(empty_db, directory=tmp_path)
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("select to_regclass('public.first_ok')").fetchone()[0] is not None
        assert conn.execute("select to_regclass('public.half_done')").fetchone()[0] is None
        assert [r[0] for r in conn.execute("select version from ops.schema_migrations")] == ["001"]
    (tmp_path / "V002__broken.sql").write_text("create table public.half_done (id int);")
    assert db.migrate(empty_db, directory=tmp_path) == ["002"]


def test_changed_applied_migration_is_refused(empty_db, tmp_path):
    path = tmp_path / "V001__one.sql"
    path.write_text("create table public.one (id int);")
    db.migrate(empty_db, directory=tmp_path)
    path.write_text("create table public.one (id bigint);")
    with pytest.raises(db.DatabaseError, match="changed after it was applied"):
        db.migrate(empty_db, directory=tmp_path)


def test_c0_constraints_are_in_the_database(pg):
    pg.execute("insert into canon.identity_registry (person_key) values (1), (2)")
    pg.execute(
        "insert into canon.person_keys (key_type, key_value, person_key, source_table, source_pk) "
        "values ('PHONE', '+51987654321', 1, 'drivers', 'D1'), ('DOC', 'DNI:12345678', 1, 'drivers', 'D1')"
    )
    # C0.2: a strong key value belongs to at most one person.
    with pytest.raises(psycopg.errors.UniqueViolation):
        pg.execute(
            "insert into canon.person_keys (key_type, key_value, person_key, source_table, source_pk) "
            "values ('PHONE', '+51987654321', 2, 'drivers', 'D2')"
        )
    # A person has at most one DOC.
    with pytest.raises(psycopg.errors.UniqueViolation):
        pg.execute(
            "insert into canon.person_keys (key_type, key_value, person_key, source_table, source_pk) "
            "values ('DOC', 'DNI:87654321', 1, 'drivers', 'D3')"
        )
    link = (
        "insert into canon.identity_links (source_table, source_pk, person_key, match_rule, evidence) "
        "values ('drivers', 'D1', %s, 'TEST', '{}')"
    )
    pg.execute(link, (1,))
    # C0.1: one link per record, and the job can neither rewrite nor delete it.
    with pytest.raises(psycopg.errors.UniqueViolation):
        pg.execute(link, (2,))
    with pytest.raises(psycopg.errors.RaiseException, match="C0.1"):
        pg.execute("update canon.identity_links set person_key = 2")
    with pytest.raises(psycopg.errors.RaiseException, match="C0.1"):
        pg.execute("delete from canon.identity_links")
    # ...unless it is a declared manual action, which is audited.
    with pg.transaction():
        pg.execute("set local cabinet_leads.manual_action = 'OPS-1: wrong merge split by hand'")
        pg.execute("delete from canon.identity_links where source_pk = 'D1'")
    audit = pg.execute("select operation, reason, old_row->>'source_pk' from canon.identity_link_audit").fetchall()
    assert audit == [("DELETE", "OPS-1: wrong merge split by hand", "D1")]


def test_applied_version_unknown_to_the_code_is_refused(empty_db, tmp_path):
    (tmp_path / "V001__one.sql").write_text("create table public.one (id int);")
    (tmp_path / "V002__two.sql").write_text("create table public.two (id int);")
    db.migrate(empty_db, directory=tmp_path)
    (tmp_path / "V002__two.sql").unlink()  # an older cabinet-leads, after a newer one migrated
    (tmp_path / "V003__late.sql").write_text("create table public.late (id int);")
    with pytest.raises(db.DatabaseError, match="V002 that this cabinet-leads does not know"):
        db.migrate(empty_db, directory=tmp_path)
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("select to_regclass('public.late')").fetchone()[0] is None  # nothing applied
    with pytest.raises(db.DatabaseError, match="V002 that this cabinet-leads does not know"):
        db.check_schema(empty_db, directory=tmp_path)


def test_views_are_reapplied_when_their_file_changes_and_checked_before_use(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("update ops.schema_views set file_checksum = 'old' where view_name = 'v_cabinet_leads_limbo'")
    with pytest.raises(db.DatabaseError, match=r"views are out of date \(v_cabinet_leads_limbo\).*migrate"):
        db.check_schema(db_url)
    assert db.migrate(db_url) == []  # no versioned migration pending: only the view is re-created
    db.check_schema(db_url)
    with psycopg.connect(db_url) as conn:
        sums = dict(conn.execute("select view_name, file_checksum from ops.schema_views").fetchall())
    assert sums == {v.name: v.checksum for v in db.list_views()}
