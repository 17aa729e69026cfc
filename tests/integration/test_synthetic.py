"""The synthetic-data seeder on real PostgreSQL: determinism, completeness of the ground truth, and
that the dirty, Peru-shaped features the reconciliation must cope with are really in the data."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import psycopg
import pytest

from cabinet_leads import synthetic
from tests.conftest import create_database, drop_database

LEADS = 5_000
SEED = 7
ANCHOR = dt.date(2025, 6, 2)
DAYS = 120

# table -> key that orders its contents
TABLES = {
    "public.module_ct_cabinet_leads": "id",
    "public.drivers": "driver_id",
    "public.driver_daily_trips": "driver_id, trip_date",
    "public.milestone_claims": "claim_id",
    "demo.persons": "person_id",
    "demo.lead_truth": "lead_id",
    "demo.driver_truth": "driver_id",
}

# Helpers created per connection (temporary, so the test database's schemas stay as seeded):
# pg_temp.nat(phone): the 9-digit national mobile number when the text is written as one;
# reached: per valid lead, the milestones reached by all the true person's accounts in the 14-day
# window, and whether some account of that person has a claim for it.
HELPERS = [
    r"""
    create function pg_temp.nat(phone text) returns text language sql immutable as $$
        select case
            when d ~ '^9[0-9]{8}$' then d
            when d ~ '^09[0-9]{8}$' then substr(d, 2)
            when d ~ '^519[0-9]{8}$' then substr(d, 3)
            when d ~ '^00519[0-9]{8}$' then substr(d, 5)
        end
        from (select regexp_replace(phone, '[^0-9]', '', 'g') as d) x
    $$""",
    """
    create temp view reached as
    with lw as (
        select l.id as lead_id, t.person_id, (l.lead_created_at at time zone 'America/Lima')::date as d
        from public.module_ct_cabinet_leads l
        join demo.lead_truth t on t.lead_id = l.id
        where not t.invalid
    ), trips as (
        select lw.lead_id, lw.person_id, sum(x.completed_trips) as trips
        from lw
        join demo.driver_truth dr on dr.person_id = lw.person_id
        join public.driver_daily_trips x on x.driver_id = dr.driver_id and x.trip_date between lw.d and lw.d + 13
        group by 1, 2
    )
    select t.lead_id, t.person_id, m.milestone,
           exists (select 1 from public.milestone_claims c
                   join demo.driver_truth dr on dr.driver_id = c.driver_id
                   where dr.person_id = t.person_id and c.milestone = m.milestone) as claimed
    from trips t
    cross join (values (1), (5), (25)) as m(milestone)
    where t.trips >= m.milestone""",
]


def table_md5s(url: str) -> dict[str, tuple[int, str]]:
    out = {}
    with psycopg.connect(url) as conn:
        conn.execute("set timezone to 'UTC'")  # timestamptz text must not depend on the session
        for table, key in TABLES.items():
            out[table] = conn.execute(
                f"select count(*), md5(coalesce(string_agg(t::text, E'\\n' order by {key}), ''))"  # noqa: S608
                f" from {table} t"
            ).fetchone()
    return out


def scalar(conn: psycopg.Connection, sql: str, params=None):
    return conn.execute(sql, params).fetchone()[0]


@pytest.fixture(scope="module")
def seeded(server_url: str, template_url: str) -> Iterator[tuple[str, synthetic.SeedSummary]]:
    url = create_database(server_url, template_url)
    summary = synthetic.seed(url, leads=LEADS, seed=SEED, anchor=ANCHOR, days=DAYS)
    yield url, summary
    drop_database(server_url, url)


@pytest.fixture(scope="module")
def conn(seeded) -> Iterator[psycopg.Connection]:
    with psycopg.connect(seeded[0], autocommit=True) as c:
        for sql in HELPERS:
            c.execute(sql)
        yield c


# ----------------------------------------------------------------------------- determinism


def test_same_seed_is_byte_identical_and_other_seed_differs(seeded, server_url, template_url):
    url, _ = seeded
    reference = table_md5s(url)
    other = create_database(server_url, template_url)
    try:
        synthetic.seed(other, leads=LEADS, seed=SEED, anchor=ANCHOR, days=DAYS)
        assert table_md5s(other) == reference

        synthetic.seed(other, leads=LEADS, seed=SEED + 1, anchor=ANCHOR, days=DAYS)
        different = table_md5s(other)
        assert different["public.module_ct_cabinet_leads"][0] == LEADS
        for table in TABLES:
            assert different[table][1] != reference[table][1], table

        # re-seeding truncates and restarts identities: back to the very same bytes
        synthetic.seed(other, leads=LEADS, seed=SEED, anchor=ANCHOR, days=DAYS)
        assert table_md5s(other) == reference
    finally:
        drop_database(server_url, other)


def test_anchor_and_days_change_the_data(seeded, server_url, template_url):
    url, _ = seeded
    reference = table_md5s(url)["public.module_ct_cabinet_leads"]
    other = create_database(server_url, template_url)
    try:
        synthetic.seed(other, leads=LEADS, seed=SEED, anchor=ANCHOR + dt.timedelta(days=1), days=DAYS)
        assert table_md5s(other)["public.module_ct_cabinet_leads"] != reference
        synthetic.seed(other, leads=LEADS, seed=SEED, anchor=ANCHOR, days=DAYS - 1)
        assert table_md5s(other)["public.module_ct_cabinet_leads"] != reference
    finally:
        drop_database(server_url, other)


# ----------------------------------------------------------------------------- counts and ground truth


def test_counts_match_summary(seeded, conn):
    _, s = seeded
    assert s.leads == LEADS
    assert scalar(conn, "select count(*) from public.module_ct_cabinet_leads") == LEADS
    assert scalar(conn, "select count(*) from public.drivers") == s.drivers
    assert scalar(conn, "select count(*) from demo.persons") == s.persons
    assert scalar(conn, "select count(*) from public.driver_daily_trips") == s.trip_rows
    assert scalar(conn, "select count(*) from public.milestone_claims") == s.claims
    assert s.seconds > 0
    # lead ids are 1..N after the truncate, in creation order (apart from the invalid future ones)
    assert conn.execute("select min(id), max(id) from public.module_ct_cabinet_leads").fetchone() == (
        1,
        LEADS,
    )
    out_of_order = scalar(
        conn,
        """
        select count(*) from (
            select t.invalid, l.lead_created_at < lag(l.lead_created_at) over (order by l.id) as back
            from public.module_ct_cabinet_leads l join demo.lead_truth t on t.lead_id = l.id
            where not t.invalid) x
        where back""",
    )
    assert out_of_order == 0


def test_every_lead_and_driver_has_ground_truth(conn):
    assert (
        scalar(
            conn,
            """
        select count(*) from public.module_ct_cabinet_leads l
        full join demo.lead_truth t on t.lead_id = l.id
        where l.id is null or t.lead_id is null""",
        )
        == 0
    )
    assert (
        scalar(
            conn,
            """
        select count(*) from public.drivers d
        full join demo.driver_truth t on t.driver_id = d.driver_id
        where d.driver_id is null or t.driver_id is null""",
        )
        == 0
    )
    assert (
        scalar(
            conn,
            """
        select count(*) from (select person_id from demo.lead_truth
                              union select person_id from demo.driver_truth) x
        where not exists (select 1 from demo.persons p where p.person_id = x.person_id)""",
        )
        == 0
    )
    # every person is a lead or a driver
    assert (
        scalar(
            conn,
            """
        select count(*) from demo.persons p
        where not exists (select 1 from demo.lead_truth t where t.person_id = p.person_id)
          and not exists (select 1 from demo.driver_truth t where t.person_id = p.person_id)""",
        )
        == 0
    )


def test_persons_are_peru_shaped(conn):
    bad = conn.execute(r"""
        select person_id from demo.persons
        where phone_e164 !~ '^\+519[0-9]{8}$'
           or not ((doc_type = 'DNI' and doc ~ '^[0-9]{8}$') or (doc_type = 'CE' and doc ~ '^00[0-9]{7}$'))
           or (license is not null and license !~ '^[A-Z][0-9]{8}$')
           or (plate is not null and plate !~ '^([A-Z][0-9][A-Z]|[A-Z]{3})-[0-9]{3}$')
           or first_name !~ '^\S+( \S+)?$' or last_name !~ '^\S+ \S+$'
        limit 5""").fetchall()
    assert bad == []
    n = scalar(conn, "select count(*) from demo.persons")
    # strong keys belong to one person (C0.2) ...
    assert scalar(conn, "select count(distinct doc) from demo.persons") == n
    assert (
        scalar(conn, "select count(*) - count(distinct license) from demo.persons where license is not null")
        == 0
    )
    # ... except the phone that relatives share, and only then
    assert (
        scalar(
            conn,
            """
        select count(*) from (
            select phone_e164, count(*) as n, count(shares_phone_with) as sharers
            from demo.persons group by 1) x
        where not (n = 1 and sharers = 0 or n = 2 and sharers = 1)""",
        )
        == 0
    )
    ce = scalar(conn, "select count(*) from demo.persons where doc_type = 'CE'")
    assert 0.01 * n < ce < 0.06 * n
    licensed = scalar(conn, "select count(*) from demo.persons where license is not null")
    assert 0.6 * n < licensed < 0.85 * n
    assert scalar(conn, "select count(*) from demo.persons where license = 'Q' || doc") > 0
    assert (
        scalar(
            conn, "select count(*) from demo.persons where license is not null and substr(license, 2) <> doc"
        )
        > 0
    )
    accented = scalar(conn, "select count(*) from demo.persons where last_name ~ '[ñÑáéíóú]'")
    assert accented > 0.2 * n


def test_lead_and_driver_keys_agree_with_the_truth(conn):
    """Whatever the formatting, a strong key written on a record is the true person's key."""
    phones = conn.execute("""
        select count(*) filter (where '+51' || nat = p.phone_e164),
               count(*) filter (where '+51' || nat <> p.phone_e164)
        from (select t.person_id, pg_temp.nat(l.phone) as nat
              from public.module_ct_cabinet_leads l
              join demo.lead_truth t on t.lead_id = l.id where not t.invalid) x
        join demo.persons p using (person_id)
        where nat is not null""").fetchone()
    assert phones[1] == 0
    assert phones[0] > 0.8 * LEADS
    docs = conn.execute(r"""
        select count(*) filter (where n = p.doc),
               count(*) filter (where n <> p.doc and not (left(n, 8) = p.doc and raw ~ '^[0-9]{8}-[0-9A-K]$'))
        from (select t.person_id, l.document_number as raw,
                     regexp_replace(l.document_number, '[\s.-]', '', 'g') as n
              from public.module_ct_cabinet_leads l join demo.lead_truth t on t.lead_id = l.id
              where not t.invalid and nullif(trim(l.document_number), '') is not null) x
        join demo.persons p using (person_id)""").fetchone()
    assert docs[1] == 0
    assert docs[0] > 0.7 * LEADS
    licences = scalar(
        conn,
        r"""
        select count(*) from public.module_ct_cabinet_leads l
        join demo.lead_truth t on t.lead_id = l.id join demo.persons p using (person_id)
        where nullif(l.license_number, '') is not null
          and upper(regexp_replace(l.license_number, '[\s-]', '', 'g')) is distinct from p.license
          and not (p.license is null and l.license_number in ('-', 'N/A', '0'))""",
    )
    assert licences == 0
    drivers = conn.execute(r"""
        select count(*) filter (where '+51' || nat <> p.phone_e164),
               count(*) filter (where regexp_replace(ddoc, '[\s.-]', '', 'g') <> p.doc
                                  and not (regexp_replace(ddoc, '[\s.-]', '', 'g') like p.doc || '_')),
               count(*) filter (where upper(regexp_replace(lic, '[\s-]', '', 'g')) <> p.license)
        from (select dr.person_id, pg_temp.nat(d.phone) as nat,
                     nullif(d.document_number, '') as ddoc, nullif(d.license_number, '') as lic
              from public.drivers d join demo.driver_truth dr using (driver_id)) x
        join demo.persons p using (person_id)""").fetchone()
    assert drivers == (0, 0, 0)


