-- Security matrix (SPEC 9): every role against every popug function, view
-- and table.  Each call runs in a subtransaction that is rolled back, so
-- the calls do not affect each other; the result is 'ok' or the SQLSTATE.
-- A last check makes sure no popug function or table escapes the matrix.
SELECT plan(8);
\ir setup.psql
\set QUIET 1

-- ---- the cast: one account of each role, an inactive one, a role without ----
SELECT popug.account_create('t_admin', 'admin@example.com', 'admin');
SELECT popug.account_create('t_manager', 'manager@example.com', 'manager');
SELECT popug.account_create('t_accountant', 'accountant@example.com', 'accountant');
SELECT popug.account_create('t_worker1', 'w1@example.com', 'worker');
SELECT popug.account_create('t_former', 'former@example.com', 'worker');
SELECT popug.account_deactivate((SELECT id FROM popug.account WHERE login = 't_former'));
SET ROLE t_manager;
SELECT popug.task_create('Task of worker one') AS task \gset
RESET ROLE;
SELECT popug.account_create('t_worker2', 'w2@example.com', 'worker');
SELECT popug.consumer_create('sec_consumer');
SELECT popug.payments_apply();
-- a failed mail (no SMTP server listens on port 1) and a dead letter, for
-- the admin's chores
SELECT popug.event_append('PayoutMade', 1, 'payout', id, jsonb_build_object('account_id', id,
		'email', 'w1@example.com', 'billing_day', '2026-11-20', 'amount', 12.50))
  FROM popug.account WHERE login = 't_worker1';
SELECT popug.event_append('TaskCompleted', 9, 'import', NULL, '{}');
SET popug.smtp_url = 'smtp://127.0.0.1:1';
SET popug.mail_max_attempts = 1;
SELECT popug.mail_dispatch(10), popug.payments_apply();
RESET popug.smtp_url;
RESET popug.mail_max_attempts;

-- What the calls below refer to, readable by every role.
CREATE TEMP TABLE ctx AS
SELECT (SELECT id FROM popug.account WHERE login = 't_worker2') AS worker2,
	   (SELECT id FROM popug.account WHERE login = 't_former') AS former,
	   (SELECT id FROM popug.mail WHERE status = 'failed') AS failed_mail,
	   :'task'::uuid AS task,
	   (SELECT e FROM popug.event e WHERE event_name = 'TaskAssigned' LIMIT 1) AS ev;
GRANT SELECT ON ctx TO PUBLIC;

CREATE TEMP TABLE actors (actor text, login name);
INSERT INTO actors VALUES ('admin', 't_admin'), ('manager', 't_manager'),
	('accountant', 't_accountant'), ('worker', 't_worker1'),
	('no account', 't_nobody'), ('inactive', 't_former');

-- ---- functions: who may call what ----
-- allowed: the actors for whom the call succeeds; the others must get
-- `refused` (42501 unless said otherwise).
CREATE TEMP TABLE calls (fn text, sql text, allowed text[], refused text DEFAULT '42501');
INSERT INTO calls VALUES
('account_create', $$SELECT popug.account_create('t_new', 'new@example.com', 'worker')$$, '{admin}'),
('account_set_role', $$SELECT popug.account_set_role((SELECT worker2 FROM ctx), 'manager')$$, '{admin}'),
('account_deactivate', $$SELECT popug.account_deactivate((SELECT worker2 FROM ctx))$$, '{admin}'),
('account_reactivate', $$SELECT popug.account_reactivate((SELECT former FROM ctx))$$, '{admin}'),
('whoami', $$SELECT popug.whoami()$$, '{admin,manager,accountant,worker}'),
('caller_account_id', $$SELECT popug.caller_account_id()$$, '{admin,manager,accountant,worker,no account,inactive}'),
('caller_role', $$SELECT popug.caller_role()$$, '{admin,manager,accountant,worker,no account,inactive}'),
('consumer_create', $$SELECT popug.consumer_create('sec_new')$$, '{admin}'),
('events_read', $$SELECT count(*) FROM popug.events_read('sec_consumer')$$, '{admin}'),
('events_ack', $$SELECT popug.events_ack('sec_consumer')$$, '{admin}'),
('payload', $$SELECT popug.payload('k', 1)$$, '{admin,manager,accountant,worker,no account,inactive}'),
('event_append', $$SELECT popug.event_append('X', 1, 'x', gen_random_uuid(), '{}')$$, '{}'),
('dead_letter_retry', $$SELECT popug.dead_letter_retry(gen_random_uuid())$$, '{}'),
('event_maintenance', $$SELECT popug.event_maintenance()$$, '{admin}'),
('worker_status_rows', $$SELECT count(*) FROM popug.worker_status_rows()$$, '{admin,manager,accountant,worker,no account,inactive}'),
('task_create', $$SELECT popug.task_create('A new task')$$, '{admin,manager,accountant,worker}'),
('task_complete', $$SELECT popug.task_complete((SELECT task FROM ctx))$$, '{worker}'),
('tasks_shuffle', $$SELECT popug.tasks_shuffle()$$, '{admin,manager}'),
('xact_lock', $$SELECT popug.xact_lock(1, false)$$, '{}'),
('billing_day_open', $$SELECT popug.billing_day_open()$$, '{}'),
('payment_apply', $$SELECT popug.payment_apply((SELECT ev FROM ctx))$$, '{admin,accountant}'),
('payments_apply', $$SELECT popug.payments_apply()$$, '{admin,accountant}'),
('payout_run', $$CALL popug.payout_run('2000-01-01')$$, '{admin,accountant}'),
('payout_step', $$SELECT popug.payout_step('2000-01-01', 10)$$, '{admin,accountant}'),
('mail_dispatch', $$SELECT popug.mail_dispatch(0)$$, '{admin}'),
('mail_resend', $$SELECT popug.mail_resend((SELECT failed_mail FROM ctx))$$, '{admin}'),
('stats_day', $$SELECT popug.stats_day()$$, '{admin,accountant}'),
('stats_days', $$SELECT count(*) FROM popug.stats_days(current_date - 1, current_date)$$, '{admin,accountant}'),
('stats_most_expensive_task', $$SELECT count(*) FROM popug.stats_most_expensive_task(current_date - 1, current_date)$$, '{admin}');

