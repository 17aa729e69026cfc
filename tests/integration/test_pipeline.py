"""ReconcileCabinetLeadsPipeline end to end on real PostgreSQL and the synthetic data set.

Scored against the seeder's ground truth (``demo.lead_truth`` / ``demo.driver_truth``): precision
and recall of the identity links, idempotency, incremental work, concurrency (two runs, parallel
batches of one run), the runbook's own Python call, dry runs, the claim worklist and the daily
unmatched snapshot.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.orm import sessionmaker

from cabinet_leads import ReconcileCabinetLeadsPipeline, db, synthetic
from cabinet_leads.normalize import name_mismatch
from cabinet_leads.pipeline import STAT_KEYS, chunks
from tests.conftest import fresh_database

ANCHOR = dt.datetime(2025, 6, 2, 17, 0, tzinfo=dt.UTC)  # 12:00 in Lima
ANCHOR_DATE = ANCHOR.date()  # the seed's anchor: the day after the last sign-up day (Lima)
LEADS_TABLE = "module_ct_cabinet_leads"
RUNBOOK_STAGES = ["NO_IDENTITY", "NO_DRIVER", "TRIPS_NO_CLAIM"]

# What the job writes and must leave untouched when there is nothing new (run logs excluded).
STATE_TABLES = (
    "canon.identity_registry",
    "canon.person_keys",
    "canon.identity_links",
    "canon.identity_unmatched",
    "canon.record_keys",
    "ops.lead_state",
    "ops.milestone_claim_worklist",
)

# Every source record with its true person (invalid leads carry unusable data by design).
TRUTH_CTE = """
truth as (
    select 'module_ct_cabinet_leads'::text as source_table, t.lead_id::text as source_pk,
           t.person_id, not t.invalid as valid
    from demo.lead_truth as t
    union all
    select 'drivers', d.driver_id, d.person_id, true
    from demo.driver_truth as d
),
linked as (
    select l.source_table, l.source_pk, l.person_key, truth.person_id
    from canon.identity_links as l
    inner join truth using (source_table, source_pk)
)
"""

# Pairs of records put into one canonical person although they are different true persons.
PRECISION_SQL = f"""
with {TRUTH_CTE}
select
    count(*) filter (where a.person_id <> b.person_id) as wrong_pairs,
    count(*) as linked_pairs
from linked as a
inner join linked as b
    on a.person_key = b.person_key and (a.source_table, a.source_pk) < (b.source_table, b.source_pk)