# ----------------------------------------------------------------------------- dirty formats


@pytest.mark.parametrize(
    ("what", "predicate"),
    [
        ("+51 spaced", r"phone ~ '^\+51 9[0-9]{2} [0-9]{3} [0-9]{3}$'"),
        ("0051 prefix", r"phone ~ '^00519[0-9]{8}$'"),
        ("51 prefix", r"phone ~ '^519[0-9]{8}$'"),
        ("0 prefix", r"phone ~ '^09[0-9]{8}$'"),
        ("dashed", r"phone ~ '^9[0-9]{2}-[0-9]{3}-[0-9]{3}$'"),
        ("plain", r"phone ~ '^9[0-9]{8}$'"),
        ("landline (01)", r"phone ~ '^\(01\) [0-9]{7}$'"),
        ("landline 01", r"phone ~ '^01[0-9]{7}$'"),
        ("empty phone", "phone = ''"),
        ("null phone", "phone is null"),
        ("doc with dots", r"document_number ~ '^[0-9]{2}\.[0-9]{3}\.[0-9]{3}$'"),
        ("doc with spaces", r"document_number ~ '^[0-9]{2} [0-9]{3} [0-9]{3}$'"),
        ("doc with check char", r"document_number ~ '^[0-9]{8}-[0-9A-K]$'"),
        ("doc padded", r"document_number ~ '^ [0-9]{8} $'"),
        ("empty doc", "document_number = ''"),
        ("lower-case licence", r"license_number ~ '^[a-z][0-9]{8}$'"),
        ("dashed licence", r"license_number ~ '^[A-Z]-[0-9]{8}$'"),
        ("upper-case name", "first_name = upper(first_name) and first_name ~ '[A-Z]{3}'"),
        ("lower-case name", "first_name = lower(first_name) and first_name ~ '[a-z]{3}'"),
        ("plate without dash", r"plate ~ '^[A-Z0-9]{6}$'"),
        ("null source", "source is null"),
    ],
)
def test_dirty_lead_formats_present(conn, what, predicate):
    assert scalar(conn, f"select count(*) from public.module_ct_cabinet_leads where {predicate}") > 0, what  # noqa: S608


