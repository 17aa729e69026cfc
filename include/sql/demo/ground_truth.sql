-- Ground truth of the synthetic data set written by cabinet_leads.synthetic.seed().
-- Not a migration: the seeder applies it (idempotent) before loading. Nothing in the job reads it;
-- tests and demos use it to score the reconciliation ("which person is this lead really?").

create schema if not exists demo;

-- The true persons. Canonical values: names with accents in title case, phone as E.164 mobile
-- (+519XXXXXXXX), doc as DNI (8 digits) or carné de extranjería (9 digits, leading zeros),
-- license as letter + 8 digits. phone_e164 is NOT unique: relatives may share one phone.
create table if not exists demo.persons (
    person_id bigint primary key,
    first_name text not null,
    last_name text not null,
    phone_e164 text,
    doc text,
    doc_type text check (doc_type in ('DNI', 'CE')),
    license text,
    plate text,
    shares_phone_with bigint
);

-- Which person each lead really belongs to; invalid = the lead carries unusable data
-- (a 2,000+ character field, or a lead_created_at years in the future).
create table if not exists demo.lead_truth (
    lead_id bigint primary key,
    person_id bigint not null,
    invalid boolean not null default false
);

-- Which person owns each driver account (a person may own several).
create table if not exists demo.driver_truth (
    driver_id text primary key,
    person_id bigint not null
);

create index if not exists lead_truth_person_idx on demo.lead_truth (person_id);
create index if not exists driver_truth_person_idx on demo.driver_truth (person_id);

-- What seed() wrote: the row count of each source table right after seeding. A database whose
-- source tables hold rows and whose counts differ from these (or that has no marker) holds data
-- seed did not write, and seed refuses to replace it unless told to (--replace-existing-data).
create table if not exists demo.seed_marker (
    table_name text primary key,
    row_count bigint not null,
    seeded_at timestamptz not null default now()
);
