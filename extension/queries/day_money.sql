-- A day's money figures as aggregates over its popug.payment rows, for
-- statistics of open days and for the figures kept when a day closes, so
-- that both agree.  NULL where no row counts.
sum(debit) FILTER (WHERE kind = 'assign_fee') AS fees,
sum(credit) FILTER (WHERE kind = 'complete_reward') AS rewards,
sum(debit) FILTER (WHERE kind = 'payout') AS payouts,
count(*) FILTER (WHERE kind = 'complete_reward') AS completed
