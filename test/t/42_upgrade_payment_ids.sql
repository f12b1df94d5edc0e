-- Payment ids across ALTER EXTENSION popug UPDATE (SPEC 4, 10): 0.1 hashed
-- an event's amount and timestamp into its payment's id; after the upgrade
-- no event 0.1 applied is applied again, neither replayed whole by the
-- consumer nor redelivered as a copy, and payments 0.1 charged twice stay.
SELECT plan(14);
\ir setup.psql

DROP EXTENSION popug;
CREATE EXTENSION popug VERSION '0.1';
\ir cast.psql
SET ROLE t_manager;
SELECT popug.task_create('Old task one') AS t1 \gset
SELECT popug.task_create('Old task two') AS t2 \gset
RESET ROLE;

-- What 0.1's accounting wrote for each money event: its payment, with
-- the id 0.1 computed, and the balance.
CREATE FUNCTION pg_temp.apply_as_0_1(e popug.event) RETURNS void LANGUAGE sql AS $$
	WITH p AS (
		INSERT INTO popug.payment (id, account_id, task_id, kind, debit, credit, description, occurred_at, billing_day, event_id)
		SELECT md5(concat_ws('|', e.event_id, 'assign_fee', (e.payload->>'assignee_id')::uuid,
							 (e.payload->>'assign_fee')::numeric(12,2) + 0.00::numeric(12,2), extract(epoch FROM e.occurred_at)))::uuid,
			   (e.payload->>'assignee_id')::uuid, (e.payload->>'task_id')::uuid, 'assign_fee',
			   (e.payload->>'assign_fee')::numeric(12,2), 0, 'assignment fee', e.occurred_at, current_date, e.event_id
		RETURNING account_id, debit)
	INSERT INTO popug.balance AS b (account_id, amount) SELECT account_id, -debit FROM p
	ON CONFLICT (account_id) DO UPDATE SET amount = b.amount + excluded.amount;
$$;
SELECT pg_temp.apply_as_0_1(e) FROM popug.event e WHERE event_name = 'TaskAssigned' ORDER BY id;
-- 0.1's bug: a copy of t2's event with another timestamp, charged again
INSERT INTO popug.event (event_id, event_name, event_version, producer, aggregate_id, occurred_at, payload)
SELECT event_id, event_name, event_version, producer, aggregate_id, occurred_at + interval '1 minute', payload
  FROM popug.event WHERE event_name = 'TaskAssigned' AND aggregate_id = :'t2';
SELECT pg_temp.apply_as_0_1(e) FROM popug.event e
 WHERE event_name = 'TaskAssigned' AND aggregate_id = :'t2' ORDER BY id DESC LIMIT 1;
-- a payout payment and one written by hand, without an event
INSERT INTO popug.payment (id, account_id, kind, debit, credit, description, occurred_at, billing_day)
VALUES (md5(concat_ws('|', 'payout', :'w1', current_date - 1))::uuid, :'w1', 'payout', 1, 0, 'payout', now(), current_date - 1),
	   (gen_random_uuid(), :'w1', 'complete_reward', 0, 1, 'by hand', now(), current_date - 1);
SELECT count(*) AS payments0, string_agg(id::text, ',' ORDER BY id) FILTER (WHERE event_id IS NULL) AS kept_ids
  FROM popug.payment \gset
SELECT string_agg(concat_ws(' ', account_id, amount), ',' ORDER BY account_id) AS balances0 FROM popug.balance \gset

SELECT lives_ok($$ ALTER EXTENSION popug UPDATE $$, 'ALTER EXTENSION popug UPDATE from 0.1, with a payment 0.1 charged twice');
SELECT is((SELECT extversion FROM pg_extension WHERE extname = 'popug'), '0.2', 'to 0.2');
SELECT is((SELECT count(*) FROM popug.payment), :payments0::bigint, 'every payment is kept');
SELECT is((SELECT count(*)::int FROM popug.payment p JOIN popug.event e ON e.event_id = p.event_id AND e.event_name = 'TaskAssigned'
			WHERE e.aggregate_id = :'t1' AND p.id = md5(concat_ws('|', p.event_id, p.kind, p.account_id))::uuid),
		  1, 'an event''s payment has the id 0.2 gives it');
SELECT is((SELECT count(*)::int FROM popug.payment WHERE task_id = :'t2'
			AND id = md5(concat_ws('|', event_id, kind, account_id))::uuid), 1,
		  'of the payments 0.1 charged twice, one takes the new id');
SELECT is((SELECT count(*)::int FROM popug.payment WHERE task_id = :'t2'), 2, 'and the other stays in the audit log');
SELECT is((SELECT string_agg(id::text, ',' ORDER BY id) FROM popug.payment WHERE event_id IS NULL), :'kept_ids',
		  'payout payments and payments without an event keep their ids');

-- ---- nothing 0.1 applied is applied again ----
SELECT is(popug.payments_apply(), 0::bigint, 'the accounting consumer, new, replays every event: no payment');
SELECT is((SELECT count(*)::int FROM popug.payment p WHERE p.kind = 'assign_fee' AND p.event_id IS NOT NULL
			AND NOT EXISTS (SELECT FROM popug.event e WHERE e.event_id = p.event_id)), 0, 'no payment without its event');
SELECT is((SELECT count(*)::int FROM popug.event e WHERE e.event_name = 'TaskAssigned' AND popug.payment_apply(e)), 0,
		  'payment_apply of each event 0.1 applied: false');
INSERT INTO popug.event (event_id, event_name, event_version, producer, aggregate_id, occurred_at, payload)
SELECT event_id, event_name, event_version, 'import', aggregate_id, occurred_at - interval '1 day',
	   payload || '{"assign_fee": 19.99}'
  FROM popug.event WHERE event_name = 'TaskAssigned' AND aggregate_id = :'t1';
SELECT is(popug.payments_apply(), 0::bigint, 'a copy redelivered after the upgrade, with another timestamp and fee: no payment');
SELECT is((SELECT count(*) FROM popug.payment), :payments0::bigint, 'the payments are those 0.1 wrote');
SELECT is((SELECT string_agg(concat_ws(' ', account_id, amount), ',' ORDER BY account_id) FROM popug.balance), :'balances0',
		  'no balance moved');
SELECT is((SELECT count(*)::int FROM popug.dead_letter), 0, 'and nothing was set aside');

SELECT * FROM finish();
