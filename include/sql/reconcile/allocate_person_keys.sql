-- Reserve person keys for the batch's new persons (the insert follows with these values).
select nextval(pg_get_serial_sequence('canon.identity_registry', 'person_key')) as person_key
from generate_series(1, %(n)s::integer)
