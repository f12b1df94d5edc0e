-- Bad input to every function of identity, tasks, mail and stats, from
-- every role (SPEC 1, 2, 6, 7, 9): NULL, empty, huge, malformed, control
-- and invisible characters, infinite and far dates.  Each call must be
-- refused with its SQLSTATE (or 42501 for a role that may not call it at
-- all), no backend may crash, and a refused call writes nothing: the rows
-- of every popug table and the position of every popug sequence (which a
-- write rolled back would still have moved) are the same after them.
-- Then the inputs that look odd but are fine are accepted.
SELECT plan(19);
\ir setup.psql
\ir cast.psql
\set QUIET 1
SET ROLE t_manager;
SELECT popug.task_create('A task to complete') AS task \gset
RESET ROLE;
SELECT popug.payments_apply() > 0 AS applied;

CREATE TEMP TABLE ctx AS SELECT :'task'::uuid AS task, :'w1'::uuid AS w1;
GRANT SELECT ON ctx TO PUBLIC;
CREATE TEMP TABLE actors (actor text, login name);
INSERT INTO actors VALUES ('admin', 't_admin'), ('manager', 't_manager'), ('accountant', 't_accountant'),
	('worker', 't_worker1'), ('no account', 't_nobody'), ('inactive', 't_former'), ('superuser', NULL);
SELECT popug.account_create('t_former', 'former@example.com', 'worker') IS NOT NULL AS former;
SELECT popug.account_deactivate(id) FROM popug.account WHERE login = 't_former';

-- Rows of every popug table and the position of every popug sequence.
CREATE FUNCTION pg_temp.state() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r record;
	v text;
	result text := '';
BEGIN
	FOR r IN SELECT c.relname, c.relkind FROM pg_class c
			  WHERE c.relnamespace = 'popug'::regnamespace AND c.relkind IN ('r', 'p', 'S') ORDER BY 1
	LOOP
		EXECUTE format(CASE r.relkind WHEN 'S' THEN 'SELECT last_value || ''/'' || is_called FROM popug.%I'
					   ELSE 'SELECT count(*)::text FROM popug.%I' END, r.relname) INTO v;
		result := result || r.relname || '=' || v || ' ';
	END LOOP;
	RETURN result;
END $$;

