-- No balance, payout or day total can overflow its column (SPEC 4, 5):
-- balances at the bound one payment can carry, a day paying many of them,
-- debt at the bound, an event that would cross the bound set aside; and
-- odd days given to the payout and the statistics.  CALL runs at top
-- level here, so the procedure commits.
SELECT plan(28);
\ir setup.psql

\ir cast.psql
SELECT (now() AT TIME ZONE 'UTC')::date AS today \gset
SELECT 9999999999.99 AS max \gset

-- Money as accounting writes it: a payment and its balance.
CREATE FUNCTION pg_temp.pay(account uuid, day date, credit numeric, debit numeric) RETURNS void
LANGUAGE sql AS $$
	INSERT INTO popug.payment (id, account_id, kind, debit, credit, description, occurred_at, billing_day)
	VALUES (gen_random_uuid(), account, CASE WHEN credit > 0 THEN 'complete_reward' ELSE 'assign_fee' END,
			debit, credit, 'test', now(), day);
	INSERT INTO popug.balance AS b (account_id, amount) VALUES (account, credit - debit)
	ON CONFLICT (account_id) DO UPDATE SET amount = b.amount + excluded.amount;
$$;

-- ---- odd days, before anything is paid: refused or nothing to do ----
SET ROLE t_accountant;
SELECT throws_ok($$ CALL popug.payout_run('infinity') $$, '22023', NULL, 'payout_run(''infinity''): 22023');
SELECT throws_ok($$ SELECT popug.payout_step('infinity', 10) $$, '22023', NULL, 'payout_step(''infinity''): 22023');
SELECT throws_ok($$ SELECT popug.payout_step(current_date + 100000, 10) $$, '22023', NULL, 'a day centuries ahead: 22023');
SELECT throws_ok($$ SELECT popug.payout_step(NULL, -5) $$, '22023', NULL, 'a negative batch size: 22023');
SELECT throws_ok($$ SELECT popug.payout_step(NULL, NULL) $$, '22004', NULL, 'a NULL batch size: 22004');
SELECT lives_ok($$ CALL popug.payout_run('-infinity') $$, 'payout_run(''-infinity'') has nothing to close');
SELECT lives_ok($$ CALL popug.payout_run('4713-01-01 BC') $$, 'nor has the first day PostgreSQL knows');
SELECT throws_ok($$ SELECT count(*) FROM popug.stats_days('-infinity', current_date) $$, '22023', NULL, 'stats_days from -infinity: 22023');
SELECT throws_ok($$ SELECT count(*) FROM popug.stats_days(current_date, 'infinity') $$, '22023', NULL, 'stats_days to infinity: 22023');
SELECT throws_ok($$ SELECT count(*) FROM popug.stats_day('infinity') $$, '22023', NULL, 'stats_day(''infinity''): 22023');
SELECT throws_ok($$ SELECT count(*) FROM popug.stats_days('4713-01-01 BC', current_date) $$, '22023', NULL,
				 'a range of six thousand years: 22023');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM popug.billing_day), 0, 'none of them started a day');

-- ---- a day paying 200 balances at the bound ----
INSERT INTO popug.account (login, email, role)
SELECT 't_rich' || i, 'rich' || i || '@example.com', 'worker' FROM generate_series(1, 200) i;
SELECT count(pg_temp.pay(id, :'today'::date - 3, :max, 0)) FROM popug.account WHERE login LIKE 't_rich%';
SELECT pg_temp.pay(:'w1', :'today'::date - 3, 0, :max);
SELECT throws_ok(format($$UPDATE popug.balance SET amount = amount + 0.01 WHERE account_id = (SELECT id FROM popug.account WHERE login = 't_rich1')$$),
				 '23514', NULL, 'a balance above what one payment can carry: 23514');
SELECT throws_ok(format($$UPDATE popug.balance SET amount = amount - 0.01 WHERE account_id = %L$$, :'w1'),
				 '23514', NULL, 'a debt beyond it: 23514');
SET popug.payout_batch_size = 64;
SET ROLE t_accountant;
SELECT lives_ok(format('CALL popug.payout_run(%L)', :'today'::date - 3), 'the payout of 200 balances at the bound runs, in batches');
RESET ROLE;
RESET popug.payout_batch_size;
SELECT is((SELECT row(accounts_paid, total_paid, closed_at IS NOT NULL)::text FROM popug.billing_day WHERE day = :'today'::date - 3),
		  row(200, 200 * :max, true)::text, 'the day closes with 200 paid and a total beyond numeric(14,2)');
SELECT is((SELECT count(*)::int FROM popug.payout WHERE amount = :max), 200, 'each paid the whole bound');
SELECT is((SELECT count(*)::int FROM popug.payment WHERE kind = 'payout' AND debit = :max), 200, 'each in one payout payment');
SELECT is((SELECT count(*)::int FROM popug.balance WHERE amount <> 0 AND account_id <> :'w1'), 0, 'every rich balance is zero');
SELECT is((SELECT amount FROM popug.balance WHERE account_id = :'w1'), -:max, 'the debt at the bound is carried over');
SELECT is((SELECT payload->'total_paid' FROM popug.event WHERE event_name = 'BillingCycleClosed'), to_jsonb(200 * :max),
		  'BillingCycleClosed carries the total');
SET ROLE t_admin;
SELECT is((SELECT row(payouts, negative_workers)::text FROM popug.stats_day(:'today'::date - 3)),
		  row(200 * :max, 1)::text, 'stats_day reports the day''s payouts and the worker in debt');
RESET ROLE;

-- ---- owed for a day at the bound, with later debits: still one payment ----
SELECT id AS rich1 FROM popug.account WHERE login = 't_rich1' \gset
SELECT pg_temp.pay(:'rich1', :'today'::date - 2, :max, 0), pg_temp.pay(:'rich1', :'today'::date - 1, 0, 20);
SET ROLE t_accountant;
CALL popug.payout_run(:'today'::date - 2);
RESET ROLE;
SELECT is((SELECT amount FROM popug.payout WHERE account_id = :'rich1' AND billing_day = :'today'::date - 2), :max,
		  'what the day owes is paid whole though the balance is lower now');
SELECT is((SELECT amount FROM popug.balance WHERE account_id = :'rich1'), -20.00, 'the later debit stays');

-- ---- an event that would take a balance past the bound is set aside ----
SELECT pg_temp.pay(:'rich1', :'today'::date - 1, :max, 0);
SELECT amount AS rich1_before FROM popug.balance WHERE account_id = :'rich1' \gset
SELECT popug.event_append('TaskCompleted', 1, 'import', NULL,
	jsonb_build_object('task_id', gen_random_uuid(), 'assignee_id', :'rich1', 'complete_reward', 40.00)) AS over \gset
SELECT popug.event_append('TaskCompleted', 1, 'import', NULL,
	jsonb_build_object('task_id', gen_random_uuid(), 'assignee_id', :'w2', 'complete_reward', 40.00)) AS fine \gset
SELECT is(popug.payments_apply(), 1::bigint, 'of two rewards in a batch, one is applied');
SELECT is((SELECT error LIKE '%balance_amount_check%' FROM popug.dead_letter WHERE event = :over), true,
		  'the one past the bound is a dead letter, naming the bound');
SELECT is((SELECT amount FROM popug.balance WHERE account_id = :'rich1'), :rich1_before, 'its balance did not move');
SELECT ok(EXISTS (SELECT FROM popug.payment p JOIN popug.event e ON e.event_id = p.event_id WHERE e.id = :fine),
		  'the other reward was applied');

SELECT * FROM finish();