CREATE FUNCTION pg_temp.try(login name, stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	state text;
BEGIN
	BEGIN
		EXECUTE format('SET LOCAL ROLE %I', login);
		EXECUTE stmt;
		RAISE EXCEPTION USING ERRCODE = 'PX000';	-- undo what it did
	EXCEPTION WHEN OTHERS THEN
		state := SQLSTATE;
	END;
	RETURN CASE state WHEN 'PX000' THEN 'ok' ELSE state END;
END $$;

CREATE TEMP TABLE got AS
SELECT c.fn, a.actor,
	   CASE WHEN a.actor = ANY (c.allowed) THEN 'ok'
			-- an unknown event: the admin passes the permission check
			WHEN c.fn = 'dead_letter_retry' AND a.actor = 'admin' THEN 'P0002'
			ELSE c.refused END AS expected,
	   pg_temp.try(a.login, c.sql) AS result
  FROM calls c CROSS JOIN actors a;

SELECT is((SELECT string_agg(format('%s as %s: %s, expected %s', fn, actor, result, expected), E'\n' ORDER BY fn, actor)
			 FROM got WHERE result IS DISTINCT FROM expected),
		  NULL, format('%s function calls by %s roles: each allowed or refused as SPEC 9 says',
					   (SELECT count(*) FROM calls), (SELECT count(*) FROM actors)));

SELECT is((SELECT string_agg(p.proname, ', ' ORDER BY p.proname)
			 FROM pg_proc p
			WHERE p.pronamespace = 'popug'::regnamespace
			  AND p.proname NOT IN (SELECT fn FROM calls)),
		  NULL, 'every popug function is in the matrix');

-- ---- tables: no role but the owner may read or write them ----
CREATE TEMP TABLE table_got AS
SELECT c.relname, a.actor, op,
	   pg_temp.try(a.login, format(
		   CASE op WHEN 'SELECT' THEN 'SELECT * FROM popug.%1$I LIMIT 1'
				   WHEN 'INSERT' THEN 'INSERT INTO popug.%1$I DEFAULT VALUES'
				   WHEN 'UPDATE' THEN 'UPDATE popug.%1$I SET %2$I = %2$I'
				   ELSE 'DELETE FROM popug.%1$I' END,
		   c.relname,
		   (SELECT attname FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped
			   AND attidentity = '' AND attgenerated = '' ORDER BY attnum DESC LIMIT 1))) AS result
  FROM pg_class c CROSS JOIN actors a
	   CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) op
 WHERE c.relnamespace = 'popug'::regnamespace AND c.relkind IN ('r', 'p');

SELECT is((SELECT string_agg(format('%s %s as %s: %s', op, relname, actor, result), E'\n')
			 FROM table_got WHERE result <> '42501'),
		  NULL, format('%s direct reads and writes of popug tables, all refused with 42501',
					   (SELECT count(*) FROM table_got)));

