-- popug install script, generated from extension/sql/*.sql in name order.
\echo Use "CREATE EXTENSION popug" to load this file. \quit

-- Everything lives in schema popug, a member of the extension.  Every function and view is granted to PUBLIC on purpose:
-- the functions decide, from the caller's account, what each caller may do,
-- and the views filter rows by the caller's role.  Every view is a
-- security_barrier, so that a function in a caller's WHERE clause sees only
-- the rows the view lets through.  Tables are never granted:
-- they are written only by popug's C code, which runs table access as the
-- extension owner after it has captured the caller's identity.
CREATE SCHEMA popug;
COMMENT ON SCHEMA popug IS 'popug: task tracker with honest accounting';
GRANT USAGE ON SCHEMA popug TO PUBLIC;

CREATE TYPE popug.role AS ENUM ('admin', 'manager', 'accountant', 'worker');
COMMENT ON TYPE popug.role IS 'What an account may do: admin, manager, accountant or worker';

-- popug's locks (advisory, transaction-scoped; no row lock, page write or
-- WAL), taken shared or exclusive; C names the keys with PopugLock
-- (extension/lock.h):
--   1  billing (POPUG_LOCK_BILLING): shared to apply payments, exclusive
--      to start a day's payout
--   2  payout runs (POPUG_LOCK_PAYOUT): exclusive for each step, so runs
--      never overlap
--   3  worker pool (POPUG_LOCK_POOL): shared to assign tasks, exclusive to
--      take a worker out
--   4  event log maintenance (POPUG_LOCK_RETENTION): exclusive, so runs
--      never overlap
CREATE FUNCTION popug.xact_lock(key integer, exclusive boolean)
RETURNS void
AS 'MODULE_PATHNAME', 'popug_xact_lock_sql'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION popug.xact_lock(integer, boolean) FROM PUBLIC;
COMMENT ON FUNCTION popug.xact_lock(integer, boolean) IS
	'Takes one of popug''s transaction-level locks (1 billing, 2 payout runs, 3 worker pool), shared or exclusive';
