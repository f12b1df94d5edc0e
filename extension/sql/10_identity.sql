-- Identity: accounts map onto PostgreSQL roles by login.

CREATE TABLE popug.account (
	id			uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
	login		name NOT NULL,
	email		text NOT NULL,
	role		popug.role NOT NULL,
	full_name	text,
	active		boolean NOT NULL DEFAULT true,
	created_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	updated_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	CONSTRAINT account_login_key UNIQUE (login)
);
COMMENT ON TABLE popug.account IS 'popug accounts; login is the PostgreSQL role that acts as the account';

-- Active workers in a dense array: slot 1..n of worker_pool.n.  Picking a
-- random worker is one random slot number and one primary-key lookup, the
-- same cost for 10 or 1,000,000 workers.  Account changes keep it dense by
-- moving the last slot into a freed one, under the worker_pool row lock.
-- The row is made by the first worker's arrival (no row: no workers), so
-- that a restored dump brings its own.
CREATE TABLE popug.worker_pool (
	one			boolean PRIMARY KEY DEFAULT true CHECK (one),
	n			integer NOT NULL DEFAULT 0 CHECK (n >= 0)
);

CREATE TABLE popug.worker_slot (
	slot		integer PRIMARY KEY CHECK (slot > 0),
	account_id	uuid NOT NULL UNIQUE REFERENCES popug.account (id)
);
COMMENT ON TABLE popug.worker_slot IS 'Active workers, densely numbered from 1, for O(1) uniform random assignment';


CREATE FUNCTION popug.account_create(login name, email text, role popug.role,
									 full_name text DEFAULT NULL)
RETURNS uuid
AS 'MODULE_PATHNAME', 'popug_account_create'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.account_create(name, text, popug.role, text) IS
	'Creates an account for the PostgreSQL role named login (admins; a superuser bootstraps the first admin)';

CREATE FUNCTION popug.account_set_role(account_id uuid, role popug.role)
RETURNS void
AS 'MODULE_PATHNAME', 'popug_account_set_role'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.account_set_role(uuid, popug.role) IS 'Changes an account''s role (admins)';

CREATE FUNCTION popug.account_deactivate(account_id uuid)
RETURNS void
AS 'MODULE_PATHNAME', 'popug_account_deactivate'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.account_deactivate(uuid) IS 'Deactivates an account: it can no longer act or get tasks (admins)';

CREATE FUNCTION popug.account_reactivate(account_id uuid)
RETURNS void
AS 'MODULE_PATHNAME', 'popug_account_reactivate'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.account_reactivate(uuid) IS
	'Reactivates a deactivated account: it can act again and, as a worker, get tasks (admins)';

CREATE FUNCTION popug.whoami()
RETURNS popug.account
AS 'MODULE_PATHNAME', 'popug_whoami'
LANGUAGE C STRICT STABLE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.whoami() IS 'The calling role''s active account';

-- Used by the views: the caller's account id and role, NULL without an
-- active account.  Not SECURITY DEFINER: current_user is the caller here.
CREATE FUNCTION popug.caller_account_id()
RETURNS uuid
AS 'MODULE_PATHNAME', 'popug_caller_account_id'
LANGUAGE C STABLE PARALLEL RESTRICTED SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.caller_account_id() IS 'The calling role''s active account id, or NULL';

CREATE FUNCTION popug.caller_role()
RETURNS popug.role
AS 'MODULE_PATHNAME', 'popug_caller_role'
LANGUAGE C STABLE PARALLEL RESTRICTED SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.caller_role() IS 'The calling role''s popug role, or NULL without an active account';

CREATE VIEW popug.accounts WITH (security_barrier) AS
	SELECT a.id, a.login, a.email, a.role, a.full_name, a.active, a.created_at
	  FROM popug.account a
	 WHERE (SELECT popug.caller_role()) OPERATOR(pg_catalog.<>) 'worker'::popug.role
		OR a.id OPERATOR(pg_catalog.=) (SELECT popug.caller_account_id());
COMMENT ON VIEW popug.accounts IS
	'Accounts: all for admins, managers and accountants (who assign and pay them); one''s own for a worker';
GRANT SELECT ON popug.accounts TO PUBLIC;
