# Payout of many accounts (about 70% with money owed), beside a bare
# set-based INSERT of the payout rows plus the balance UPDATE of the same
# accounts in the same run, and beside the same plus the payout payments
# and PayoutMade events (the floor of what popug must write).
#   PAYOUT_SIZES="100000 1000000"
source "$(dirname "$0")/lib.sh"
SIZES=${PAYOUT_SIZES:-100000 1000000}

for n in $SIZES; do
	# a database no scheduler serves, so only this run pays
	fresh_db popug_b >/dev/null || exit 1
	q popug_b "INSERT INTO popug.account (login, email, role)
			SELECT 'bp' || i, 'bp' || i || '@example.com', 'worker' FROM generate_series(1, $n) i;
		WITH a AS (SELECT id, row_number() OVER () AS i FROM popug.account),
		  p AS (SELECT id, CASE WHEN i % 10 < 7 THEN 25.50 ELSE 0 END AS credit,
		               CASE WHEN i % 10 >= 7 THEN 12.25 ELSE 0 END AS debit FROM a),
		  ins AS (INSERT INTO popug.payment (id, account_id, kind, debit, credit, description, occurred_at, billing_day)
		          SELECT gen_random_uuid(), id, 'complete_reward', debit, credit, 'bench', now(), current_date - 1 FROM p)
		INSERT INTO popug.balance (account_id, amount) SELECT id, credit - debit FROM p;
		CREATE TABLE bench_payout (LIKE popug.payout INCLUDING ALL);
		CREATE TABLE bench_balance AS SELECT * FROM popug.balance;
		ALTER TABLE bench_balance ADD PRIMARY KEY (account_id)" >/dev/null || exit 1
	q popug_b "VACUUM ANALYZE" >/dev/null
	# the same plus the payout payment and PayoutMade event SPEC 5 requires
	# per account, rolled back: the floor of what popug must write
	settle popug_b
	t0=$(date +%s%N)
	"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d popug_b >/dev/null <<SQL || exit 1
BEGIN;
WITH due AS (SELECT b.account_id, b.amount, a.email FROM bench_balance b JOIN popug.account a ON a.id = b.account_id
			 WHERE b.amount > 0),
	ins AS (INSERT INTO bench_payout (account_id, billing_day, amount) SELECT account_id, current_date - 1, amount FROM due),
	pay AS (INSERT INTO popug.payment (id, account_id, kind, debit, description, occurred_at, billing_day)
			SELECT md5(concat_ws('|', 'payout', account_id, current_date - 1))::uuid, account_id, 'payout', amount,
				   'payout', now(), current_date - 1 FROM due),
	ev AS (INSERT INTO popug.event (event_name, event_version, producer, aggregate_id, payload)
		   SELECT 'PayoutMade', 1, 'payout', account_id, popug.payload('account_id', account_id,
				  'email', email, 'billing_day', current_date - 1, 'amount', amount) FROM due)
UPDATE bench_balance b SET amount = 0, updated_at = now() FROM due WHERE b.account_id = due.account_id;
ROLLBACK;
SQL
	floor=$(( ($(date +%s%N) - t0) / 1000000 ))
	settle popug_b
	t0=$(date +%s%N)
	q popug_b "WITH due AS (SELECT account_id, amount FROM bench_balance WHERE amount > 0),
		ins AS (INSERT INTO bench_payout (account_id, billing_day, amount) SELECT account_id, current_date - 1, amount FROM due)
		UPDATE bench_balance b SET amount = 0, updated_at = now() FROM due WHERE b.account_id = due.account_id" >/dev/null
	base=$(( ($(date +%s%N) - t0) / 1000000 ))
	settle popug_b
	t0=$(date +%s%N)
	q popug_b "CALL popug.payout_run()" >/dev/null || exit 1
	popug=$(( ($(date +%s%N) - t0) / 1000000 ))
	paid=$(q popug_b "SELECT count(*) FROM popug.payout")
	[ "$paid" = "$(( n * 7 / 10 ))" ] || { echo "payout paid $paid of $n accounts" >&2; exit 1; }
	row "payout of $n accounts ($paid paid, batches of 5000)" "$popug" "$base" "ms" "<= 1.5x"
	row "same, beside the bare statements plus payout payments and PayoutMade events" "$popug" "$floor" "ms" "(floor)"
done
