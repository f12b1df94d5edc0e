# Accounting: events applied per second by payments_apply over a backlog of
# TaskAssigned events, beside a bare INSERT ... SELECT of the same payment
# rows plus the balance UPDATE, and beside the same plus the
# TransactionApplied event rows (the floor of what popug must write); and
# the balance lag (commit of task_create -> its payment visible) under
# 8-client task_create load with the worker running, beside the same poll
# for the task's own event (the floor).
#   ACCT_BACKLOG=100000
source "$(dirname "$0")/lib.sh"
N=${ACCT_BACKLOG:-100000}

# the backlog lives in a database no worker serves
fresh_db popug_b >/dev/null || exit 1
q popug_b "INSERT INTO popug.account (login, email, role)
	SELECT 'ba' || i, 'ba' || i || '@example.com', 'worker' FROM generate_series(1, 1000) i;
	CREATE TABLE w AS SELECT id, row_number() OVER () AS i FROM popug.account;
	INSERT INTO popug.event (event_name, event_version, producer, aggregate_id, payload)
	SELECT 'TaskAssigned', 1, 'tasks', t, jsonb_build_object('task_id', t, 'assignee_id', w.id,
		'previous_assignee_id', NULL, 'assign_fee', 10 + (g % 1000) / 100.0, 'reason', 'create')
	  FROM generate_series(1, $N) g CROSS JOIN LATERAL gen_random_uuid() t JOIN w ON w.i = 1 + g % 1000;
	CREATE TABLE bench_payment (LIKE popug.payment INCLUDING ALL);
	CREATE TABLE bench_balance (LIKE popug.balance INCLUDING ALL);
	INSERT INTO bench_balance (account_id, amount) SELECT id, 0 FROM w" >/dev/null || exit 1
q popug_b "VACUUM ANALYZE" >/dev/null
# the same plus the TransactionApplied event each payment needs (SPEC 3),
# rolled back: the floor of what popug must write
settle popug_b
t0=$(date +%s%N)
"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d popug_b >/dev/null <<SQL || exit 1
BEGIN;
WITH p AS (
	INSERT INTO bench_payment (id, account_id, task_id, kind, debit, description, occurred_at, billing_day, event_id)
	SELECT md5(concat_ws('|', event_id, 'assign_fee', payload->>'assignee_id'))::uuid,
		   (payload->>'assignee_id')::uuid, (payload->>'task_id')::uuid,
		   'assign_fee', (payload->>'assign_fee')::numeric, 'assignment fee', occurred_at, current_date, event_id
	  FROM popug.event WHERE event_name = 'TaskAssigned' RETURNING *),
	u AS (UPDATE bench_balance b SET amount = b.amount - s.d, updated_at = now()
	  FROM (SELECT account_id, sum(debit) AS d FROM p GROUP BY 1) s WHERE b.account_id = s.account_id)
INSERT INTO popug.event (event_name, event_version, producer, aggregate_id, payload)
SELECT 'TransactionApplied', 1, 'accounting', account_id, popug.payload('payment_id', id,
	'account_id', account_id, 'task_id', task_id, 'kind', kind, 'debit', debit, 'credit', credit,
	'billing_day', billing_day) FROM p;
ROLLBACK;
SQL
floor_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
settle popug_b
t0=$(date +%s%N)
q popug_b "WITH p AS (
	INSERT INTO bench_payment (id, account_id, task_id, kind, debit, description, occurred_at, billing_day, event_id)
	SELECT md5(concat_ws('|', event_id, 'assign_fee', payload->>'assignee_id'))::uuid,
		   (payload->>'assignee_id')::uuid, (payload->>'task_id')::uuid,
		   'assign_fee', (payload->>'assign_fee')::numeric, 'assignment fee', occurred_at, current_date, event_id
	  FROM popug.event WHERE event_name = 'TaskAssigned' RETURNING account_id, debit)
	UPDATE bench_balance b SET amount = b.amount - s.d, updated_at = now()
	  FROM (SELECT account_id, sum(debit) AS d FROM p GROUP BY 1) s WHERE b.account_id = s.account_id" >/dev/null
base_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
settle popug_b
popug_ms=$(ms_db popug_b "SELECT popug.payments_apply($N)")
[ "$(q popug_b "SELECT count(*) FROM popug.payment")" = "$N" ] || { echo "payments_apply wrote the wrong number of payments" >&2; exit 1; }
row "events applied/s, backlog of $N TaskAssigned" $(( N * 1000 / popug_ms )) $(( N * 1000 / base_ms )) "events/s" ">= 0.50"
row "same, beside the bare statements plus their TransactionApplied events" $(( N * 1000 / popug_ms )) $(( N * 1000 / floor_ms )) "events/s" "(floor)"

# balance lag with the worker running under 8-client task_create load
bench_role bench_m
bench_roles bench_w 10
q popug "SELECT popug.account_create('bench_m', 'm@example.com', 'manager');
	SELECT popug.account_create('bench_w' || i, 'w' || i || '@example.com', 'worker') FROM generate_series(1, 10) i" >/dev/null
dir=$(mktemp -d)
echo "SELECT popug.task_create('Load');" >"$dir/load.sql"
# a steady 400 tasks/s from 8 clients (a saturating load on a small
# machine starves every process, the worker included)
"$PG_BIN/pgbench" -n -U bench_m -c 8 -j 2 -R 400 -T "$BENCH_SECONDS" -f "$dir/load.sql" popug >/dev/null 2>&1 &
sleep 1
read -r lag_p50 lag_p99 floor_p50 floor_p99 < <("$PYTHON" - <<'PY'
import os, time, psycopg2
def conn(user):
    c = psycopg2.connect(dbname="popug", host=os.environ["PGHOST"], port=os.environ["PGPORT"], user=user)
    c.autocommit = True
    return c.cursor()
w, r = conn("bench_m"), conn("postgres")
lag, floor = [], []
end = time.time() + float(os.environ.get("BENCH_SECONDS", "10")) - 2
while time.time() < end:
    w.execute("SELECT popug.task_create('Timed')")
    tid = w.fetchone()[0]
    t0 = time.time()
    while True:
        r.execute("SELECT count(*) FROM popug.event WHERE aggregate_id = %s", (tid,))
        r.fetchone()
        if len(floor) < len(lag) + 1:
            floor.append(time.time() - t0)
        r.execute("SELECT count(*) FROM popug.payment WHERE task_id = %s", (tid,))
        if r.fetchone()[0]:
            break
    lag.append(time.time() - t0)
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] * 1000
print("%.1f %.1f %.1f %.1f" % (pct(lag, .5), pct(lag, .99), pct(floor, .5), pct(floor, .99)))
PY
)
wait
rm -rf "$dir"
row "balance lag p50, 8 clients creating 400 tasks/s" "$lag_p50" "$floor_p50" "ms" "(floor: one poll)"
row "balance lag p99, 8 clients creating 400 tasks/s" "$lag_p99" "$floor_p99" "ms" "p99 < 50 ms"
