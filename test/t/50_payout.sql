-- Daily payout (SPEC 5): positive, zero and negative sums; debt carried
-- and paid off; idempotent reruns; days closed in order; events; batches;
-- permissions.  CALL runs at top level here, so the procedure commits.
SELECT plan(26);
\ir setup.psql

\ir cast.psql
SELECT popug.account_create('t_worker3', 'w3@example.com', 'worker') AS w3 \gset
SELECT (now() AT TIME ZONE 'UTC')::date AS today \gset

-- Money as accounting writes it: a payment and its balance.
CREATE FUNCTION pg_temp.pay(account uuid, day date, credit numeric, debit numeric) RETURNS void
LANGUAGE sql AS $$
	INSERT INTO popug.payment (id, account_id, kind, debit, credit, description, occurred_at, billing_day)
	VALUES (gen_random_uuid(), account, CASE WHEN credit > 0 THEN 'complete_reward' ELSE 'assign_fee' END,
			debit, credit, 'test', now(), day);
	INSERT INTO popug.balance AS b (account_id, amount) VALUES (account, credit - debit)
	ON CONFLICT (account_id) DO UPDATE SET amount = b.amount + excluded.amount;
$$;

-- day 1: worker1 +50, worker2 +10 -10, worker3 -20
SELECT pg_temp.pay(:'w1', :'today'::date - 3, 50, 0), pg_temp.pay(:'w2', :'today'::date - 3, 10, 0),
	   pg_temp.pay(:'w2', :'today'::date - 3, 0, 10), pg_temp.pay(:'w3', :'today'::date - 3, 0, 20);

-- ---- permissions and bad days, before anything is paid ----
SET ROLE t_worker1;
SELECT throws_ok($$ CALL popug.payout_run() $$, '42501', NULL, 'a worker cannot run the payout');
SET ROLE t_manager;
SELECT throws_ok($$ CALL popug.payout_run() $$, '42501', NULL, 'nor can a manager');
SET ROLE t_nobody;
SELECT throws_ok($$ SELECT popug.payout_step(NULL, 10) $$, '42501', NULL, 'nor a role without an account, step by step');
SET ROLE t_accountant;
SELECT throws_ok(format('CALL popug.payout_run(%L)', :'today'::date + 1), '22023', NULL, 'a day that has not begun: 22023');
SELECT throws_ok($$ SELECT popug.payout_step(NULL, 0) $$, '22023', NULL, 'a batch size below 1: 22023');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM popug.billing_day), 0, 'refused runs closed nothing');

-- ---- close day 1 ----
SET ROLE t_accountant;
CALL popug.payout_run((:'today'::date - 3));
RESET ROLE;
SELECT is((SELECT array_agg(row(account_id, billing_day, amount)::text) FROM popug.payout),
		  ARRAY[row(:'w1'::uuid, :'today'::date - 3, 50.00)::text], 'only the positive account is paid, its whole sum');
SELECT is((SELECT row(kind, debit, credit, billing_day)::text FROM popug.payment WHERE kind = 'payout'),
		  row('payout', 50.00, 0.00, :'today'::date - 3)::text, 'as a payout payment (debit) in the audit log, on the closed day');
SELECT is((SELECT array_agg(amount ORDER BY amount) FROM popug.balance), ARRAY[-20.00, 0.00, 0.00]::numeric[],
		  'its balance drops to zero; zero and negative balances stay');
SELECT is((SELECT row(accounts_paid, total_paid, closed_at IS NOT NULL)::text FROM popug.billing_day WHERE day = :'today'::date - 3),
		  row(1, 50.00, true)::text, 'the day is closed with its totals');
SELECT is((SELECT payload FROM popug.event WHERE event_name = 'PayoutMade'),
		  jsonb_build_object('account_id', :'w1', 'email', 'w1@example.com', 'billing_day', :'today'::date - 3, 'amount', 50.00),
		  'PayoutMade names the account, its email, the day and the amount');
SELECT is((SELECT payload FROM popug.event WHERE event_name = 'BillingCycleClosed'),
		  jsonb_build_object('billing_day', :'today'::date - 3, 'accounts_paid', 1, 'total_paid', 50.00),
		  'BillingCycleClosed carries the totals');
