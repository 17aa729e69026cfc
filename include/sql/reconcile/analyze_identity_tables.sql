-- Fresh planner statistics after a big record-keys phase (a cold run, a backfill), for the tables
-- the identity phase reads. A table still empty is left alone: analysed empty, the planner trusts
-- it to stay empty (a cost-0 sequential scan) while the identity phase fills it, and every batch's
-- lookups in it become scans. Not yet analysed, it is sized from its pages as it grows.
-- Needs the owner or MAINTAIN (V015); otherwise the server skips the table with a warning.
do $$
begin
    if exists (select from canon.record_keys) then
        analyze canon.record_keys;
    end if;
    if exists (select from canon.person_keys) then
        analyze canon.person_keys;
    end if;
    if exists (select from canon.identity_registry) then
        analyze canon.identity_registry;
    end if;
    if exists (select from canon.identity_links) then
        analyze canon.identity_links;
    end if;
end;
$$
