-- Figures of the days [$1, $2], computed from payments from day $3 on and
-- read from the closed days of popug.billing_day before it.  A worker's
-- balance at the end of a day is the current balance minus the payments
-- of later days.
WITH days AS (SELECT d::date AS day FROM generate_series($1::date, $2::date, interval '1 day') d),
 money AS (
  SELECT billing_day AS day, :day_money
    FROM popug.payment WHERE billing_day BETWEEN $3 AND $2 GROUP BY billing_day),
 created AS (
  SELECT billing_day AS day, count(*) AS n FROM popug.ledger_task
   WHERE billing_day BETWEEN $1 AND $2 GROUP BY 1),
 later AS (
  SELECT p.account_id, p.billing_day AS day, sum(p.credit - p.debit) AS net
    FROM popug.payment p WHERE p.billing_day >= $3 GROUP BY 1, 2),
 later_total AS (SELECT account_id, sum(net) AS net FROM later GROUP BY 1),
 workers AS (
  SELECT b.account_id, b.amount FROM popug.balance b
    JOIN popug.account a ON a.id = b.account_id WHERE a.role = 'worker'),
 points AS (
  SELECT w.account_id, $3 - 1 AS day, w.amount - COALESCE(t.net, 0) AS bal
    FROM workers w LEFT JOIN later_total t USING (account_id)
  UNION ALL
  SELECT l.account_id, l.day, w.amount - COALESCE(sum(l.net) OVER (PARTITION BY l.account_id
         ORDER BY l.day DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
    FROM later l JOIN workers w USING (account_id)),
 spans AS (
  SELECT day, lead(day) OVER (PARTITION BY account_id ORDER BY day) AS until, bal FROM points),
-- a span in debt adds one from its first day in range to its end
 deltas AS (
  SELECT GREATEST(day, $3) AS day, 1 AS delta FROM spans
   WHERE bal < 0 AND day <= $2 AND (until IS NULL OR until > $3)
  UNION ALL
  SELECT until, -1 FROM spans
   WHERE bal < 0 AND until > $3 AND until <= $2 AND day <= $2),
 figures AS (
  SELECT d.day, (sum(COALESCE(x.delta, 0)) OVER (ORDER BY d.day))::bigint AS n,
         COALESCE(m.fees, 0) AS fees, COALESCE(m.rewards, 0) AS rewards,
         COALESCE(m.payouts, 0) AS payouts, COALESCE(m.completed, 0) AS completed
    FROM days d LEFT JOIN (SELECT day, sum(delta) AS delta FROM deltas GROUP BY day) x USING (day)
    LEFT JOIN money m USING (day)
   WHERE d.day >= $3
  UNION ALL
  SELECT day, negative_workers, fees, rewards, payouts, completed FROM popug.billing_day
   WHERE day >= $1 AND day < $3)
SELECT d.day, COALESCE(f.fees - f.rewards, 0)::numeric(30,2), COALESCE(f.n, 0),
       COALESCE(f.fees, 0)::numeric(30,2), COALESCE(f.rewards, 0)::numeric(30,2),
       COALESCE(f.payouts, 0)::numeric(30,2), COALESCE(c.n, 0), COALESCE(f.completed, 0)
  FROM days d LEFT JOIN figures f USING (day) LEFT JOIN created c USING (day) ORDER BY d.day
