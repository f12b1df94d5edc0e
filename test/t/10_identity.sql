-- Identity (SPEC 1): account functions, caller identity, permissions,
-- SQLSTATEs, events, and that a refused call writes nothing.
SELECT plan(69);
\ir setup.psql

-- ---- bootstrap: a superuser creates the first admin ----
SELECT lives_ok($$ SELECT popug.account_create('t_admin', 'admin@example.com', 'admin', 'Ada Admin') $$,
	'a superuser bootstraps the first admin');
SELECT is((SELECT role::text FROM popug.account WHERE login = 't_admin'), 'admin', 'admin account stored');
SELECT is((SELECT count(*)::int FROM popug.event WHERE event_name = 'AccountCreated'), 1, 'AccountCreated written');
SELECT is((SELECT payload FROM popug.event WHERE event_name = 'AccountCreated'),
	jsonb_build_object('account_id', (SELECT id FROM popug.account WHERE login = 't_admin'),
					   'login', 't_admin', 'email', 'admin@example.com', 'role', 'admin',
					   'full_name', 'Ada Admin'),
	'AccountCreated payload has every key of SPEC 3');
SELECT is((SELECT (event_version, producer, aggregate_id)::text FROM popug.event WHERE event_name = 'AccountCreated'),
	(SELECT (1, 'auth', id)::text FROM popug.account WHERE login = 't_admin'), 'AccountCreated v1 from auth, aggregate is the account');

-- ---- the admin manages accounts ----
SET ROLE t_admin;
SELECT lives_ok($$ SELECT popug.account_create('t_manager', 'manager@example.com', 'manager') $$, 'admin creates a manager');
SELECT lives_ok($$ SELECT popug.account_create('t_accountant', 'acc@example.com', 'accountant') $$, 'admin creates an accountant');
SELECT lives_ok($$ SELECT popug.account_create('t_worker1', 'w1@example.com', 'worker') $$, 'admin creates worker 1');
SELECT lives_ok($$ SELECT popug.account_create('t_worker2', 'w2@example.com', 'worker') $$, 'admin creates worker 2');
SELECT lives_ok($$ SELECT popug.account_create('t_worker3', 'w3@example.com', 'worker') $$, 'admin creates worker 3');
SELECT is((SELECT login::text FROM popug.whoami()), 't_admin', 'whoami is the admin after SET ROLE');
RESET ROLE;

SELECT is((SELECT n FROM popug.worker_pool), 3, 'three active workers in the pool');
SELECT bag_eq($$ SELECT slot FROM popug.worker_slot $$, $$ VALUES (1), (2), (3) $$, 'worker slots are dense');

-- ---- errors, each with its SQLSTATE, each writing nothing ----
CREATE TEMP TABLE before AS SELECT (SELECT count(*) FROM popug.account) AS accounts,
	(SELECT count(*) FROM popug.event) AS events;
GRANT SELECT ON before TO PUBLIC;

SET ROLE t_admin;
SELECT throws_ok($$ SELECT popug.account_create('t_worker1', 'x@example.com', 'worker') $$,
	'23505', 'popug account with login "t_worker1" already exists', 'duplicate login is 23505');
SELECT throws_ok($$ SELECT popug.account_create('t_new', 'not-an-email', 'worker') $$,
	'22023', NULL, 'malformed email is 22023');
SELECT throws_ok($$ SELECT popug.account_create('t_new', E'a@example.com\r\nBcc: x@evil.example', 'worker') $$,
	'22023', NULL, 'CR/LF in an email is 22023');
SELECT throws_ok($$ SELECT popug.account_create('t_new', 'a@b@example.com', 'worker') $$,
	'22023', NULL, 'two @ is 22023');
SELECT throws_ok($$ SELECT popug.account_create('t_new', 'a@example.com', 'worker', E'Eve\nBcc: x') $$,
	'22023', NULL, 'a full name with a newline is 22023');
SELECT throws_ok($$ SELECT popug.account_create('', 'a@example.com', 'worker') $$,
	'22023', NULL, 'empty login is 22023');
SELECT throws_ok($$ SELECT popug.account_create(NULL, 'a@example.com', 'worker') $$,
	'22004', NULL, 'NULL login is 22004');
SELECT throws_ok($$ SELECT popug.account_set_role('00000000-0000-0000-0000-000000000000', 'admin') $$,
	'P0002', NULL, 'set_role of an unknown account is P0002');
SELECT throws_ok($$ SELECT popug.account_deactivate('00000000-0000-0000-0000-000000000000') $$,
	'P0002', NULL, 'deactivating an unknown account is P0002');
RESET ROLE;

