-- Closes day $1, keeping its money figures: nothing can land on it now.
UPDATE popug.billing_day d SET closed_at = now(), fees = COALESCE(m.fees, 0),
       rewards = COALESCE(m.rewards, 0), payouts = COALESCE(m.payouts, 0),
       completed = m.completed
  FROM (SELECT :day_money FROM popug.payment WHERE billing_day = $1) m
 WHERE d.day = $1 RETURNING d.accounts_paid, d.total_paid
