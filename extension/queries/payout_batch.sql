-- Pays the next $2 accounts for day $1: a payout row, a 'payout' payment,
-- the balance and a PayoutMade event for each account owed a positive
-- amount; counts the workers owing instead; moves paid_upto past the
-- batch.  The account row is looked up per account walked (a LATERAL
-- subquery that cannot be flattened), so no plan ever scans every account
-- for a batch.
WITH walk AS (
  SELECT b.account_id, b.amount - COALESCE((SELECT sum(p.credit - p.debit) FROM popug.payment p
          WHERE p.account_id = b.account_id AND p.billing_day > $1), 0) AS owed
    FROM popug.balance b WHERE :payout_unwalked
   ORDER BY b.account_id LIMIT $2),
 due AS (
  SELECT w.account_id, w.owed, a.email, a.role FROM walk w CROSS JOIN LATERAL
         (SELECT email, role FROM popug.account a WHERE a.id = w.account_id OFFSET 0) a
   WHERE w.owed <> 0),
 paid AS (
  INSERT INTO popug.payout (account_id, billing_day, amount)
  SELECT account_id, $1, owed FROM due WHERE owed > 0
  RETURNING account_id, amount),
 payments AS (
  INSERT INTO popug.payment (id, account_id, kind, debit, description,
                             occurred_at, billing_day)
  SELECT md5(concat_ws('|', 'payout', account_id, $1))::uuid, account_id, 'payout',
         amount, 'payout for ' || $1, now(), $1 FROM paid),
 balances AS (
  INSERT INTO popug.balance AS b (account_id, amount)
  SELECT account_id, -amount FROM paid ORDER BY account_id
  ON CONFLICT (account_id) DO UPDATE SET amount = b.amount + excluded.amount,
  updated_at = now()),
 totals AS (
  UPDATE popug.billing_day SET accounts_paid = accounts_paid + (SELECT count(*) FROM paid),
         total_paid = total_paid + COALESCE((SELECT sum(amount) FROM paid), 0),
         negative_workers = negative_workers
                            + (SELECT count(*) FROM due WHERE owed < 0 AND role = 'worker'),
         paid_upto = COALESCE((SELECT account_id FROM walk ORDER BY account_id DESC LIMIT 1), paid_upto)
   WHERE day = $1)
:event_insert
SELECT 'PayoutMade', 1, 'payout', account_id, popug.payload(
  'account_id', account_id, 'email', email, 'billing_day', $1, 'amount', owed)
  FROM due WHERE owed > 0