def test_dni_typed_into_the_phone_field(conn):
    n = scalar(
        conn,
        """
        select count(*) from public.module_ct_cabinet_leads l
        join demo.lead_truth t on t.lead_id = l.id join demo.persons p using (person_id)
        where l.phone = p.doc and p.doc_type = 'DNI'""",
    )
    assert 0.01 * LEADS < n < 0.06 * LEADS


def test_missing_rates(conn):
    missing_doc = scalar(
        conn,
        """
        select avg((nullif(trim(document_number), '') is null)::int) from public.module_ct_cabinet_leads""",
    )
    assert 0.10 < missing_doc < 0.20
    licensed_missing = scalar(
        conn,
        """
        select avg((nullif(l.license_number, '') is null)::int) from public.module_ct_cabinet_leads l
        join demo.lead_truth t on t.lead_id = l.id join demo.persons p using (person_id)
        where p.license is not null""",
    )
    assert 0.40 < licensed_missing < 0.60


def test_names_are_dirty_but_recognisable(conn):
    rows = conn.execute("""
        select
          count(*) filter (where lower(trim(l.last_name)) = lower(split_part(p.last_name, ' ', 2) || ' '
                                                                  || split_part(p.last_name, ' ', 1))),
          count(*) filter (where p.last_name ~ '[ñáéíóú]' and lower(trim(l.last_name)) = lower(translate(
                p.last_name, 'áéíóúüñÁÉÍÓÚÜÑ', 'aeiouunAEIOUUN'))),
          count(*) filter (where lower(trim(l.last_name)) = lower(p.last_name)),
          count(*) filter (where l.last_name is null or l.last_name = ''),
          count(*)
        from public.module_ct_cabinet_leads l
        join demo.lead_truth t on t.lead_id = l.id join demo.persons p using (person_id)""").fetchone()
    swapped, unaccented, same, empty, total = rows
    assert 0.05 * total < swapped < 0.15 * total
    assert unaccented > 0.05 * total
    assert same > 0.3 * total
    assert empty > 0


