# Statistics over 1,000,000 task payments spread over 90 days (10,000
# workers), every day but yesterday and today paid out (which adds a payout
# payment per account in credit per day):
# stats_days over the 90 days and stats_day for today, beside a bare
# per-day aggregate of the same payments in the same run.
#   STATS_PAYMENTS=1000000
source "$(dirname "$0")/lib.sh"
N=${STATS_PAYMENTS:-1000000}
fresh_db popug_b >/dev/null || exit 1
q popug_b "INSERT INTO popug.account (login, email, role)
		SELECT 'bs' || i, 'bs' || i || '@example.com', 'worker' FROM generate_series(1, 10000) i;
	CREATE TEMP TABLE a AS SELECT id, row_number() OVER () AS i FROM popug.account;
	INSERT INTO popug.payment (id, account_id, task_id, kind, debit, credit, description, occurred_at, billing_day)
	SELECT gen_random_uuid(), a.id, gen_random_uuid(),
		   CASE WHEN g % 2 = 0 THEN 'assign_fee' ELSE 'complete_reward' END,
		   CASE WHEN g % 2 = 0 THEN 10 + g % 10 ELSE 0 END, CASE WHEN g % 2 = 1 THEN 20 + g % 20 ELSE 0 END,
		   'bench', now(), current_date - (g % 90)
	  FROM generate_series(1, $N) g JOIN a ON a.i = 1 + g % 10000;
	INSERT INTO popug.balance (account_id, amount)
	SELECT account_id, sum(credit - debit) FROM popug.payment GROUP BY 1" >/dev/null || exit 1
# every day but yesterday and today paid out, by the real payout, as in a
# running deployment (it keeps each closed day's figures)
q popug_b "CALL popug.payout_run(current_date - 2)" >/dev/null || exit 1
total=$(q popug_b "SELECT count(*) FROM popug.payment")
q popug_b "VACUUM ANALYZE" >/dev/null
base=$(DB=popug_b; t0=$(date +%s%N); q popug_b "SELECT billing_day, sum(debit), sum(credit) FROM popug.payment
	WHERE billing_day > current_date - 90 GROUP BY 1" >/dev/null; echo $(( ($(date +%s%N) - t0) / 1000000 )))
t0=$(date +%s%N)
q popug_b "SELECT * FROM popug.stats_days(current_date - 89, current_date)" >/dev/null || exit 1
cold=$(( ($(date +%s%N) - t0) / 1000000 ))
t0=$(date +%s%N)
q popug_b "SELECT * FROM popug.stats_days(current_date - 89, current_date)" >/dev/null || exit 1
days=$(( ($(date +%s%N) - t0) / 1000000 ))
t0=$(date +%s%N)
q popug_b "SELECT * FROM popug.stats_day()" >/dev/null || exit 1
today=$(( ($(date +%s%N) - t0) / 1000000 ))
row "stats_days over 90 days, $total payments, first call" "$cold" "$base" "ms" "well under 1 s"
row "stats_days over 90 days, $total payments, again" "$days" "$base" "ms" "well under 1 s"
row "stats_day(today), $total payments" "$today" "$base" "ms" "well under 1 s"