-- ---- permission rules ----
SET ROLE t_worker1;
SELECT throws_ok($$ SELECT popug.account_create('t_new', 'a@example.com', 'worker') $$,
	'42501', NULL, 'a worker cannot create accounts');
SELECT throws_ok($$ SELECT popug.account_set_role((SELECT popug.caller_account_id()), 'admin') $$,
	'42501', NULL, 'a worker cannot promote itself');
RESET ROLE;
SET ROLE t_manager;
SELECT throws_ok($$ SELECT popug.account_deactivate((SELECT popug.caller_account_id())) $$,
	'42501', NULL, 'a manager cannot deactivate accounts');
RESET ROLE;
SET ROLE t_nobody;
SELECT throws_ok($$ SELECT popug.whoami() $$, '42501', 'role "t_nobody" has no active popug account',
	'a role without an account is refused, by name');
SELECT throws_ok($$ SELECT popug.account_create('t_new', 'a@example.com', 'worker') $$,
	'42501', NULL, 'a role without an account cannot create accounts');
SELECT is(popug.caller_account_id(), NULL, 'caller_account_id is NULL without an account');
RESET ROLE;

SELECT is((SELECT count(*) FROM popug.account), (SELECT accounts FROM before), 'refused calls wrote no account');
SELECT is((SELECT count(*) FROM popug.event), (SELECT events FROM before), 'refused calls wrote no event');

-- ---- role changes and deactivation keep the worker pool exact ----
SET ROLE t_admin;
SELECT lives_ok($$ SELECT popug.account_set_role((SELECT id FROM popug.accounts WHERE login = 't_worker1'), 'manager') $$,
	'admin changes a worker into a manager');
RESET ROLE;
SELECT is((SELECT payload - 'account_id' FROM popug.event WHERE event_name = 'AccountRoleChanged'),
	'{"role": "manager", "old_role": "worker"}'::jsonb, 'AccountRoleChanged carries role and old_role');
SELECT is((SELECT n FROM popug.worker_pool), 2, 'pool shrinks when a worker becomes a manager');
SELECT bag_eq($$ SELECT slot FROM popug.worker_slot $$, $$ VALUES (1), (2) $$, 'slots stay dense after removal');
SELECT bag_eq($$ SELECT a.login::text FROM popug.worker_slot s JOIN popug.account a ON a.id = s.account_id $$,
	$$ VALUES ('t_worker2'), ('t_worker3') $$, 'the remaining workers are in the pool');

SET ROLE t_admin;
SELECT lives_ok($$ SELECT popug.account_set_role((SELECT id FROM popug.accounts WHERE login = 't_worker1'), 'worker') $$,
	'and back into a worker');
SELECT lives_ok($$ SELECT popug.account_set_role((SELECT id FROM popug.accounts WHERE login = 't_worker1'), 'worker') $$,
	'setting the same role again is a no-op');
SELECT lives_ok($$ SELECT popug.account_deactivate((SELECT id FROM popug.accounts WHERE login = 't_worker2')) $$,
	'admin deactivates worker 2');
SELECT lives_ok($$ SELECT popug.account_deactivate((SELECT id FROM popug.accounts WHERE login = 't_worker2')) $$,
	'deactivating twice is a no-op');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM popug.event WHERE event_name = 'AccountRoleChanged'), 2,
	'one AccountRoleChanged per real change');
SELECT is((SELECT count(*)::int FROM popug.event WHERE event_name = 'AccountDeactivated'), 1,
	'one AccountDeactivated');
SELECT is((SELECT n FROM popug.worker_pool), 2, 'pool: worker1 back, worker2 gone');
SELECT bag_eq($$ SELECT a.login::text FROM popug.worker_slot s JOIN popug.account a ON a.id = s.account_id $$,
	$$ VALUES ('t_worker1'), ('t_worker3') $$, 'the pool holds exactly the active workers');
SELECT is((SELECT max(slot) FROM popug.worker_slot), (SELECT n FROM popug.worker_pool), 'the last slot is n');

SET ROLE t_worker2;
SELECT throws_ok($$ SELECT popug.whoami() $$, '42501', 'popug account "t_worker2" is deactivated',
	'a deactivated account cannot act');
RESET ROLE;

