-- The id of the decision being made, known before its effects are written (the link's evidence and
-- the manual-action declaration name it).
select nextval(pg_get_serial_sequence('ops.manual_decisions', 'decision_id')) as decision_id
