-- The dashboard's search by phone also finds leads that are not linked (AMBIGUOUS, for example):
-- their normalised phone is in canon.record_keys.
create index record_keys_phone_idx on canon.record_keys (phone)
where phone is not null;