-- Runs stmt as login (NULL: as the superuser) in a subtransaction; returns
-- its SQLSTATE, or 'ok' (undoing what it did).
CREATE FUNCTION pg_temp.try(login name, stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	state text;
BEGIN
	BEGIN
		IF login IS NOT NULL THEN
			EXECUTE format('SET LOCAL ROLE %I', login);
		END IF;
		EXECUTE stmt;
		RAISE EXCEPTION USING ERRCODE = 'PX000';
	EXCEPTION WHEN OTHERS THEN
		state := SQLSTATE;
	END;
	RETURN CASE state WHEN 'PX000' THEN 'ok' ELSE state END;
END $$;

-- Calls that must be refused with code by the roles in allowed (those that
-- may call the function), with code or 42501 by the others.
CREATE TEMP TABLE cases (class text, sql text, code text, allowed text[]);
CREATE FUNCTION pg_temp.add(class text, template text, code text, allowed text[], VARIADIC args text[])
RETURNS void LANGUAGE sql AS $$
	INSERT INTO cases SELECT class, format(template, a), code, allowed FROM unnest(args) a;
$$;
\set admins '{admin,superuser}'
\set users '{admin,manager,accountant,worker}'
\set money '{admin,accountant,superuser}'
\set analytics '{admin,superuser}'

-- ---- days (SPEC 7, 5): infinite, before 0001 or after 9999, too long a span ----
SELECT pg_temp.add('days', 'SELECT count(*) FROM popug.stats_day(%s)', '22023', :'money',
	$$'infinity'$$, $$'-infinity'$$, $$'4713-01-01 BC'$$, $$'0001-12-31 BC'$$, $$'10000-01-01'$$,
	$$'5874897-12-31'$$);
SELECT pg_temp.add('days', 'SELECT count(*) FROM popug.stats_days(%s)', '22023', :'money',
	$$'-infinity', 'infinity'$$, $$current_date, 'infinity'$$, $$'-infinity', current_date$$,
	$$'infinity', 'infinity'$$, $$'4713-01-01 BC', '4713-01-02 BC'$$, $$'5874897-12-30', '5874897-12-31'$$,
	$$'4713-01-01 BC', '5874897-12-31'$$, $$'0001-01-01', '9999-12-31'$$, $$current_date, current_date - 1$$);
SELECT pg_temp.add('days', 'SELECT count(*) FROM popug.stats_most_expensive_task(%s)', '22023', :'analytics',
	$$'-infinity', 'infinity'$$, $$current_date, 'infinity'$$, $$'-infinity', current_date$$,
	$$'4713-01-01 BC', '4713-01-02 BC'$$, $$'5874897-12-30', '5874897-12-31'$$, $$'0001-01-01', '9999-12-31'$$);
SELECT pg_temp.add('days', 'SELECT popug.payout_step(%s)', '22023', :'money',
	$$'infinity', 10$$, $$'5874897-12-31', 10$$, $$current_date, 0$$, $$current_date, -1$$);
SELECT pg_temp.add('days', 'CALL popug.payout_run(%s)', '22023', :'money', $$'infinity'$$, $$'5874897-12-31'$$);

-- ---- NULL where a value is needed: 22004 ----
SELECT pg_temp.add('null', 'SELECT popug.account_create(%s)', '22004', :'admins',
	$$NULL, 'a@example.com', 'worker'$$, $$'t_new', NULL, 'worker'$$, $$'t_new', 'a@example.com', NULL$$);
SELECT pg_temp.add('null', 'SELECT popug.account_set_role(%s)', '22004', :'admins',
	$$NULL, 'worker'$$, $$(SELECT w1 FROM ctx), NULL$$);
SELECT pg_temp.add('null', 'SELECT popug.account_deactivate(%s)', '22004', :'admins', 'NULL');
SELECT pg_temp.add('null', 'SELECT popug.account_reactivate(%s)', '22004', :'admins', 'NULL');
SELECT pg_temp.add('null', 'SELECT popug.mail_resend(%s)', '22004', :'admins', 'NULL');
SELECT pg_temp.add('null', 'SELECT popug.task_create(%s)', '22004', :'users', 'NULL', $$NULL, 'x', 'A-1'$$);
SELECT pg_temp.add('null', 'SELECT popug.task_complete(%s)', '22004', :'users', 'NULL');
SELECT pg_temp.add('null', 'SELECT count(*) FROM popug.stats_days(%s)', '22004', :'money',
	$$NULL, current_date$$, $$current_date, NULL$$, 'NULL, NULL');
SELECT pg_temp.add('null', 'SELECT count(*) FROM popug.stats_most_expensive_task(%s)', '22004', :'analytics',
	$$NULL, current_date$$, 'NULL, NULL');
SELECT pg_temp.add('null', 'SELECT popug.payout_step(%s)', '22004', :'money', $$current_date, NULL$$);
SELECT pg_temp.add('null', 'SELECT popug.mail_dispatch(%s)', '22004', :'admins', 'NULL');

-- ---- unknown ids and logins ----
SELECT pg_temp.add('unknown', 'SELECT popug.account_set_role(%s)', 'P0002', :'admins',
	$$'00000000-0000-0000-0000-000000000000', 'admin'$$);
SELECT pg_temp.add('unknown', 'SELECT popug.account_deactivate(%s)', 'P0002', :'admins',
	$$'00000000-0000-0000-0000-000000000000'$$);
SELECT pg_temp.add('unknown', 'SELECT popug.account_reactivate(%s)', 'P0002', :'admins',
	$$'00000000-0000-0000-0000-000000000000'$$);
SELECT pg_temp.add('unknown', 'SELECT popug.mail_resend(%s)', 'P0002', :'admins', '0', '-1', '9223372036854775807');
SELECT pg_temp.add('unknown', 'SELECT popug.task_complete(%s)', 'P0002', :'users',
	$$'00000000-0000-4000-8000-000000000000'$$);
SELECT pg_temp.add('unknown', 'SELECT popug.account_create(%s)', '42704', :'admins',
	$$'t_no_such_role', 'a@example.com', 'worker'$$, $$repeat('x', 1000000), 'a@example.com', 'worker'$$);
SELECT pg_temp.add('unknown', 'SELECT popug.account_create(%s)', '23505', :'admins',
	$$'t_worker1', 'a@example.com', 'worker'$$);

-- ---- logins and full names: one line ----
SELECT pg_temp.add('account', 'SELECT popug.account_create(%s)', '22023', :'admins',
	$$'', 'a@example.com', 'worker'$$, $$E't_new\n', 'a@example.com', 'worker'$$,
	$$'t_new', 'a@example.com', 'worker', E'Eve\nBcc: x@example.com'$$,
	$$'t_new', 'a@example.com', 'worker', E'Eve\x01'$$,
	$$'t_new', 'a@example.com', 'worker', E'Eve \u202Eevil'$$,
	$$'t_new', 'a@example.com', 'worker', E'Eve\u2028Adam'$$,
	$$'t_new', 'a@example.com', 'worker', repeat('e', 256)$$,
	$$'t_new', 'a@example.com', 'worker', repeat('e', 1000000)$$);

-- ---- email addresses (one check for accounts and mail): 22023 ----
CREATE TEMP TABLE emails (addr text, good boolean);
INSERT INTO emails SELECT a, false FROM unnest(ARRAY['', ' ', 'not-an-email', 'a@b..cd', 'a@.b.cd', 'a@b.cd.',
	'a@-b.cd', 'a@b-.cd', '.a@example.com', 'a.@example.com', 'a..b@example.com', '@example.com', 'a@',
	'a@b@example.com', 'a@localhost', 'a@1.2.3.4', 'a@[192.0.2.1]', '"a b"@example.com', 'a b@example.com',
	'a(x)@example.com', '<a@example.com>', 'a,b@example.com', 'mailto:a@example.com', 'a@exa_mple.com',
	E'a@example.com\r\nBcc: victim@example.com', E'a\t@example.com', E'a\x7f@example.com',
	E'a\u200B@example.com', E'a@exam\u202Eple.com', E'\uFEFFa@example.com', 'jörg@example.com',
	'a@exämple.com', 'пользователь@пример.рф', E'a@example.com\u00A0', repeat('a', 65) || '@example.com',
	'a@' || repeat('b', 64) || '.com', 'a@' || repeat('b.', 126) || 'com', repeat('a', 10000) || '@example.com']) a;
INSERT INTO emails SELECT a, true FROM unnest(ARRAY['a.b+c@sub.example.co.uk', 'o''brien@example.com',
	'A_B-c@EXAMPLE.COM', 'x@xn--80ak6aa92e.com', '1@a1.io', 'a!#$%&*/=?^`{|}~@example.com',
	repeat('a', 64) || '@' || repeat('b', 63) || '.com']) a;
INSERT INTO cases SELECT 'email', format('SELECT popug.account_create(''t_new'', %L, ''worker'')', addr), '22023',
	   :'admins'
  FROM emails WHERE NOT good;

-- ---- titles (SPEC 2: 1-255 characters after trimming, one line, no
-- brackets), descriptions (no control characters but line breaks and
-- tabs, no bidi controls) and Jira ids: 22023 ----
SELECT pg_temp.add('title', 'SELECT popug.task_create(%s)', '22023', :'users',
	$$''$$, $$'   '$$, $$E'\t\r\n'$$, $$E'\u200B'$$, $$E'\u3000\u00A0\u2003'$$, $$E'\uFEFF'$$, $$E'\u202E'$$,
	$$E'\u200B\u200C\u200D\u2060\u180E'$$, $$E'\u2800\u3164'$$, $$E'\u034F\uFE0F'$$, $$E'\U000E0020'$$,
	$$E'Fix\nit'$$, $$E'Fix\rit'$$, $$E'Fix\tit'$$, $$E'Fix\x01it'$$, $$E'Fix\x1bit'$$, $$E'Fix\x7fit'$$,
	$$E'Fix\u0085it'$$, $$E'Fix\u009bit'$$, $$E'Fix\u2028it'$$, $$E'Fix\u2029it'$$, $$E'Fix \u202Eti xiF'$$,
	$$E'Fix\u202Ait'$$, $$E'Fix\u2066it'$$, $$E'Fix\u2069it'$$, $$repeat('x', 256)$$,
	$$E'\u00A0' || repeat('é', 256)$$, $$repeat('x', 1000000)$$, $$'[POPUG-1] Fix it'$$, $$'Fix ] it'$$);
SELECT pg_temp.add('title', 'SELECT popug.task_create(''Fix it'', %s)', '22023', :'users',
	$$E'ok\x01'$$, $$E'ok\x7f'$$, $$E'ok\u0085'$$, $$E'ok\x1b[31mred'$$, $$E'\u202Eevil'$$, $$E'a\u2067b'$$,
	$$repeat('x', 10001)$$, $$repeat('x', 1000000)$$);
SELECT pg_temp.add('title', 'SELECT popug.task_create(''Fix it'', '''', %s)', '22023', :'users',
	$$''$$, $$' '$$, $$'popug-1'$$, $$'POPUG1'$$, $$'POPUG-'$$, $$'-1'$$, $$'1POPUG-2'$$, $$'POPUG-2 '$$,
	$$' POPUG-2'$$, $$E'POPUG-2\n'$$, $$'POPUG--2'$$, $$'PO_PUG-2'$$, $$'POPUG-2a'$$, $$'ＰＯＰＵＧ-1'$$,
	$$'POPUG-١'$$, $$E'POPUG\u200B-1'$$, $$repeat('A', 64) || '-1'$$, $$repeat('A', 1000000) || '-1'$$);

-- ---- mail, accounting ----
SELECT pg_temp.add('other', 'SELECT popug.mail_dispatch(%s)', '22023', :'admins', '-1', '-2147483648');

-- ---- an event row made up by the caller, of NULLs (it crashed the backend) ----
SELECT pg_temp.add('other', 'SELECT popug.payment_apply(%s)', '22023', :'money',
	'ROW(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)::popug.event',
	$$ROW(1, gen_random_uuid(), 'TaskAssigned', NULL, 'tasks', NULL, now(), '{}', NULL)::popug.event$$);

SELECT pg_temp.state() AS state_before \gset
SET statement_timeout = '20s';
CREATE TEMP TABLE got AS
SELECT c.class, c.sql, a.actor,
	   CASE WHEN a.actor = ANY (c.allowed) THEN ARRAY[c.code] ELSE ARRAY[c.code, '42501'] END AS expected,
	   pg_temp.try(a.login, c.sql) AS result
  FROM cases c CROSS JOIN actors a;
RESET statement_timeout;

CREATE FUNCTION pg_temp.wrong(class text) RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(format('%s as %s: %s, expected %s', left(sql, 120), actor, result,
							 array_to_string(expected, ' or ')), E'\n' ORDER BY sql, actor)
	  FROM got WHERE got.class = wrong.class AND NOT result = ANY (expected)
$$;
SELECT is(pg_temp.wrong('days'), NULL,
		  'infinite days, days before 0001 or after 9999 and too long spans are refused with 22023, promptly, by stats_* and payout_*');
SELECT is(pg_temp.wrong('null'), NULL, 'a NULL where a value is needed: 22004');
SELECT is(pg_temp.wrong('unknown'), NULL,
		  'unknown account, task or mail: P0002; a login with no such role: 42704; a login taken: 23505');
SELECT is(pg_temp.wrong('account'), NULL, 'logins and full names with control or bidi characters, or too long: 22023');
SELECT is(pg_temp.wrong('email'), NULL,
		  format('%s malformed, non-ASCII, invisible or overlong email addresses: 22023',
				 (SELECT count(*) FROM cases WHERE class = 'email')));
SELECT is(pg_temp.wrong('title'), NULL,
		  'blank, invisible-only, multi-line, bidi-controlled, bracketed or overlong titles, descriptions with control characters and malformed Jira ids: 22023');
SELECT is(pg_temp.wrong('other'), NULL, 'a negative mail batch, an event row of NULLs given to payment_apply: 22023');
SELECT is((SELECT string_agg(DISTINCT result, ', ') FROM got WHERE result IN ('ok', 'XX000', '57014')), NULL,
		  format('none of the %s refused calls succeeded, failed inside, or ran until the timeout', (SELECT count(*) FROM got)));
SELECT is(pg_temp.state(), :'state_before', 'refused calls wrote nothing: every table''s rows and every sequence as before');

-- ---- what looks odd but is fine ----
CREATE TEMP TABLE fine (class text, sql text, login name);
INSERT INTO fine SELECT 'email', format('SELECT popug.account_create(''t_new'', %L, ''worker'')', addr), NULL
  FROM emails WHERE good;
INSERT INTO fine SELECT 'title', format('SELECT popug.task_create(%s)', a), 't_worker1'
  FROM unnest(ARRAY[$$'Fix it'$$, $$E'\u00A0\u200B Fix\u00A0it \uFEFF'$$, $$'תקן את הכניסה'$$,
					$$E'Family \U0001F468\u200D\U0001F469\u200D\U0001F467'$$, $$E'abc \u200Fשלום\u200E def'$$,
					$$'Résumé ' || repeat('é', 248)$$, $$'x'$$]) a;
INSERT INTO fine SELECT 'description', format('SELECT popug.task_create(''Fix it'', %s)', a), 't_worker1'
  FROM unnest(ARRAY[$$E'line one\nline two\r\n\ttabbed'$$, $$E'para\u2028graph\u2029'$$, $$'שלום עולם'$$,
					$$repeat('x', 10000)$$, $$''$$]) a;
INSERT INTO fine SELECT 'jira', format('SELECT popug.task_create(''Fix it'', '''', %s)', a), 't_worker1'
  FROM unnest(ARRAY[$$'A-0'$$, $$'POPUG-42'$$, $$'P0PUG2-1234567890'$$, $$repeat('A', 62) || '-1'$$]) a;
INSERT INTO fine VALUES ('days', 'SELECT count(*) FROM popug.stats_days(''0001-01-01'', ''0001-01-10'')', 't_accountant'),
	('days', 'SELECT count(*) FROM popug.stats_days(''9999-12-22'', ''9999-12-31'')', 't_accountant'),
	('days', 'SELECT count(*) FROM popug.stats_day(''9999-12-31'')', 't_admin'),
	('days', 'SELECT count(*) FROM popug.stats_most_expensive_task(''0001-01-01'', ''0001-01-01'')', 't_admin'),
	('days', 'SELECT popug.payout_step(''-infinity'', 10)', 't_accountant'),
	('days', 'SELECT popug.payout_step(''4713-01-01 BC'', 10)', 't_accountant'),
	('null', 'SELECT popug.task_create(''Fix it'', NULL, NULL)', 't_worker1'),
	('null', 'SELECT count(*) FROM popug.stats_day(NULL)', 't_accountant'),
	('null', 'SELECT popug.account_create(''t_new'', ''a@example.com'', ''worker'', NULL)', 't_admin');
CREATE TEMP TABLE fine_got AS SELECT f.*, pg_temp.try(f.login, f.sql) AS result FROM fine f;
SELECT is((SELECT string_agg(format('%s: %s', sql, result), E'\n') FROM fine_got WHERE class = 'email' AND result <> 'ok'),
		  NULL, 'plain ASCII addresses are accepted: dots, plus, quotes, hyphens, punycode, 64-character parts');
SELECT is((SELECT string_agg(format('%s: %s', sql, result), E'\n') FROM fine_got WHERE class = 'title' AND result <> 'ok'),
		  NULL, 'titles with inner no-break spaces, right-to-left text, bidi marks, emoji joiners, 255 characters are accepted');
SELECT is((SELECT string_agg(format('%s: %s', sql, result), E'\n') FROM fine_got WHERE class = 'description' AND result <> 'ok'),
		  NULL, 'descriptions with line breaks, tabs, paragraph separators, right-to-left text, 10000 characters are accepted');
SELECT is((SELECT string_agg(format('%s: %s', sql, result), E'\n') FROM fine_got WHERE class = 'jira' AND result <> 'ok'),
		  NULL, 'Jira ids matching ^[A-Z][A-Z0-9]*-[0-9]+$, up to 64 characters, are accepted');
SELECT is((SELECT string_agg(format('%s: %s', sql, result), E'\n') FROM fine_got WHERE class IN ('days', 'null') AND result <> 'ok'),
		  NULL, 'days from 0001-01-01 to 9999-12-31, payouts up to -infinity or 4713 BC (nothing to do), and optional NULLs are fine');

SET ROLE t_worker1;
SELECT popug.task_create(E'\u00A0\u200B\tFix\u00A0it \uFEFF\n', E'two\nlines') AS trimmed \gset
RESET ROLE;
SELECT is((SELECT title FROM popug.task WHERE id = :'trimmed'), E'Fix\u00A0it',
		  'a title is stored trimmed of spaces and invisible characters at both ends, inner ones kept');
SELECT is((SELECT payload->>'description' FROM popug.event WHERE aggregate_id = :'trimmed' AND event_name = 'TaskCreated'),
		  E'two\nlines', 'a description keeps its line breaks');
SET ROLE t_accountant;
SELECT is(popug.payout_step('-infinity', 10), true, 'payout_step up to -infinity has nothing to do');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM popug.billing_day), 0, 'and closed no day');

-- ---- the mailer's check of a payout's address is account_create's ----
SELECT count(popug.event_append('PayoutMade', 1, 'payout', :'w1',
		jsonb_build_object('account_id', :'w1'::uuid, 'email', addr, 'billing_day', current_date, 'amount', 1.00)))
	   AS payouts
  FROM emails;
SELECT popug.mail_dispatch(0) AS dispatched;
SELECT is((SELECT string_agg(format('%s: %s %s', left(e.addr, 40), m.status, m.last_error), E'\n')
			 FROM emails e LEFT JOIN popug.mail m ON m.to_addr IS NOT DISTINCT FROM e.addr
			WHERE m.id IS NULL OR (m.status = 'failed') = e.good
			   OR (m.status = 'failed') <> coalesce(m.last_error LIKE 'invalid recipient address%', false)),
		  NULL, 'the mailer queues as failed, never to be sent, exactly the addresses account_create refuses');

SELECT * FROM finish();