"""  # noqa: S608 - constant SQL fragments only

# Recall, honestly scoped: a valid lead is findable when one of its valid normalised strong keys
# (canon.record_keys) equals the same key of another record (driver account or other lead) of the
# same true person; it is found when it is linked to the same canonical person as at least one
# other record of its true person.
RECALL_SQL = f"""
with {TRUTH_CTE},
keys as (
    select truth.source_table, truth.source_pk, truth.person_id, k.key_type, k.key_value
    from truth
    inner join canon.record_keys as rk using (source_table, source_pk)
    cross join lateral (values ('PHONE', rk.phone), ('DOC', rk.doc), ('LICENSE', rk.license))
        as k (key_type, key_value)
    where truth.valid and rk.invalid_reason is null and k.key_value is not null
),
findable as (
    select distinct a.source_pk, a.person_id
    from keys as a
    inner join keys as b
        on a.person_id = b.person_id and a.key_type = b.key_type and a.key_value = b.key_value
        and (a.source_table, a.source_pk) <> (b.source_table, b.source_pk)
    where a.source_table = 'module_ct_cabinet_leads'
),
found as (
    select f.source_pk
    from findable as f
    inner join linked as me on me.source_table = 'module_ct_cabinet_leads' and me.source_pk = f.source_pk
    where exists (
        select 1 from linked as other
        where other.person_key = me.person_key and other.person_id = f.person_id
          and (other.source_table, other.source_pk) <> (me.source_table, me.source_pk)
    )
)
select (select count(*) from findable) as findable, (select count(*) from found) as found
"""  # noqa: S608 - constant SQL fragments only


# ---------------------------------------------------------------------- helpers and fixtures


def seed(url: str, leads: int, seed_: int = 11) -> synthetic.SeedSummary:
    return synthetic.seed(url, leads=leads, seed=seed_, anchor=ANCHOR_DATE)


def run(target, anchor: dt.datetime = ANCHOR, **kw) -> dict:
    return ReconcileCabinetLeadsPipeline(target).run_reconcile(anchor=anchor, **kw)


def precision(pg: psycopg.Connection) -> tuple[int, int]:
    wrong, pairs = pg.execute(PRECISION_SQL).fetchone()
    return wrong, pairs


def partition(url: str) -> set[frozenset[tuple[str, str]]]:
    """Records grouped into canonical persons, independent of the person_key numbers."""
    groups: dict[int, set[tuple[str, str]]] = defaultdict(set)
    with psycopg.connect(url) as conn:
        for person_key, table, pk in conn.execute(
            "select person_key, source_table, source_pk from canon.identity_links"
        ):
            groups[person_key].add((table, pk))
    return {frozenset(g) for g in groups.values()}


def digest(pg: psycopg.Connection, table: str) -> tuple[int, str]:
    schema, name = table.split(".")
    query = sql.SQL(
        "select count(*), md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from {} as t"
    ).format(sql.Identifier(schema, name))
    return pg.execute(query).fetchone()


def digests(pg: psycopg.Connection) -> dict[str, tuple[int, str]]:
    return {t: digest(pg, t) for t in STATE_TABLES}


def assert_c0(pg: psycopg.Connection) -> None:
    """C0.1/C0.2 as data (not only as constraints) and precision 1.0 against the ground truth."""
    assert pg.execute(
        "select count(*) from (select 1 from canon.identity_links group by source_table, source_pk"
        " having count(*) > 1) x"
    ).fetchone()[0] == 0
    assert pg.execute(
        "select count(*) from (select 1 from canon.person_keys group by key_type, key_value"
        " having count(distinct person_key) > 1) x"
    ).fetchone()[0] == 0
    # every person owns at least one key and is reached by at least one link: no orphan persons
    assert pg.execute(
        "select count(*) from canon.identity_registry r where not exists"
        " (select 1 from canon.identity_links l where l.person_key = r.person_key)"
    ).fetchone()[0] == 0
    wrong, _ = precision(pg)
    assert wrong == 0, f"{wrong} pairs of records of different true persons share a canonical person"


@pytest.fixture
def twin_url(server_url: str, template_url: str) -> Iterator[str]:
    """A second fresh database, to hold an identical copy of the data for comparisons."""
    with fresh_database(server_url, template_url) as url:
        yield url


@pytest.fixture
def twin_engine(twin_url: str) -> Iterator[sa.Engine]:
    eng = db.make_engine(twin_url)
    yield eng
    eng.dispose()


def in_threads(n: int, work: Callable[[int], dict]) -> list[dict]:
    """Run work(0..n-1) in n threads released together by a barrier; re-raise the first failure."""
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    if errors:
        raise errors[0]
    return results


# ---------------------------------------------------------------------- 1. ground truth


def test_ground_truth_precision_and_recall(db_url, engine, pg):
    seed(db_url, 3_000)
    stats = run(engine)

    wrong, pairs = precision(pg)
    findable, found = pg.execute(RECALL_SQL).fetchone()
    prec = 1.0 - wrong / pairs if pairs else 0.0
    recall = found / findable if findable else 0.0
    print(f"\nprecision={prec:.4f} ({wrong} wrong of {pairs} linked pairs) "
          f"recall={recall:.4f} ({found} of {findable} findable leads)")

    assert pairs > 1_000 and findable > 1_000, "the data set must exercise linking"
    assert wrong == 0
    assert recall >= 0.98
    assert_c0(pg)
    invalid = pg.execute("select count(*) from demo.lead_truth where invalid").fetchone()[0]
    assert invalid >= 1 and stats["errors"] == invalid
    assert stats["processed"] == 3_000


# ---------------------------------------------------------------------- 2. idempotency


def test_second_run_without_new_data_changes_nothing(db_url, engine, pg):
    seed(db_url, 1_500)
    first = run(engine)
    assert first["newly_linked"] > 0 and first["newly_driver_mapped"] > 0 and first["new_persons"] > 0
    before = digests(pg)

    second = run(engine)

    assert (second["newly_linked"], second["newly_driver_mapped"], second["new_persons"]) == (0, 0, 0)
    assert second["errors"] == 0 and second["retries"] == 0
    assert digests(pg) == before
    runs = pg.execute("select count(*) from ops.reconcile_runs where status = 'success'").fetchone()[0]
    assert runs == 2


# ---------------------------------------------------------------------- 3. incremental


def test_incremental_new_and_corrected_records_only(db_url, engine, pg):
    seed(db_url, 1_500)
    run(engine)
    links_before = {
        (r[0], r[1]): r
        for r in pg.execute(
            "select source_table, source_pk, link_id, person_key, match_rule, evidence, linked_at, run_id"
            " from canon.identity_links"
        )
    }

    # a lead left NO_CANDIDATES because its phone is a landline, of a person who shares no phone
    landline = pg.execute(
        r"""
        select l.id, substr(p.phone_e164, 4)
        from public.module_ct_cabinet_leads as l
        join canon.identity_unmatched as u
            on u.source_table = 'module_ct_cabinet_leads' and u.source_pk = l.id::text
        join demo.lead_truth as t on t.lead_id = l.id
        join demo.persons as p on p.person_id = t.person_id
        where u.reason_code = 'NO_CANDIDATES' and not t.invalid
          and regexp_replace(l.phone, '\D', '', 'g') ~ '^01[2-8][0-9]{6}$'
          and p.shares_phone_with is null
          and not exists (select 1 from demo.persons q where q.shares_phone_with = p.person_id)
        order by l.id limit 1
        """
    ).fetchone()
    assert landline is not None, "the seed must contain a landline-only lead"
    landline_id, true_phone = landline
    phone_owner = pg.execute(
        "select person_key from canon.person_keys where key_type = 'PHONE' and key_value = %s",
        ("+51" + true_phone,),
    ).fetchone()
    pg.execute(
        "update public.module_ct_cabinet_leads set phone = %s, updated_at = now() where id = %s",
        (true_phone, landline_id),
    )

    # new leads with fresh ids and keys, and a new driver account with the first lead's phone
    fresh_phones = ["911000017", "911000029"]
    fresh_docs = ["70000017", "70000029", "70000031"]
    for value in fresh_phones + fresh_docs:
        assert pg.execute(
            "select count(*) from canon.person_keys where key_value like %s", ("%" + value,)
        ).fetchone()[0] == 0
    max_id = pg.execute("select max(id) from public.module_ct_cabinet_leads").fetchone()[0]
    new_ids = [max_id + 1, max_id + 2, max_id + 3]
    created = ANCHOR - dt.timedelta(hours=3)
    for lead_id, phone, doc, lic in (
        (new_ids[0], "+51 911 000 017", fresh_docs[0], None),
        (new_ids[1], fresh_phones[1], None, None),
        (new_ids[2], "", fresh_docs[2], "q-70000031"),
    ):
        pg.execute(
            "insert into public.module_ct_cabinet_leads (id, external_id, lead_created_at, first_name, last_name,"
            " phone, document_number, license_number, updated_at) values (%s, %s, %s, 'Nuevo', 'Lead Prueba',"
            " %s, %s, %s, %s)",
            (lead_id, f"CAB-NEW-{lead_id}", created, phone, doc, lic, created),
        )
    pg.execute(
        "insert into public.drivers (driver_id, park_id, first_name, last_name, phone, hired_at, updated_at)"
        " values ('DNEW0001', 'P-LIM-01', 'NUEVO', 'LEAD PRUEBA', '0051911000017', %s, %s)",
        (ANCHOR - dt.timedelta(hours=1), ANCHOR - dt.timedelta(hours=1)),
    )
    # an old lead (window closed, linked, NO_DRIVER) whose person gets a driver account only now
    old_lead, old_person, old_doc = pg.execute(
        "select s.lead_id, s.person_key, substr(k.key_value, 5) from ops.lead_state as s"
        " join canon.person_keys as k on k.person_key = s.person_key and k.key_type = 'DOC'"
        " join ops.v_cabinet_leads_limbo as v on v.lead_id = s.lead_id"
        " where s.limbo_stage = 'NO_DRIVER' and k.key_value like 'DNI:%%' and v.lead_date + 15 < %s"
        " order by s.lead_id limit 1",
        (ANCHOR_DATE,),
    ).fetchone()
    pg.execute(
        "insert into public.drivers (driver_id, park_id, first_name, last_name, document_number, hired_at,"
        " updated_at) values ('DNEW0002', 'P-LIM-02', 'X', 'Y', %s, %s, %s)",
        (f"{old_doc[:2]}.{old_doc[2:5]}.{old_doc[5:]}", ANCHOR - dt.timedelta(hours=2), ANCHOR - dt.timedelta(hours=2)),
    )
    keys_before = digest_without(pg, landline_id)

    stats = run(engine)

    link_of = {
        pk: (person_key, rule)
        for pk, person_key, rule in pg.execute(
            "select source_pk, person_key, match_rule from canon.identity_links"
            " where source_table = 'module_ct_cabinet_leads' and source_pk = any(%s)",
            ([str(i) for i in [*new_ids, landline_id]],),
        )
    }
    assert set(link_of) == {str(i) for i in [*new_ids, landline_id]}, "new and corrected leads are linked"
    driver_person = pg.execute(
        "select person_key from canon.identity_links where source_table = 'drivers' and source_pk = 'DNEW0001'"
    ).fetchone()
    assert driver_person is not None
    assert link_of[str(new_ids[0])] == (driver_person[0], "MATCH_PHONE")  # the driver came first
    assert link_of[str(new_ids[1])][1] == link_of[str(new_ids[2])][1] == "NEW_IDENTITY"
    if phone_owner is not None:
        assert link_of[str(landline_id)][0] == phone_owner[0]
    state = pg.execute("select driver_id from ops.lead_state where lead_id = %s", (new_ids[0],)).fetchone()
    assert state == ("DNEW0001",)
    assert pg.execute(
        "select person_key, match_rule from canon.identity_links where source_table = 'drivers'"
        " and source_pk = 'DNEW0002'"
    ).fetchone() == (old_person, "MATCH_DOC")
    state = pg.execute("select driver_id, limbo_stage from ops.lead_state where lead_id = %s", (old_lead,)).fetchone()
    assert state == ("DNEW0002", "NO_TRIPS_14D"), "a NO_DRIVER lead is mapped once its person has a driver"
    assert stats["newly_linked"] == 4 and stats["drivers_linked"] == 2 and stats["newly_driver_mapped"] >= 2

    # nothing already linked was re-matched or rewritten, unchanged records were not re-normalised
    links_after = {
        (r[0], r[1]): r
        for r in pg.execute(
            "select source_table, source_pk, link_id, person_key, match_rule, evidence, linked_at, run_id"
            " from canon.identity_links"
        )
    }
    assert {k: links_after[k] for k in links_before} == links_before
    assert len(links_after) == len(links_before) + 6
    assert digest_without(pg, landline_id, exclude_new=new_ids) == keys_before
    assert 4 <= stats["processed"] < 1_500 * 0.15, stats["processed"]
    assert_c0(pg)


def digest_without(pg: psycopg.Connection, lead_id: int, exclude_new: list[int] = ()) -> str:
    """md5 of canon.record_keys without one lead (and without records that did not exist before)."""
    excluded = [str(lead_id), *(str(i) for i in exclude_new), "DNEW0001", "DNEW0002"]
    return pg.execute(
        "select md5(string_agg(t::text, '|' order by t::text)) from canon.record_keys as t"
        " where not (t.source_pk = any(%s))",
        (excluded,),
    ).fetchone()[0]


# ---------------------------------------------------------------------- 4. concurrency


def test_two_concurrent_runs_equal_one_serial_run(db_url, twin_url, twin_engine, pg):
    seed(db_url, 2_000)
    seed(twin_url, 2_000)
    serial = run(twin_engine)

    engines = [db.make_engine(db_url) for _ in range(2)]
    try:
        results = in_threads(2, lambda i: run(engines[i]))
    finally:
        for eng in engines:
            eng.dispose()

    assert partition(db_url) == partition(twin_url)
    assert sum(r["new_persons"] for r in results) == serial["new_persons"]
    assert sum(r["newly_linked"] for r in results) == serial["newly_linked"]
    # the run lock serialised them: one run did the work, the other only what was left, later
    waited, worked = sorted(r["processed"] for r in results)
    assert worked == serial["processed"] == 2_000 and waited < 0.2 * worked
    runs = pg.execute("select status, started_at, finished_at from ops.reconcile_runs order by run_id").fetchall()
    assert [r[0] for r in runs] == ["success", "success"]
    assert runs[1][1] >= runs[0][2], "the two runs overlapped"
    assert_c0(pg)


def conflict_free_persons(pg: psycopg.Connection) -> set[int]:
    """True persons whose linking cannot depend on the order their records are processed in.

    A true person qualifies when it shares no phone with a relative, none of its key values occurs
    in a record of another true person, its records carry at most one DOC and one LICENSE, every two
    of its keyed records share a strong key, and a pair sharing only the PHONE has names that agree.
    Then whichever record comes first creates the person and every other one matches it.
    """
    rows = pg.execute(
        """
        with truth as (
            select 'module_ct_cabinet_leads'::text as source_table, t.lead_id::text as source_pk, t.person_id
            from demo.lead_truth as t where not t.invalid
            union all
            select 'drivers', d.driver_id, d.person_id from demo.driver_truth as d
        )
        select truth.person_id, truth.source_table, truth.source_pk, rk.phone, rk.doc, rk.license, rk.given_name,
               p.shares_phone_with is not null
               or exists (select 1 from demo.persons q where q.shares_phone_with = p.person_id) as shares_phone,
               rk.name_folded
        from truth
        join canon.record_keys as rk using (source_table, source_pk)
        join demo.persons as p on p.person_id = truth.person_id
        where rk.invalid_reason is null and coalesce(rk.phone, rk.doc, rk.license) is not null
        """
    ).fetchall()
    by_person: dict[int, list] = defaultdict(list)
    owners: dict[tuple[str, str], set[int]] = defaultdict(set)
    for row in rows:
        by_person[row[0]].append(row)
        for kind, value in zip(("PHONE", "DOC", "LICENSE"), row[3:6], strict=True):
            if value:
                owners[(kind, value)].add(row[0])
    out = set()
    for person, recs in by_person.items():
        if any(r[7] for r in recs):
            continue
        keys = [{k: v for k, v in zip(("PHONE", "DOC", "LICENSE"), r[3:6], strict=True) if v} for r in recs]
        if any(len(owners[kv]) > 1 for ks in keys for kv in ks.items()):
            continue
        if any(len({ks[k] for ks in keys if k in ks}) > 1 for k in ("DOC", "LICENSE")):
            continue
        ok = True
        for i in range(len(recs)):
            for j in range(i + 1, len(recs)):
                shared = {k for k in keys[i] if keys[j].get(k) == keys[i][k]}
                if not shared or (
                    shared == {"PHONE"} and name_mismatch(recs[i][6], recs[i][8], recs[j][6], recs[j][8])
                ):
                    ok = False
        if ok:
            out.add(person)
    return out


def test_parallel_batches_of_one_run(db_url, engine, twin_url, twin_engine, pg):
    seed(db_url, 2_000)
    seed(twin_url, 2_000)
    run(twin_engine)  # the serial reference

    pipeline = ReconcileCabinetLeadsPipeline(engine)
    with engine.connect() as conn:
        run_id = pipeline.start_run(conn, {})
        pipeline.reconcile_drivers(conn, run_id, ANCHOR)
        ids = pipeline.select_work_leads(conn, anchor=ANCHOR)
    assert len(ids) == 2_000
    groups = [ids[k::4] for k in range(4)]

    def work(i: int) -> dict:
        mine = ReconcileCabinetLeadsPipeline(engine)
        total = {"processed": 0, "retries": 0}
        with engine.connect() as conn:
            for batch in chunks(groups[i], 100):
                stats = mine.reconcile_batch(conn, batch, run_id=run_id, anchor=ANCHOR)
                total["processed"] += stats["processed"]
                total["retries"] += stats["retries"]
        return total

    results = in_threads(4, work)
    pipeline.finish_work(run_id, ANCHOR)  # the batches marked their leads: recompute their funnel state
    with engine.connect() as conn:
        pipeline.finish_run(conn, run_id, "success", {"processed": sum(r["processed"] for r in results)})
    assert sum(r["processed"] for r in results) == 2_000
    assert pg.execute("select count(*) from ops.lead_state").fetchone()[0] == 2_000
    assert_c0(pg)

    parallel, serial = partition(db_url), partition(twin_url)
    if parallel != serial:
        # The interleaved batches process the leads in another order than the serial run, and
        # outcomes are legitimately order-dependent (C0 never merges persons): e.g. lead A with
        # only a DOC, lead B with only the PHONE and lead C with both make two persons and an
        # AMBIGUOUS C when C comes last, but one person when C comes between them; which record
        # creates a person also decides the given name a PHONE-only match is compared with.
        # So compare on the true persons whose outcome cannot depend on the order.
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

        differing = parallel ^ serial
        print(f"\nparallel vs serial: {len(differing)} differing groups, {len(clean)} conflict-free persons")
        assert clean_groups(parallel) == clean_groups(serial)
        assert len(differing) < 0.02 * len(serial)


# ---------------------------------------------------------------------- 5. the runbook's call


def test_runbook_python_call(db_url, engine, pg):
    seed(db_url, 300)

    SessionLocal = sessionmaker(bind=engine)  # noqa: N806 - as the runbook's app.db names it
    db = SessionLocal()
    try:
        pipeline = ReconcileCabinetLeadsPipeline(db)
        stats = pipeline.run_reconcile(
            process_recent=True,
            recent_days=30,
            process_limbo=True,
            limbo_stages=['NO_IDENTITY', 'NO_DRIVER', 'TRIPS_NO_CLAIM']
        )
        print(stats)
    finally:
        db.close()

    for key in ("processed", "newly_linked", "newly_driver_mapped", "still_no_candidates", "conflicts", "errors"):
        assert type(stats[key]) is int, key
    assert stats["processed"] == 300 and stats["newly_linked"] > 250
    status, parameters, stored, finished = pg.execute(
        "select status, parameters, stats, finished_at from ops.reconcile_runs where run_id = %s",
        (stats["run_id"],),
    ).fetchone()
    assert status == "success" and finished is not None
    assert parameters["process_recent"] is True and parameters["recent_days"] == 30
    assert parameters["process_limbo"] is True and parameters["limbo_stages"] == RUNBOOK_STAGES
    assert {k: stored[k] for k in STAT_KEYS} == {k: stats[k] for k in STAT_KEYS}
    linked = pg.execute("select count(*) from canon.identity_links where source_table = %s",
                        (LEADS_TABLE,)).fetchone()[0]
    assert linked == stats["newly_linked"]  # committed, visible to another connection

    # the same call with a Connection; its work is committed too
    pg.execute(
        "insert into public.module_ct_cabinet_leads (id, external_id, lead_created_at, first_name, last_name,"
        " phone, updated_at) values (100000, 'CAB-X', now() - interval '1 day', 'Ana', 'Ríos', '912 000 053',"
        " now() - interval '1 day')"
    )
    with engine.connect() as conn:
        stats2 = ReconcileCabinetLeadsPipeline(conn).run_reconcile(
            process_recent=True, recent_days=30, process_limbo=True, limbo_stages=RUNBOOK_STAGES
        )
    assert stats2["newly_linked"] == 1 and stats2["errors"] == 0
    assert pg.execute(
        "select match_rule from canon.identity_links where source_table = %s and source_pk = '100000'",
        (LEADS_TABLE,),
    ).fetchone() == ("NEW_IDENTITY",)
    assert pg.execute("select status from ops.reconcile_runs where run_id = %s",
                      (stats2["run_id"],)).fetchone() == ("success",)


# ---------------------------------------------------------------------- 6. dry run


def test_dry_run_reports_the_real_statistics_and_writes_nothing(db_url, engine, twin_url, twin_engine, pg):
    seed(db_url, 1_000)
    seed(twin_url, 1_000)

    def comparable(stats: dict) -> dict:
        return {k: v for k, v in stats.items() if k not in ("run_id", "seconds", "lock_wait_s")}

    dry = run(engine, dry_run=True)
    real = run(twin_engine)

    assert comparable(dry) == comparable(real)
    assert real["newly_linked"] > 0
    for table in ("canon.identity_links", "canon.identity_registry", "ops.lead_state", "canon.person_keys",
                  "canon.identity_unmatched", "canon.record_keys", "ops.milestone_claim_worklist"):
        assert digest(pg, table)[0] == 0, f"dry run left rows in {table}"

    # and it left nothing behind that changes what a real run then does
    after = run(engine)
    assert comparable(after) == comparable(real)
    assert partition(db_url) == partition(twin_url)


# ---------------------------------------------------------------------- 7. claim worklist


def test_claim_worklist_opens_resolves_and_never_duplicates(db_url, engine, pg):
    seed(db_url, 1_000)
    run(engine)

    unclaimed = set(
        pg.execute(
            "select lead_id, m from ops.v_cabinet_leads_limbo, unnest(milestones_unclaimed) as m"
            " where limbo_stage = 'TRIPS_NO_CLAIM'"
        ).fetchall()
    )
    open_rows = set(
        pg.execute("select lead_id, milestone from ops.milestone_claim_worklist where resolved_at is null").fetchall()
    )
    assert unclaimed and open_rows == unclaimed

    # the newest such lead: its 14-day window is still open, so every later run processes it again
    lead_id, milestone, driver_id, person_key = pg.execute(
        "select w.lead_id, w.milestone, w.driver_id, w.person_key from ops.milestone_claim_worklist as w"
        " join public.module_ct_cabinet_leads as l on l.id = w.lead_id"
        " where w.resolved_at is null order by l.lead_created_at desc, w.milestone limit 1"
    ).fetchone()
    pg.execute(
        "insert into public.milestone_claims (claim_id, driver_id, milestone, claimed_at, status)"
        " values ('CL-TEST-1', %s, %s, %s, 'approved')",
        (driver_id, milestone, ANCHOR - dt.timedelta(hours=1)),
    )

    stats = run(engine)

    resolved_at, claim = pg.execute(
        "select resolved_at, resolved_by_claim_id from ops.milestone_claim_worklist"
        " where lead_id = %s and milestone = %s",
        (lead_id, milestone),
    ).fetchone()
    assert resolved_at is not None and claim == "CL-TEST-1"
    assert stats["worklist_resolved"] >= 1
    # every lead of that person with that milestone open is resolved by the same claim
    assert pg.execute(
        "select count(*) from ops.milestone_claim_worklist where person_key = %s and milestone = %s"
        " and resolved_at is null",
        (person_key, milestone),
    ).fetchone()[0] == 0
    still_open = set(
        pg.execute("select lead_id, milestone from ops.milestone_claim_worklist where resolved_at is null").fetchall()
    )
    assert still_open == set(
        pg.execute(
            "select lead_id, m from ops.v_cabinet_leads_limbo, unnest(milestones_unclaimed) as m"
            " where limbo_stage = 'TRIPS_NO_CLAIM'"
        ).fetchall()
    )

    before = digest(pg, "ops.milestone_claim_worklist")
    again = run(engine)
    assert digest(pg, "ops.milestone_claim_worklist") == before
    assert again["worklist_opened"] == again["worklist_resolved"] == 0
    total, distinct = pg.execute(
        "select count(*), count(distinct (lead_id, milestone)) from ops.milestone_claim_worklist"
    ).fetchone()
    assert total == distinct == before[0]


# ---------------------------------------------------------------------- 8. unmatched snapshots


def test_unmatched_one_row_per_record_per_snapshot_date(db_url, engine, pg):
    seed(db_url, 1_000)
    run(engine)
    run(engine, anchor=ANCHOR + dt.timedelta(hours=3))  # the next hourly run, same day in Lima
    assert pg.execute(
        "select count(*) from (select 1 from canon.identity_unmatched"
        " group by source_table, source_pk, snapshot_date having count(*) > 1) x"
    ).fetchone()[0] == 0

    def unlinked(table: str) -> int:
        src = "public.module_ct_cabinet_leads" if table == LEADS_TABLE else "public.drivers"
        pk = "id::text" if table == LEADS_TABLE else "driver_id"
        return pg.execute(
            f"select count(*) from {src} as s where not exists (select 1 from canon.identity_links as l"  # noqa: S608
            f" where l.source_table = %s and l.source_pk = s.{pk})",
            (table,),
        ).fetchone()[0]

    unlinked_leads, unlinked_drivers = unlinked(LEADS_TABLE), unlinked("drivers")
    assert unlinked_leads > 0
    day1 = ANCHOR_DATE
    assert pg.execute("select count(*) from canon.identity_unmatched where snapshot_date = %s",
                      (day1,)).fetchone()[0] == unlinked_leads + unlinked_drivers

    next_day = run(engine, anchor=ANCHOR + dt.timedelta(days=1))
    day2 = day1 + dt.timedelta(days=1)
    assert next_day["unmatched_carried_forward"] == unlinked_leads + unlinked_drivers
    per_day = dict(
        pg.execute("select snapshot_date, count(*) from canon.identity_unmatched group by 1").fetchall()
    )
    assert per_day == {day1: unlinked_leads + unlinked_drivers, day2: unlinked_leads + unlinked_drivers}
    assert pg.execute(
        "select count(*) from (select source_table, source_pk from canon.identity_unmatched"
        " where snapshot_date = %s except select source_table, source_pk from canon.identity_links) x",
        (day2,),
    ).fetchone()[0] == unlinked_leads + unlinked_drivers

    # the runbook's Troubleshooting query, with the anchor's date for CURRENT_DATE, grouped by day
    rows = pg.execute(
        """
        SELECT snapshot_date, reason_code, COUNT(*)
        FROM canon.identity_unmatched
        WHERE source_table = 'module_ct_cabinet_leads'
            AND snapshot_date > %s::date - INTERVAL '7 days'
        GROUP BY snapshot_date, reason_code
        """,
        (day2,),
    ).fetchall()
    by_day: dict[dt.date, dict[str, int]] = defaultdict(dict)
    for day, reason, count in rows:
        by_day[day][reason] = count
    assert set(by_day) == {day1, day2}
    assert by_day[day1] == by_day[day2]
    assert sum(by_day[day2].values()) == unlinked_leads
    assert set(by_day[day2]) <= {"NO_CANDIDATES", "AMBIGUOUS", "INVALID_DATA"}

    # and a second run on the new day adds nothing
    run(engine, anchor=ANCHOR + dt.timedelta(days=1, hours=1))
    assert pg.execute("select count(*) from canon.identity_unmatched").fetchone()[0] == 2 * (
        unlinked_leads + unlinked_drivers
    )


def test_alert_metrics_from_the_snapshot_equal_the_alert_query(db_url, engine):
    """The after-snapshot's scan gives the alert metrics; they equal funnel/alert_metrics.sql."""
    synthetic.seed(db_url, leads=800, seed=4, anchor=ANCHOR_DATE)
    pipeline = ReconcileCabinetLeadsPipeline(engine)
    stats = pipeline.run_reconcile(anchor=ANCHOR)
    with engine.connect() as conn:
        direct = pipeline.alert_metrics(conn, ANCHOR)
    assert stats["alert_metrics"] == direct
    assert direct["limbo_trips_no_claim"] == stats["limbo_after"]["TRIPS_NO_CLAIM"] > 0


def test_a_run_whose_process_died_is_marked_abandoned_by_the_next_one(engine, pg):
    """A crashed run leaves its record 'running'; the next run of the same trigger closes it."""
    pg.execute(
        "insert into ops.reconcile_runs (triggered_by, status) values ('cli', 'running'), ('airflow', 'running')"
    )
    ReconcileCabinetLeadsPipeline(engine).run_reconcile(anchor=ANCHOR)
    rows = pg.execute("select triggered_by, status, error from ops.reconcile_runs order by run_id").fetchall()
    assert rows[0][:2] == ("cli", "abandoned") and rows[0][2].startswith("abandoned")
    assert rows[1] == ("airflow", "running", None)  # another trigger's run may be alive: untouched
    assert rows[2][:2] == ("cli", "success")
