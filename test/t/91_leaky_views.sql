-- Leaky functions against the views (SPEC 9): a caller puts a cheap
-- function that records its argument in the WHERE clause of a query on a
-- popug view.  Whatever the view, the column, the function's volatility
-- and the caller's role, the function must see exactly the rows the view
-- shows that caller, never a row it filters out.
SELECT plan(6);
\ir setup.psql
\ir cast.psql
\set QUIET 1

-- ---- rows of every kind, for two workers (so that each has foreign rows) ----
SET ROLE t_manager;
DO $$
BEGIN
	FOR i IN 1..200 LOOP
		EXIT WHEN (SELECT count(DISTINCT assignee_id) FROM popug.tasks) = 2
			  AND (SELECT min(n) FROM (SELECT count(*) AS n FROM popug.tasks GROUP BY assignee_id) c) >= 2;
		PERFORM popug.task_create('Secret task ' || i, 'secret description ' || i);
	END LOOP;
END $$;
RESET ROLE;
-- the workers complete them (a reward is never below a fee), so that both
-- are paid out
DO $$
DECLARE
	r record;
BEGIN
	FOR r IN SELECT t.id, a.login FROM popug.task t JOIN popug.account a ON a.id = t.assignee_id
	LOOP
		EXECUTE format('SET LOCAL ROLE %I', r.login);
		PERFORM popug.task_complete(r.id);
		RESET ROLE;
	END LOOP;
END $$;
SELECT popug.payments_apply() > 0 AS applied;
CALL popug.payout_run(current_date);
SELECT popug.mail_dispatch(0) >= 0 AS queued;
SELECT popug.consumer_create('leak_consumer');
SELECT popug.event_append('TaskCompleted', 9, 'import', NULL, '{"secret": "dead letter"}') IS NOT NULL AS bad;
SELECT popug.payments_apply() >= 0 AS dead_lettered;
SET ROLE t_manager;
SELECT popug.task_create('Open secret ' || i, 'open secret description ' || i) IS NOT NULL FROM generate_series(1, 4) i;
RESET ROLE;

SELECT ok((SELECT count(DISTINCT account_id) FROM popug.mail) = 2
		  AND (SELECT count(DISTINCT assignee_id) FROM popug.task) = 2
		  AND (SELECT count(DISTINCT account_id) FROM popug.payment) = 2,
		  'both workers have tasks, payments and a mail of their own, to hide from each other');

-- ---- the leaks: one that writes to a table, one that is IMMUTABLE (and so
-- can be pushed into a view with ORDER BY) and notes what it saw in a
-- setting; both cost next to nothing, so the planner runs them first ----
CREATE TEMP TABLE leaked (v text);
GRANT INSERT, SELECT, TRUNCATE ON leaked TO PUBLIC;
CREATE FUNCTION pg_temp.leak_volatile(v anyelement) RETURNS boolean
LANGUAGE plpgsql VOLATILE COST 0.0000001 AS $$
BEGIN
	INSERT INTO pg_temp.leaked VALUES (v::text);
	RETURN true;
END $$;
CREATE FUNCTION pg_temp.leak_immutable(v anyelement) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE COST 0.0000001 AS $$
BEGIN
	RAISE NOTICE 'leaked: %', v;
	PERFORM pg_catalog.set_config('leak.seen',
		(pg_catalog.current_setting('leak.seen')::jsonb
		 || COALESCE(pg_catalog.to_jsonb(v::text), 'null'::jsonb))::text, false);
	RETURN true;
END $$;

-- What the leak saw, as login, against what the view shows it: NULL when
-- they are the same rows, else what leaked beyond them.  seqscan turns
-- index scans off, as an attacker may, so that a filter on an indexed
-- column does not keep the other rows from being read.
CREATE FUNCTION pg_temp.probe(login name, view text, col text, leak text, seqscan boolean) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	shown text[];
	seen text[];
