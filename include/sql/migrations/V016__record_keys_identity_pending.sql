-- The phase split (issue 10): a range's record keys are normalised and stored first, in large
-- chunks and without the identity lock; the identity decision follows in batches. A record whose
-- keys were stored but whose identity was not yet decided (the run died between the two phases)
-- must still be picked up by the next run although its keys are fresh: `identity_pending` says
-- so. It is set whenever keys are (re)stored and cleared in the transaction that decides.
alter table canon.record_keys add column identity_pending boolean not null default false;

-- Room on each page so clearing the flag (an unindexed column) is a HOT update, without touching
-- the table's four indexes (new pages; existing ones get it as they are rewritten).
alter table canon.record_keys set (fillfactor = 80);