def test_some_leads_are_created_around_lima_midnight(conn):
    near = scalar(
        conn,
        """
        select count(*) from public.module_ct_cabinet_leads
        where (lead_created_at at time zone 'America/Lima')::time < '00:10'
           or (lead_created_at at time zone 'America/Lima')::time >= '23:50'""",
    )
    assert near > 0.01 * LEADS


def test_leads_lie_in_the_window_before_the_anchor(conn):
    lo, hi = conn.execute("""
        select min((l.lead_created_at at time zone 'America/Lima')::date),
               max((l.lead_created_at at time zone 'America/Lima')::date)
        from public.module_ct_cabinet_leads l join demo.lead_truth t on t.lead_id = l.id
        where not t.invalid""").fetchone()
    assert lo == ANCHOR - dt.timedelta(days=DAYS)
    assert hi == ANCHOR - dt.timedelta(days=1)
    assert (
        scalar(conn, "select count(*) from public.module_ct_cabinet_leads where updated_at < lead_created_at")
        == 0
    )


# ----------------------------------------------------------------------------- special leads


def test_invalid_leads_are_flagged_and_really_unusable(conn):
    rows = conn.execute(
        """
        select l.id, greatest(length(l.first_name), length(l.last_name), length(l.phone),
                              length(l.document_number)) as longest,
               l.lead_created_at > %s::date + interval '1 year' as future, t.invalid
        from public.module_ct_cabinet_leads l join demo.lead_truth t on t.lead_id = l.id
        where t.invalid or length(l.first_name) > 200 or length(l.phone) > 200
           or length(l.document_number) > 200
           or l.lead_created_at >= %s::timestamp at time zone 'America/Lima'""",
        (ANCHOR, ANCHOR),
    ).fetchall()
    assert rows, "no invalid lead generated"
    for lead_id, longest, future, invalid in rows:
        assert invalid, lead_id
        assert longest >= 2000 or future, lead_id
    assert len(rows) <= max(3, 0.002 * LEADS)


