-- Install and uninstall: schema popug holds everything, DROP EXTENSION
-- removes it all, and the messages users see for common mistakes.
\set SHOW_CONTEXT never
SELECT extname, extversion, nspname
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'popug';
-- nothing outside schema popug belongs to the extension, except the schema
SELECT count(*) AS outside
  FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'popug'
 WHERE d.deptype = 'e' AND d.classid = 'pg_proc'::regclass
   AND (SELECT pronamespace FROM pg_proc WHERE oid = d.objid) <> 'popug'::regnamespace;
-- every function has a comment, none is SECURITY DEFINER, all pin
-- search_path but payload(), which runs no SQL and names nothing (a SET
-- clause would save and restore the setting for every row it builds)
SELECT p.proname
  FROM pg_proc p
 WHERE p.pronamespace = 'popug'::regnamespace
   AND (obj_description(p.oid, 'pg_proc') IS NULL OR p.prosecdef
		OR (p.prokind <> 'p' AND p.proname <> 'payload'
			AND NOT coalesce(p.proconfig @> '{"search_path=pg_catalog, pg_temp"}', false)))
 ORDER BY 1;
-- procedures commit, so they cannot have a SET clause: payout_run only
-- runs one fully qualified statement (see 50_payout.sql)
SELECT p.proname, p.proconfig FROM pg_proc p
 WHERE p.pronamespace = 'popug'::regnamespace AND p.prokind = 'p';
-- no table is granted to PUBLIC
SELECT c.relname, c.relacl
  FROM pg_class c
 WHERE c.relnamespace = 'popug'::regnamespace AND c.relkind = 'r'
   AND c.relacl::text LIKE '%=%/%' AND aclcontains(c.relacl, makeaclitem(0, c.relowner, 'SELECT', false));
-- every table and sequence keeps its rows through pg_dump (SPEC 10): none
-- is missing from what the extension marks for dumping
SELECT c.relname
  FROM pg_class c
 WHERE c.relnamespace = 'popug'::regnamespace AND c.relkind IN ('r', 'p', 'S')
   AND c.oid NOT IN (SELECT unnest(extconfig) FROM pg_extension WHERE extname = 'popug')
 ORDER BY 1;
-- every view is a security barrier (SPEC 9: a function in a caller's
-- WHERE clause sees only the rows the view lets through)
SELECT c.relname, c.reloptions
  FROM pg_class c
 WHERE c.relnamespace = 'popug'::regnamespace AND c.relkind = 'v'
   AND NOT coalesce(c.reloptions @> '{security_barrier=true}', false);
DROP EXTENSION popug;
SELECT count(*) AS schemas_left FROM pg_namespace WHERE nspname = 'popug';
SELECT count(*) AS types_left FROM pg_type WHERE typname = 'role' AND typnamespace::regnamespace::text = 'popug';
SELECT count(*) AS publications_left FROM pg_publication WHERE pubname = 'popug_events';
CREATE EXTENSION popug;
-- what a superuser without an account sees
SELECT popug.whoami();
\echo :LAST_ERROR_SQLSTATE
CREATE ROLE regress_nobody;
SET ROLE regress_nobody;
SELECT popug.account_create('x', 'x@example.com', 'worker');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT popug.account_create('regress_nobody', 'nobody@example', 'worker');
\echo :LAST_ERROR_SQLSTATE
SELECT popug.account_create('regress_no_such_role', 'nobody@example.com', 'worker');
\echo :LAST_ERROR_SQLSTATE
DROP ROLE regress_nobody;
