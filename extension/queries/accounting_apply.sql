-- Applies the events in $1 (popug.event[]): ledger_task rows, payments,
-- balances and TransactionApplied events, one event per payment inserted.
-- $2 is the billing day, of the payments and of the tasks.  Each part
-- unnests $1 itself: a CTE of the events read twice would be
-- materialized, payloads and all.  The events were judged first, so the
-- amounts are JSON numbers the casts take exactly.
-- $3 true: a fresh batch, never applied before; its payments are inserted
-- plainly, and one already written fails the statement.  $3 false: the
-- events are applied again, and a payment already written is skipped.
-- Only the insert $3 chooses reads any row: the other one's filter is
-- false before it starts.
WITH tasks AS (
  INSERT INTO popug.ledger_task (task_id, jira_id, title, complete_reward, created_at, billing_day)
  SELECT (payload->>'task_id')::uuid,
         CASE event_version WHEN 2 THEN payload->>'jira_id'
              ELSE substring(payload->>'title' FROM '^\s*\[([^]]*)\]') END,
         CASE event_version WHEN 2 THEN payload->>'title'
              ELSE btrim(regexp_replace(payload->>'title', '^\s*\[[^]]*\]', '')) END,
         (payload->'complete_reward')::numeric(12,2), occurred_at, $2
    FROM unnest($1) WHERE event_name = 'TaskCreated'
  ON CONFLICT (task_id) DO NOTHING),
 money AS NOT MATERIALIZED (
  SELECT md5(concat_ws('|', e.event_id, x.kind, x.account_id))::uuid AS id, x.account_id,
         (e.payload->>'task_id')::uuid AS task_id, x.kind, x.debit, x.credit,
         CASE x.kind WHEN 'assign_fee' THEN 'assignment fee' ELSE 'completion reward' END AS description,
         e.occurred_at, $2 AS billing_day, e.event_id
    FROM unnest($1) e, LATERAL (SELECT
         CASE e.event_name WHEN 'TaskAssigned' THEN 'assign_fee' ELSE 'complete_reward' END AS kind,
         (e.payload->>'assignee_id')::uuid AS account_id,
         CASE e.event_name WHEN 'TaskAssigned' THEN (e.payload->'assign_fee')::numeric(12,2) ELSE 0 END AS debit,
         CASE e.event_name WHEN 'TaskCompleted' THEN (e.payload->'complete_reward')::numeric(12,2) ELSE 0 END AS credit) x
   WHERE e.event_name IN ('TaskAssigned', 'TaskCompleted')),
 paid_fresh AS (
  INSERT INTO popug.payment (id, account_id, task_id, kind, debit, credit,
                             description, occurred_at, billing_day, event_id)
  SELECT * FROM money WHERE $3
  RETURNING id, account_id, task_id, kind, debit, credit, billing_day),
 paid_again AS (
  INSERT INTO popug.payment (id, account_id, task_id, kind, debit, credit,
                             description, occurred_at, billing_day, event_id)
  SELECT * FROM money WHERE NOT $3
  ON CONFLICT (id) DO NOTHING
  RETURNING id, account_id, task_id, kind, debit, credit, billing_day),
 paid AS NOT MATERIALIZED (SELECT * FROM paid_fresh UNION ALL SELECT * FROM paid_again),
 moved AS (
  INSERT INTO popug.balance AS b (account_id, amount)
  SELECT account_id, sum(credit - debit) FROM paid GROUP BY account_id ORDER BY account_id
  ON CONFLICT (account_id) DO UPDATE
  SET amount = b.amount + excluded.amount, updated_at = now())
:event_insert
SELECT 'TransactionApplied', 1, 'accounting', account_id, popug.payload(
  'payment_id', id, 'account_id', account_id, 'task_id', task_id, 'kind', kind,
  'debit', debit, 'credit', credit, 'billing_day', billing_day)
  FROM paid