def test_script_lead_exists(conn):
    rows = conn.execute("""
        select l.id, t.invalid from public.module_ct_cabinet_leads l join demo.lead_truth t on t.lead_id = l.id
        where l.first_name = '<script>alert(1)</script>'""").fetchall()
    assert len(rows) == 1
    assert rows[0][1] is False


def test_duplicate_sign_ups(conn):
    persons, dup = conn.execute("""
        select count(*), count(*) filter (where n > 1)
        from (select person_id, count(*) as n from demo.lead_truth group by 1) x""").fetchone()
    assert 0.05 * persons < dup < 0.12 * persons
    assert (
        scalar(conn, "select max(n) from (select count(*) as n from demo.lead_truth group by person_id) x")
        == 3
    )
    # the same person signing up again does not type it the same way every time
    assert (
        scalar(
            conn,
            """
        select count(*) from (
            select t.person_id from public.module_ct_cabinet_leads l join demo.lead_truth t on t.lead_id = l.id
            group by 1 having count(*) > 1 and count(distinct coalesce(l.phone, '<null>')) > 1) x""",
        )
        > 0
    )


def test_relatives_share_a_phone_and_give_their_own_dni(conn):
    # two different persons, each with a lead written with the same mobile
    shared = conn.execute("""
        with lp as (
            select t.person_id, '+51' || pg_temp.nat(l.phone) as e164
            from public.module_ct_cabinet_leads l
            join demo.lead_truth t on t.lead_id = l.id)
        select e164, count(distinct person_id) from lp where e164 is not null
        group by 1 having count(distinct person_id) > 1""").fetchall()
    assert shared
    assert all(n == 2 for _, n in shared)
    pairs = conn.execute("""
        select r.person_id, o.person_id, split_part(r.last_name, ' ', 1) = split_part(o.last_name, ' ', 1),
               split_part(r.first_name, ' ', 1) <> split_part(o.first_name, ' ', 1)
        from demo.persons r join demo.persons o on o.person_id = r.shares_phone_with""").fetchall()
    assert pairs
    assert all(p[3] for p in pairs), "a relative has the same first name"
    assert sum(p[2] for p in pairs) > 0.6 * len(pairs)
    with_doc, total = conn.execute("""
        select count(*) filter (where nullif(trim(l.document_number), '') is not null), count(*)
        from public.module_ct_cabinet_leads l join demo.lead_truth t on t.lead_id = l.id
        join demo.persons p using (person_id)
        where p.shares_phone_with is not null and not t.invalid""").fetchone()
    assert total > 10
    assert 0.75 * total < with_doc < total  # most, but not all


