"""Ranges that run in parallel (issue 10 point 4, issue 15 point 6) on real PostgreSQL.

The work of a range has two phases: record keys (normalise, store; no lock) and identity (batches
that hold the identity lock only for the decision). Eight workers over one backlog keep every C0
invariant and equal the serial run wherever the outcome cannot depend on the order;
``reconcile --workers 4`` through the CLI mixes no true persons and links as many leads as the
serial run (within 0.5%); the record-keys phase runs while another session holds the identity
lock; a run that died between the phases leaves its records to the next run.
"""

from __future__ import annotations

import json
import threading
import time

import psycopg

from cabinet_leads import ReconcileCabinetLeadsPipeline, db
from cabinet_leads.engine import record_keys
from cabinet_leads.engine.session import LEADS
from cabinet_leads.pipeline import IDENTITY_LOCK_KEY
from tests.integration import test_pipeline
from tests.integration.test_pipeline import ANCHOR, assert_c0, conflict_free_persons, partition, seed
from tests.integration.test_run_behaviour import cli

twin_url, twin_engine = test_pipeline.twin_url, test_pipeline.twin_engine  # a second database (fixtures)

# A linked record whose strong key is owned by another person: its keys reached two persons, or it
# was linked although a key pointed elsewhere (C0.2/C0.3). Never, on fresh data, whatever the order.
KEY_OWNED_ELSEWHERE_SQL = """
select count(*)
from canon.identity_links as l
inner join canon.record_keys as rk on l.source_table = rk.source_table and l.source_pk = rk.source_pk
cross join lateral (values ('PHONE', rk.phone), ('DOC', rk.doc), ('LICENSE', rk.license)) as k (key_type, key_value)
inner join canon.person_keys as pk on k.key_type = pk.key_type and k.key_value = pk.key_value
where pk.person_key <> l.person_key
"""


def score(url: str) -> tuple[int, int, int, int]:
    """(persons mixing two true persons, persons, leads linked, leads) from the seeder's ground truth."""
    with psycopg.connect(url) as conn:
        return conn.execute(db.read_sql("demo/score.sql")).fetchone()


def test_eight_workers_keep_c0_and_equal_the_serial_run_where_order_cannot_matter(
    db_url, engine, twin_url, twin_engine, pg
):
    seed(db_url, 3_000)
    seed(twin_url, 3_000)
    serial = ReconcileCabinetLeadsPipeline(twin_engine, batch_size=100).run_reconcile(anchor=ANCHOR)

    pipeline = ReconcileCabinetLeadsPipeline(engine, batch_size=100)
    parallel = pipeline.run_reconcile(anchor=ANCHOR, workers=8)

    assert parallel["processed"] == serial["processed"] == 3_000
    params = pg.execute("select parameters from ops.reconcile_runs where run_id = %s",
                        (parallel["run_id"],)).fetchone()[0]
    assert params["workers"] == 8
    assert_c0(pg)
    assert pg.execute(KEY_OWNED_ELSEWHERE_SQL).fetchone()[0] == 0
    # every lead decided once: linked or recorded unmatched, none left awaiting its decision
    assert pg.execute("select count(*) from canon.record_keys where identity_pending").fetchone()[0] == 0
    assert pg.execute(
        "select count(*) from public.module_ct_cabinet_leads as l where not exists (select 1 from"
        " canon.identity_links as k where k.source_table = 'module_ct_cabinet_leads' and k.source_pk = l.id::text)"
        " and not exists (select 1 from canon.identity_unmatched as u where u.source_table = 'module_ct_cabinet_leads'"
        " and u.source_pk = l.id::text)"
    ).fetchone()[0] == 0
    # an AMBIGUOUS lead (keys reaching two persons, or a conflict) is never linked
    assert pg.execute(
        "select count(*) from canon.identity_unmatched as u inner join canon.identity_links as l"
        " using (source_table, source_pk) where u.reason_code = 'AMBIGUOUS'"
    ).fetchone()[0] == 0
    assert pg.execute("select count(*) from ops.lead_state").fetchone()[0] == 3_000
    assert isinstance(parallel["identity_lock_wait_s"], float)
    timings = pipeline.session.timings  # the workers' batches are counted in the run's timings
    assert len(timings.lead_batch_ms) + len(timings.driver_batch_ms) == parallel["batches"]

    differing = partition(db_url) ^ partition(twin_url)
    clean = conflict_free_persons(pg)
    assert len(clean) > 1_000
    truth = {
        (table, pk): person
        for table, pk, person in pg.execute(
            "select 'module_ct_cabinet_leads', lead_id::text, person_id from demo.lead_truth"
            " union all select 'drivers', driver_id, person_id from demo.driver_truth"
        )
    }

    def clean_groups(part):
        return {g for g in part if truth[next(iter(g))] in clean}

    print(f"\n8 workers vs serial: {len(differing)} differing groups, {len(clean)} conflict-free persons")
    assert clean_groups(partition(db_url)) == clean_groups(partition(twin_url))
    assert len(differing) < 0.02 * len(partition(twin_url))


