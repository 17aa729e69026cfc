-- Hostile timestamps (issue 9): a source timestamp that Python cannot hold (infinity, -infinity,
-- BC dates, years after 9999) must not stop a run, a view, the audit, the report or explain.
-- The rule lives here, in SQL, so reading a raw row is never the part that fails:
--   ops.representable_ts(ts) is ts when it lies in [0001-01-02, 9999-12-01) UTC (a month's margin
--   for the 14-day windows computed from it), else NULL.
-- The job marks a lead or driver account holding such a value INVALID_DATA (reason naming the
-- column). The limbo view (include/sql/views/) clamps: such a lead keeps its row (NO_IDENTITY: it
-- is not linked, unless it was before the edit) with lead_created_at, lead_date and week_start
-- NULL, so it falls outside every window; the weekly audit has no week for it and leaves it out.
-- Trips on such dates never fall in a window; claims count whatever their claimed_at (the views
-- never read it); explain shows NULL for such values.

create function ops.representable_ts(ts timestamptz) returns timestamptz
language sql immutable parallel safe
return case
    when ts >= '0001-01-02 00:00:00+00'::timestamptz and ts < '9999-12-01 00:00:00+00'::timestamptz then ts
end;

-- Hot keys (issue 9): how many records carry a DOC or LICENSE value is counted per batch.
create index record_keys_doc_idx on canon.record_keys (doc)
where doc is not null;

create index record_keys_license_idx on canon.record_keys (license)
where license is not null;