# ----------------------------------------------------------------------------- drivers, trips, claims


def test_drivers(conn):
    lead_persons, drivers_among_them = conn.execute("""
        select count(distinct t.person_id), count(distinct t.person_id) filter (where exists (
            select 1 from demo.driver_truth d where d.person_id = t.person_id))
        from demo.lead_truth t""").fetchone()
    assert 0.45 * lead_persons < drivers_among_them < 0.65 * lead_persons
    accounts = scalar(conn, "select count(*) from public.drivers")
    never_leads = scalar(
        conn,
        """
        select count(*) from demo.driver_truth d
        where not exists (select 1 from demo.lead_truth t where t.person_id = d.person_id)""",
    )
    assert 0.05 * accounts < never_leads < 0.15 * accounts
    second = conn.execute("""
        select count(*), count(*) filter (where parks = 2)
        from (select person_id, count(*) as n, count(distinct d.park_id) as parks
              from demo.driver_truth dt join public.drivers d using (driver_id) group by 1) x
        where n = 2""").fetchone()
    assert second[0] > 0 and second[0] == second[1], "second accounts are in another park"
    # hired after the first sign-up and before the anchor
    assert (
        scalar(
            conn,
            """
        select count(*) from public.drivers d join demo.driver_truth dt using (driver_id)
        where d.hired_at >= %s::timestamp at time zone 'America/Lima'
           or d.hired_at < (select min(l.lead_created_at) from public.module_ct_cabinet_leads l
                            join demo.lead_truth t on t.lead_id = l.id
                            where t.person_id = dt.person_id and not t.invalid)""",
            (ANCHOR,),
        )
        == 0
    )
    assert scalar(conn, r"select count(*) from public.drivers where driver_id !~ '^D[0-9]{7}$'") == 0
    assert scalar(conn, "select count(*) from public.drivers where nullif(phone, '') is null") > 0
    assert scalar(conn, "select count(*) from public.drivers where nullif(document_number, '') is null") > 0
    assert scalar(conn, r"select count(*) from public.drivers where phone ~ '^\+51 '") > 0


def test_trips(conn):
    assert (
        scalar(
            conn,
            """
        select count(*) from public.driver_daily_trips x
        left join public.drivers d using (driver_id)
        where d.driver_id is null or x.trip_date < (d.hired_at at time zone 'America/Lima')::date
           or x.trip_date >= %s or x.completed_trips > 15""",
            (ANCHOR,),
        )
        == 0
    )
    drivers, never = conn.execute("""
        select count(distinct person_id), count(distinct person_id) filter (where not exists (
            select 1 from demo.driver_truth d2 join public.driver_daily_trips x using (driver_id)
            where d2.person_id = d.person_id))
        from demo.driver_truth d""").fetchone()
    assert 0.15 * drivers < never < 0.35 * drivers
    assert scalar(conn, "select count(*) from public.driver_daily_trips where completed_trips = 0") > 0
    # persons who drive only on their second (later) account
    assert (
        scalar(
            conn,
            """
        with acc as (select dt.person_id, d.driver_id,
                            row_number() over (partition by dt.person_id order by d.hired_at, d.driver_id) as k
                     from demo.driver_truth dt join public.drivers d using (driver_id))
        select count(*) from (
            select person_id from acc
            where exists (select 1 from public.driver_daily_trips x where x.driver_id = acc.driver_id)
            group by 1 having min(k) = 2) y""",
        )
        > 0
    )