BEGIN
	TRUNCATE pg_temp.leaked;
	PERFORM set_config('leak.seen', '[]', false);
	SET client_min_messages = warning;
	EXECUTE format('SET LOCAL ROLE %I', login);
	EXECUTE format('SELECT coalesce(array_agg(%1$I::text ORDER BY %1$I::text), ''{}'') FROM popug.%2$I', col, view)
		INTO shown;
	PERFORM set_config('enable_indexscan', (NOT seqscan)::text, true),
			set_config('enable_bitmapscan', (NOT seqscan)::text, true);
	EXECUTE format('SELECT count(*) FROM popug.%I v WHERE pg_temp.%s(v.%I)', view, leak, col);
	RESET ROLE;
	RESET client_min_messages;
	RESET enable_indexscan;
	RESET enable_bitmapscan;
	IF leak = 'leak_volatile' THEN
		SELECT coalesce(array_agg(v ORDER BY v), '{}') INTO seen FROM pg_temp.leaked;
	ELSE
		SELECT coalesce(array_agg(v ORDER BY v), '{}') INTO seen
		  FROM jsonb_array_elements_text(current_setting('leak.seen')::jsonb) v;
	END IF;
	IF seen = shown THEN
		RETURN NULL;
	END IF;
	RETURN format('%s as %s, %s(%s)%s: saw %s rows, the view shows %s; beyond them: %s', view, login, leak, col,
				  CASE WHEN seqscan THEN ' without index scans' ELSE '' END,
				  cardinality(seen), cardinality(shown),
				  (SELECT string_agg(x, ', ') FROM (SELECT unnest(seen) EXCEPT ALL SELECT unnest(shown)) e(x)));
END $$;

-- Every view, with the columns whose values must not leak.
CREATE TEMP TABLE probes (view text, col text);
INSERT INTO probes VALUES
	('accounts', 'email'), ('accounts', 'login'),
	('tasks', 'description'), ('tasks', 'title'), ('tasks', 'assignee_login'),
	('my_tasks', 'description'), ('my_tasks', 'assign_fee'),
	('my_balance', 'amount'), ('my_balance', 'account_id'), ('my_balance', 'login'),
	('balances', 'amount'), ('balances', 'login'),
	('my_audit_log', 'description'), ('my_audit_log', 'credit'), ('my_audit_log', 'task_title'),
	('audit_log', 'description'), ('audit_log', 'login'),
	('mails', 'to_addr'), ('mails', 'subject'), ('mails', 'login'),
	('dead_letters', 'error'), ('dead_letters', 'payload'),
	('consumer_lag', 'consumer'),
	('worker_status', 'worker'),
	('metrics', 'accounts_in_debt'), ('metrics', 'events_total');
CREATE TEMP TABLE callers (login name);
INSERT INTO callers VALUES ('t_worker1'), ('t_worker2'), ('t_manager'), ('t_accountant'), ('t_admin'),
	('t_nobody'), ('t_former');

SELECT is((SELECT string_agg(v.relname, ', ') FROM pg_class v
			WHERE v.relnamespace = 'popug'::regnamespace AND v.relkind = 'v'
			  AND v.relname NOT IN (SELECT view FROM probes)),
		  NULL, 'every popug view is probed');

CREATE TEMP TABLE results AS
SELECT p.view, c.login, l.leak, pg_temp.probe(c.login, p.view, p.col, l.leak, seqscan) AS leak_found
  FROM probes p CROSS JOIN callers c CROSS JOIN (VALUES ('leak_volatile'), ('leak_immutable')) l(leak)
	   CROSS JOIN (VALUES (false), (true)) s(seqscan);

SELECT is((SELECT string_agg(leak_found, E'\n' ORDER BY leak_found) FROM results
			WHERE login = 't_worker1' AND leak = 'leak_volatile'),
		  NULL, 'a worker''s VOLATILE leaky function sees only its own rows, in every view');
SELECT is((SELECT string_agg(leak_found, E'\n' ORDER BY leak_found) FROM results
			WHERE login = 't_worker1' AND leak = 'leak_immutable'),
		  NULL, 'a worker''s IMMUTABLE leaky function too (views with ORDER BY included)');
SELECT is((SELECT string_agg(leak_found, E'\n' ORDER BY leak_found) FROM results
			WHERE login IN ('t_manager', 't_accountant')),
		  NULL, 'a manager''s or an accountant''s sees no money or mail of others beyond what its role shows');
SELECT is((SELECT string_agg(leak_found, E'\n' ORDER BY leak_found) FROM results
			WHERE login NOT IN ('t_worker1', 't_manager', 't_accountant')),
		  NULL, 'nor does another worker''s, an admin''s, an inactive account''s or a role''s without an account');

SELECT * FROM finish();
