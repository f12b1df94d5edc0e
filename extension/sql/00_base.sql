-- popug install script, generated from extension/sql/*.sql in name order.
\echo Use "CREATE EXTENSION popug" to load this file. \quit

-- Everything lives in schema popug, a member of the extension.  Every function and view is granted to PUBLIC on purpose:
-- the functions decide, from the caller's account, what each caller may do,
-- and the views filter rows by the caller's role.  Tables are never granted:
-- they are written only by popug's C code, which runs table access as the
-- extension owner after it has captured the caller's identity.
CREATE SCHEMA popug;
COMMENT ON SCHEMA popug IS 'popug: task tracker with honest accounting';
GRANT USAGE ON SCHEMA popug TO PUBLIC;

CREATE TYPE popug.role AS ENUM ('admin', 'manager', 'accountant', 'worker');
COMMENT ON TYPE popug.role IS 'What an account may do: admin, manager, accountant or worker';