-- ---- views: what each role sees ----
CREATE FUNCTION pg_temp.seen(login name, view text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	EXECUTE format('SET LOCAL ROLE %I', login);
	EXECUTE format('SELECT count(*) FROM popug.%I', view) INTO n;
	RESET ROLE;
	RETURN n;
END $$;

CREATE TEMP TABLE seen AS
SELECT v.relname AS view, a.actor, pg_temp.seen(a.login, v.relname) AS n
  FROM pg_class v CROSS JOIN actors a
 WHERE v.relnamespace = 'popug'::regnamespace AND v.relkind = 'v';

-- Expected: all rows for who may see everything, one's own for the rest.
CREATE TEMP TABLE want (view text, sees_all text[], own_rows text);
INSERT INTO want VALUES
('accounts', '{admin,manager,accountant}', $$SELECT count(*) FROM popug.account WHERE login = %L AND active$$),
('tasks', '{admin,manager}', NULL),
('my_tasks', '{}', $$SELECT count(*) FROM popug.task t JOIN popug.account a ON a.id = t.assignee_id WHERE a.login = %L AND a.active$$),
('audit_log', '{admin,accountant}', NULL),
('my_audit_log', '{}', $$SELECT count(*) FROM popug.payment p JOIN popug.account a ON a.id = p.account_id WHERE a.login = %L AND a.active$$),
('balances', '{admin,accountant}', NULL),
('my_balance', '{}', $$SELECT count(*) FROM popug.account a WHERE a.login = %L AND a.active$$),
('mails', '{admin}', $$SELECT count(*) FROM popug.mail m JOIN popug.account a ON a.id = m.account_id WHERE a.login = %L AND a.active$$),
('dead_letters', '{admin}', NULL),
('consumer_lag', '{admin}', NULL),
('worker_status', '{admin}', NULL),
('metrics', '{admin}', NULL);

CREATE FUNCTION pg_temp.expect(w want, actor text, login name) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	n bigint := 0;
	base text := CASE w.view
		WHEN 'accounts' THEN 'account' WHEN 'balances' THEN 'account' WHEN 'tasks' THEN 'task'
		WHEN 'audit_log' THEN 'payment' WHEN 'consumer_lag' THEN 'consumer' WHEN 'mails' THEN 'mail'
		WHEN 'dead_letters' THEN 'dead_letter'
		WHEN 'worker_status' THEN NULL END;
BEGIN
	IF actor = ANY (w.sees_all) THEN
		IF w.view = 'metrics' THEN
			n := 1;
		ELSIF base IS NULL THEN
			SELECT count(*) INTO n FROM popug.worker_status_rows();
		ELSE
			EXECUTE format('SELECT count(*) FROM popug.%I', base) INTO n;
		END IF;
	ELSIF w.own_rows IS NOT NULL THEN
		EXECUTE format(w.own_rows, login) INTO n;
	END IF;
	RETURN n;
END $$;

SELECT is((SELECT string_agg(format('%s as %s: %s rows, expected %s', s.view, s.actor, s.n,
									pg_temp.expect(w, s.actor, a.login)), E'\n')
			 FROM seen s JOIN actors a USING (actor) JOIN want w USING (view)
			WHERE s.n <> pg_temp.expect(w, s.actor, a.login)),
		  NULL, 'each role sees in each view what SPEC 9 allows');
SELECT is((SELECT string_agg(DISTINCT view, ', ') FROM seen WHERE view NOT IN (SELECT view FROM want)),
		  NULL, 'every popug view is in the matrix');
SELECT ok((SELECT count(*) FROM popug.payment) > 0 AND (SELECT count(*) FROM popug.task) > 0
		  AND (SELECT count(*) FROM popug.mail) > 0 AND (SELECT count(*) FROM popug.dead_letter) > 0,
		  'the views had rows to hide');

-- ---- search_path attacks ----
-- A worker puts look-alikes of what popug uses first on its search_path
-- (and in pg_temp): popug must run its own code regardless.
CREATE TABLE public.trap_log (what text);
GRANT INSERT ON public.trap_log TO PUBLIC;
CREATE SCHEMA evil;
GRANT USAGE ON SCHEMA evil TO PUBLIC;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql
	AS $$ INSERT INTO public.trap_log VALUES ('now'); SELECT pg_catalog.now() $$;
CREATE FUNCTION evil.random() RETURNS double precision LANGUAGE sql
	AS $$ INSERT INTO public.trap_log VALUES ('random'); SELECT 0.5::float8 $$;
CREATE FUNCTION evil.gen_random_uuid() RETURNS uuid LANGUAGE sql
	AS $$ INSERT INTO public.trap_log VALUES ('gen_random_uuid'); SELECT '00000000-0000-0000-0000-000000000000'::uuid $$;
CREATE FUNCTION evil.md5(text) RETURNS text LANGUAGE sql
	AS $$ INSERT INTO public.trap_log VALUES ('md5'); SELECT '00000000000000000000000000000000'::text $$;
CREATE FUNCTION evil.uuid_eq(uuid, uuid) RETURNS boolean LANGUAGE sql
	AS $$ INSERT INTO public.trap_log VALUES ('='); SELECT $1::text = $2::text $$;
CREATE OPERATOR evil.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = evil.uuid_eq);
CREATE TABLE evil.task (id uuid);
CREATE TABLE evil.account (id uuid);
GRANT ALL ON evil.task, evil.account TO PUBLIC;

SET ROLE t_manager;
SET search_path = evil, public, pg_catalog;
SELECT popug.task_create('Trapped?') IS NOT NULL AS created;
SELECT popug.tasks_shuffle() >= 0 AS shuffled;
SELECT count(*) >= 0 FROM popug.tasks;
RESET search_path;
RESET ROLE;
SELECT is((SELECT string_agg(what, ', ') FROM public.trap_log), NULL,
		  'no function, operator or table from the caller''s search_path ran inside popug');
SELECT is((SELECT count(*)::int FROM evil.task), 0, 'and popug wrote nothing into look-alike tables');

SELECT * FROM finish();