-- ---- a deactivated account comes back ----
-- the SQLSTATE and hint a statement fails with
CREATE FUNCTION pg_temp.failure(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	state text;
	hint text;
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, hint = PG_EXCEPTION_HINT;
	RETURN state || ': ' || hint;
END $$;
SELECT id AS w2 FROM popug.account WHERE login = 't_worker2' \gset
SET ROLE t_admin;
SELECT is(pg_temp.failure($$ SELECT popug.account_create('t_worker2', 'w2@example.com', 'worker') $$),
		  format('23505: Reactivate it: SELECT popug.account_reactivate(%L);', :'w2'),
		  'creating a deactivated login again is 23505, with a hint to reactivate it');
SELECT is(pg_temp.failure($$ SELECT popug.account_create('t_worker3', 'w3@example.com', 'worker') $$), '23505: ',
		  'an active login: 23505 without that hint');
SELECT throws_ok($$ SELECT popug.account_reactivate(gen_random_uuid()) $$, 'P0002', NULL, 'reactivating an unknown account: P0002');
SELECT throws_ok($$ SELECT popug.account_reactivate(NULL) $$, '22004', NULL, 'a NULL account: 22004');
SET ROLE t_manager;
SELECT throws_ok(format('SELECT popug.account_reactivate(%L)', :'w2'), '42501', NULL, 'only an admin reactivates');
SET ROLE t_admin;
SELECT lives_ok(format('SELECT popug.account_reactivate(%L)', :'w2'), 'an admin reactivates worker 2');
SELECT lives_ok(format('SELECT popug.account_reactivate(%L)', :'w2'), 'reactivating an active account is a no-op');
RESET ROLE;
SELECT is((SELECT array_agg(row(event_version, producer, aggregate_id, payload)::text) FROM popug.event
			WHERE event_name = 'AccountReactivated'),
		  ARRAY[row(1, 'auth', :'w2'::uuid, jsonb_build_object('account_id', :'w2'::uuid))::text],
		  'one AccountReactivated v1 from auth, {account_id}');
SELECT bag_eq($$ SELECT a.login::text FROM popug.worker_slot s JOIN popug.account a ON a.id = s.account_id $$,
	$$ VALUES ('t_worker1'), ('t_worker2'), ('t_worker3') $$, 'the reactivated worker is back in the pool');
SELECT is((SELECT max(slot) FROM popug.worker_slot), (SELECT n FROM popug.worker_pool), 'which stays dense');
SET ROLE t_worker2;
SELECT is((SELECT login::text FROM popug.whoami()), 't_worker2', 'the account can act again');
RESET ROLE;
SELECT popug.payments_apply() >= 0 AS applied, popug.mail_dispatch(0) >= 0 AS dispatched;
SELECT is((SELECT count(*)::int FROM popug.dead_letter), 0,
		  'popug''s consumers (accounting, mailer) take AccountReactivated without a dead letter');
DROP ROLE IF EXISTS t_gone;
CREATE ROLE t_gone LOGIN;
SELECT popug.account_create('t_gone', 'gone@example.com', 'worker') AS gone \gset
SELECT popug.account_deactivate(:'gone');
DROP ROLE t_gone;
SELECT is(pg_temp.failure(format('SELECT popug.account_reactivate(%L)', :'gone')),
		  '42704: Create the role first: CREATE ROLE t_gone LOGIN;',
		  'an account whose role was dropped cannot come back before the role does: 42704');

-- ---- caller identity: SET ROLE counts, nothing is SECURITY DEFINER ----
SET ROLE t_worker3;
SELECT is((SELECT login::text FROM popug.whoami()), 't_worker3', 'whoami follows SET ROLE');
SELECT is(popug.caller_role()::text, 'worker', 'caller_role follows SET ROLE');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		   WHERE n.nspname = 'popug' AND p.prosecdef), 0,
	'no popug function is SECURITY DEFINER (which would hide the caller)');
SELECT throws_ok($$ SELECT popug.whoami() $$, '42501', NULL, 'a superuser without an account has no whoami');

-- ---- tables are not writable or readable except through the functions ----
SET ROLE t_admin;
SELECT throws_ok($$ INSERT INTO popug.account (login, email, role) VALUES ('x', 'x@example.com', 'admin') $$,
	'42501', NULL, 'even an admin cannot INSERT into popug.account');
SELECT throws_ok($$ UPDATE popug.account SET role = 'admin' $$, '42501', NULL, 'nor UPDATE it');
SELECT throws_ok($$ SELECT * FROM popug.event $$, '42501', NULL, 'nor read the event table directly');
SELECT is((SELECT count(*)::int FROM popug.accounts), 7, 'the accounts view shows an admin every account');
RESET ROLE;
SET ROLE t_manager;
SELECT is((SELECT count(*)::int FROM popug.accounts), 7, 'a manager sees every account too (to assign work)');
SET ROLE t_accountant;
SELECT is((SELECT count(*)::int FROM popug.accounts), 7, 'so does an accountant (to pay it)');
SET ROLE t_worker3;
SELECT is((SELECT array_agg(login::text) FROM popug.accounts), ARRAY['t_worker3'], 'and a worker only itself');
RESET ROLE;

SELECT * FROM finish();