SELECT is((SELECT array_agg(DISTINCT producer) FROM popug.event WHERE event_name IN ('PayoutMade', 'BillingCycleClosed')),
		  ARRAY['payout'], 'produced by payout');

-- ---- a rerun does nothing ----
SELECT count(*) AS events_before FROM popug.event \gset
CALL popug.payout_run((:'today'::date - 3));
SELECT is((SELECT count(*) FROM popug.event), :events_before::bigint, 'rerunning a closed day writes nothing');
SELECT is((SELECT count(*)::int FROM popug.payout), 1, 'and pays nobody again');

-- ---- day 2: the debt is paid off and the rest paid; day 3 closes empty ----
SELECT pg_temp.pay(:'w3', :'today'::date - 2, 30, 0), pg_temp.pay(:'w1', :'today'::date - 2, 5, 0),
	   pg_temp.pay(:'w2', :'today'::date - 2, 0, 15);
CALL popug.payout_run();
SELECT is((SELECT array_agg(row(day, accounts_paid, total_paid, closed_at IS NOT NULL)::text ORDER BY day) FROM popug.billing_day),
		  ARRAY[row(:'today'::date - 3, 1, 50.00, true)::text, row(:'today'::date - 2, 2, 15.00, true)::text,
				row(:'today'::date - 1, 0, 0.00, true)::text],
		  'payout_run() closes every open day up to yesterday, in order');
SELECT is((SELECT amount FROM popug.payout WHERE account_id = :'w3'), 10.00, 'a debt of 20 then 30 earned: 10 paid, the debt carried over');
SELECT is((SELECT amount FROM popug.balance WHERE account_id = :'w2'), -15.00, 'a new debt carries over');
SELECT is((SELECT count(*)::int FROM popug.payment p WHERE p.kind = 'payout'
			AND NOT EXISTS (SELECT FROM popug.payout o WHERE o.account_id = p.account_id AND o.billing_day = p.billing_day)),
		  0, 'every payout payment has its payout row');
SELECT is((SELECT count(*)::int FROM popug.billing_day d, popug.account a
			WHERE (SELECT sum(credit - debit) FROM popug.payment p WHERE p.account_id = a.id AND p.billing_day <= d.day) > 0),
		  0, 'for every closed day, each account''s payments up to it sum to zero or less');
SELECT is((SELECT count(*)::int FROM popug.balance b
			WHERE amount <> (SELECT sum(credit - debit) FROM popug.payment p WHERE p.account_id = b.account_id)),
		  0, 'each balance is the sum of its payments');
SET ROLE t_worker3;
SELECT is((SELECT array_agg(kind ORDER BY kind) FROM popug.my_audit_log), ARRAY['assign_fee', 'complete_reward', 'payout'],
		  'a worker sees its payout in its audit log');
RESET ROLE;

-- ---- today closed early, in batches of one ----
SELECT pg_temp.pay(a, :'today'::date, 7, 0) FROM unnest(ARRAY[:'w1', :'w2', :'w3']::uuid[]) a;
SELECT count(popug.account_create('t_batch' || i, 'b' || i || '@example.com', 'worker')) FROM generate_series(1, 5) i;
SELECT pg_temp.pay(id, :'today'::date, i, 0) FROM (SELECT id, row_number() OVER () AS i FROM popug.account WHERE login LIKE 't_batch%') a;
SET popug.payout_batch_size = 1;
SET ROLE t_admin;
CALL popug.payout_run(:'today');
RESET ROLE;
RESET popug.payout_batch_size;
SELECT is((SELECT row(accounts_paid, total_paid)::text FROM popug.billing_day WHERE day = :'today'),
		  row(7, 29.00)::text, 'an admin closes today early, one account per transaction: 7 paid (not the one still in debt)');
SELECT is((SELECT count(*)::int FROM (SELECT FROM popug.payment WHERE billing_day <= :'today'
											GROUP BY account_id HAVING sum(credit - debit) > 0) x),
		  0, 'nobody is left owed anything for today');
SELECT is(popug.billing_day_open(), :'today'::date + 1, 'payments applied now count tomorrow');
SELECT lives_ok(format('CALL popug.payout_run(%L)', :'today'), 'called where it cannot commit (inside a function), it runs as one transaction');

SELECT * FROM finish();