def test_milestones_reached_claimed_and_unclaimed(conn):
    rows = conn.execute("""
        select milestone, count(*) filter (where claimed), count(*) filter (where not claimed)
        from reached group by 1 order by 1""").fetchall()
    assert [r[0] for r in rows] == [1, 5, 25]
    for milestone, claimed, unclaimed in rows:
        assert claimed > 0, milestone
        assert unclaimed > 0, milestone  # TRIPS_NO_CLAIM material
        assert 0.5 < claimed / (claimed + unclaimed) < 0.9, milestone


def test_claims_are_consistent(conn):
    assert (
        scalar(
            conn,
            """
        select count(*) from public.milestone_claims c left join public.drivers d using (driver_id)
        where d.driver_id is null or c.milestone not in (1, 5, 25)
           or c.status not in ('approved', 'pending', 'rejected')
           or c.claimed_at >= %s::timestamp at time zone 'America/Lima'
           or c.claimed_at < d.hired_at""",
            (ANCHOR,),
        )
        == 0
    )
    statuses = dict(
        conn.execute("select status, count(*) from public.milestone_claims group by 1").fetchall()
    )
    assert statuses.keys() == {"approved", "pending", "rejected"}
    assert statuses["rejected"] < 0.1 * sum(statuses.values())
    # an approved or pending claim is always for a milestone the person really reached
    assert (
        scalar(
            conn,
            """
        select count(*) from public.milestone_claims c join demo.driver_truth dt using (driver_id)
        where c.status <> 'rejected' and not exists (
            select 1 from reached r where r.person_id = dt.person_id and r.milestone = c.milestone)""",
        )
        == 0
    )
    assert scalar(conn, r"select count(*) from public.milestone_claims where claim_id !~ '^CL[0-9]{8}$'") == 0


def test_a_claim_on_a_second_account(conn):
    assert (
        scalar(
            conn,
            """
        with acc as (select dt.person_id, d.driver_id,
                            row_number() over (partition by dt.person_id order by d.hired_at, d.driver_id) as k
                     from demo.driver_truth dt join public.drivers d using (driver_id))
        select count(*) from public.milestone_claims c join acc using (driver_id) where acc.k = 2""",
        )
        > 0
    )


# ----------------------------------------------------------------------------- other modes


def test_append_without_truncate_keeps_ids_and_keys_unique(db_url, pg):
    first = synthetic.seed(db_url, leads=300, seed=1, anchor=ANCHOR, days=30)
    second = synthetic.seed(db_url, leads=200, seed=2, anchor=ANCHOR, days=30, truncate=False)
    assert scalar(pg, "select count(*) from public.module_ct_cabinet_leads") == 500
    assert scalar(pg, "select count(*) from demo.lead_truth") == 500
    assert scalar(pg, "select count(*) from demo.persons") == first.persons + second.persons
    assert scalar(pg, "select count(*) from public.drivers") == first.drivers + second.drivers
    assert scalar(pg, "select count(*) - count(distinct doc) from demo.persons") == 0
    assert (
        scalar(
            pg,
            """
        select count(*) from (select phone_e164 from demo.persons group by 1
                              having count(*) > 1 + count(shares_phone_with)) x""",
        )
        == 0
    )


def test_zero_leads_and_bad_arguments(db_url, pg):
    s = synthetic.seed(db_url, leads=0, anchor=ANCHOR)
    assert (s.leads, s.drivers, s.persons, s.trip_rows, s.claims) == (0, 0, 0, 0, 0)
    assert scalar(pg, "select count(*) from public.module_ct_cabinet_leads") == 0
    with pytest.raises(ValueError):
        synthetic.seed(db_url, leads=-1)
    with pytest.raises(ValueError):
        synthetic.seed(db_url, leads=10, days=0)


def test_default_anchor_is_today_in_lima(db_url, pg):
    synthetic.seed(db_url, leads=50, seed=3, days=10)
    today = synthetic.lima_today()
    latest = scalar(
        pg,
        """
        select max((l.lead_created_at at time zone 'America/Lima')::date)
        from public.module_ct_cabinet_leads l join demo.lead_truth t on t.lead_id = l.id where not t.invalid""",
    )
    assert today - dt.timedelta(days=10) <= latest < today
