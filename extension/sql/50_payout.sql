-- Daily payout.  See extension/payout.c for the steps.

CREATE FUNCTION popug.payout_step(upto date, batch integer)
RETURNS boolean
AS 'MODULE_PATHNAME', 'popug_payout_step_sql'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.payout_step(date, integer) IS
	'One transaction''s worth of closing every day up to upto (NULL: yesterday): starts a day, pays a batch, or closes a day; true when done (admins, accountants)';

-- No SET clause: it commits between steps, which a SET clause forbids.
-- It runs a single fully qualified statement, so the caller's search_path
-- does not matter.
CREATE PROCEDURE popug.payout_run(day date DEFAULT NULL)
AS 'MODULE_PATHNAME', 'popug_payout_run'
LANGUAGE C;
COMMENT ON PROCEDURE popug.payout_run(date) IS
	'Closes every open day up to day (NULL: yesterday in popug.timezone), committing every popug.payout_batch_size accounts (admins, accountants)';