def test_cli_workers_4_mixes_no_true_persons_and_links_as_the_serial_run(db_url, twin_url):
    seed(db_url, 4_000, seed_=7)
    seed(twin_url, 4_000, seed_=7)

    serial = cli(twin_url, "reconcile", "--json", timeout=300)
    parallel = cli(db_url, "reconcile", "--workers", "4", "--json", timeout=300)

    assert serial.returncode == 0, serial.stderr
    assert parallel.returncode == 0, parallel.stderr
    stats = json.loads(parallel.stdout)
    assert stats["processed"] == json.loads(serial.stdout)["processed"] == 4_000
    mixed_p, _, linked_p, leads = score(db_url)
    mixed_s, _, linked_s, _ = score(twin_url)
    print(f"\nserial: {linked_s} of {leads} leads linked, {mixed_s} mixed persons; "
          f"--workers 4: {linked_p} linked, {mixed_p} mixed, identity lock wait {stats['identity_lock_wait_s']} s")
    assert mixed_p == mixed_s == 0
    assert linked_s > 0.9 * leads
    assert abs(linked_p - linked_s) <= 0.005 * leads


def test_workers_are_bounded_and_a_dry_run_cannot_use_them(db_url):
    too_many = cli(db_url, "reconcile", "--workers", "9")
    assert too_many.returncode == 2 and "--workers must be between 1 and 8, got 9" in too_many.stderr
    dry = cli(db_url, "reconcile", "--workers", "2", "--dry-run")
    assert dry.returncode == 1 and dry.stderr.count("\n") == 1, dry.stderr
    assert "cannot use workers > 1" in dry.stderr


def test_record_keys_phase_runs_while_another_session_holds_the_identity_lock(db_url, engine, pg):
    seed(db_url, 800)
    pipeline = ReconcileCabinetLeadsPipeline(engine, batch_size=100)
    with engine.connect() as conn:
        run_id = pipeline.start_run(conn, {})
    (lead_range,) = pipeline.plan_limbo(ANCHOR, max_ranges=1)
    assert lead_range.leads > 300

    holder = psycopg.connect(db_url, autocommit=True)
    holder.execute("select pg_advisory_lock(%s)", (IDENTITY_LOCK_KEY,))
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(
        pipeline.reconcile_limbo_range(run_id, lead_range, ANCHOR)))
    try:
        worker.start()
        # the worker stores every record key of its range, then waits for the identity lock
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            waiting = pg.execute(
                "select count(*) from pg_locks where locktype = 'advisory' and not granted and objid = %s",
                (IDENTITY_LOCK_KEY,),
            ).fetchone()[0]
            if waiting:
                break
            time.sleep(0.05)
        assert waiting == 1, "the worker never reached the identity lock"
        stored, pending = pg.execute(
            "select count(*), count(*) filter (where identity_pending) from canon.record_keys"
            " where source_table = 'module_ct_cabinet_leads' and source_pk::bigint between %s and %s",
            (lead_range.lo, lead_range.hi),
        ).fetchone()
        assert stored == pending == lead_range.leads  # keys stored while the lock was held elsewhere
        assert pg.execute("select count(*) from canon.identity_links where source_table = %s",
                          (LEADS,)).fetchone()[0] == 0  # and nothing decided without it
        time.sleep(1.0)
    finally:
        holder.close()  # releases the lock
        worker.join(timeout=120)
    assert not worker.is_alive()
    assert result["processed"] == lead_range.leads and result["newly_linked"] > 0
    assert result["identity_lock_wait_s"] >= 0.9  # the wait is reported
    assert pg.execute("select count(*) from canon.record_keys where identity_pending").fetchone()[0] == 0


def test_records_whose_keys_were_stored_but_not_decided_are_decided_by_the_next_run(db_url, engine, pg):
    """A run that died between the two phases: keys fresh, identity pending; the next run decides."""
    seed(db_url, 600)
    pipeline = ReconcileCabinetLeadsPipeline(engine)
    ids = [r[0] for r in pg.execute("select id from public.module_ct_cabinet_leads order by id")]
    with engine.connect() as conn:
        stored = record_keys.refresh(pipeline.session, conn, LEADS, ids, ANCHOR)
    assert stored == {"record_keys_stored": 600}

    stats = pipeline.run_reconcile(anchor=ANCHOR)

    # the leads were normalised once, not twice (the run stored only the driver accounts' keys)
    assert stats["processed"] == 600 and stats["record_keys_stored"] == stats["drivers_processed"]
    assert pg.execute("select count(*) from canon.record_keys where identity_pending").fetchone()[0] == 0
    decided = pg.execute(
        "select count(*) from public.module_ct_cabinet_leads as l where exists (select 1 from"
        " canon.identity_links as k where k.source_table = 'module_ct_cabinet_leads' and k.source_pk = l.id::text)"
        " or exists (select 1 from canon.identity_unmatched as u where u.source_table = 'module_ct_cabinet_leads'"
        " and u.source_pk = l.id::text)"
    ).fetchone()[0]
    assert decided == 600
    assert_c0(pg)
