# The whole pipeline at full speed: task_create, then task_complete, from 8
# clients with popug's workers running, beside two baselines from the same
# run: plain SQL writing only the task and its events (create: the task,
# TaskCreated and TaskAssigned; complete: the update and TaskCompleted),
# and plain SQL writing every row of the pipeline in one transaction per
# task (the same plus the payment, the balance update and
# TransactionApplied).  Accounting lag of each phase: for every payment of
# the tasks made (completed) in it, applied_at - occurred_at, i.e. from the
# start of the producing transaction to the start of the accounting
# transaction that applied it, counted once accounting has caught up.
# Each client completes tasks of its own worker.
source "$(dirname "$0")/lib.sh"
CLIENTS=8
dir=$(mktemp -d)
chmod 755 "$dir"

bench_role bench_m
bench_roles bench_w 10
q popug "SELECT popug.account_create('bench_m', 'm@example.com', 'manager');
	SELECT popug.account_create('bench_w' || i, 'w' || i || '@example.com', 'worker') FROM generate_series(1, 10) i;
	CREATE TABLE bench_task (LIKE popug.task INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
	CREATE TABLE bench_event (LIKE popug.event INCLUDING DEFAULTS INCLUDING IDENTITY, PRIMARY KEY (id));
	CREATE INDEX ON bench_event (txid);
	CREATE TABLE bench_payment (LIKE popug.payment INCLUDING ALL);
	CREATE TABLE bench_balance (LIKE popug.balance INCLUDING ALL);
	CREATE TABLE bench_worker (w int PRIMARY KEY, id uuid);
	INSERT INTO bench_worker SELECT substr(login, 8)::int, id FROM popug.account WHERE login LIKE 'bench_w%';
	INSERT INTO bench_balance (account_id) SELECT id FROM bench_worker;
	CREATE TABLE bench_todo (w int, n bigint, id uuid, PRIMARY KEY (w, n));
	DO \$\$BEGIN FOR i IN 1..10 LOOP
		EXECUTE format('CREATE SEQUENCE bench_seq%s; CREATE SEQUENCE bench_base_seq%s', i, i); END LOOP; END\$\$;
	GRANT ALL ON ALL TABLES IN SCHEMA public TO PUBLIC;
	GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO PUBLIC" >/dev/null || exit 1

cat >"$dir/create.sql" <<'SQL'
SELECT popug.task_create('Benchmark task', 'a description', 'BENCH-1');
SQL
# the task and its two events; then the same plus the payment, the balance
# and TransactionApplied
cat >"$dir/create_base.sql" <<'SQL'
\set w random(1, 10)
WITH t AS (INSERT INTO bench_task (id, title, description, jira_id, assign_fee, complete_reward, assignee_id, created_by)
		SELECT gen_random_uuid(), 'Benchmark task', 'a description', 'BENCH-1', 15.00, 30.00, id, id
		  FROM bench_worker WHERE w = :w RETURNING *),
	 c AS (INSERT INTO bench_event (event_name, event_version, producer, aggregate_id, payload)
		SELECT 'TaskCreated', 2, 'tasks', id, jsonb_build_object('title', title, 'assign_fee', assign_fee) FROM t)
INSERT INTO bench_event (event_name, event_version, producer, aggregate_id, payload)
SELECT 'TaskAssigned', 1, 'tasks', id, jsonb_build_object('task_id', id, 'assignee_id', assignee_id, 'assign_fee', assign_fee) FROM t;
SQL
cat >"$dir/create_full.sql" <<'SQL'
\set w random(1, 10)
BEGIN;
WITH t AS (INSERT INTO bench_task (id, title, description, jira_id, assign_fee, complete_reward, assignee_id, created_by)
		SELECT gen_random_uuid(), 'Benchmark task', 'a description', 'BENCH-1', 15.00, 30.00, id, id
		  FROM bench_worker WHERE w = :w RETURNING *),
	 c AS (INSERT INTO bench_event (event_name, event_version, producer, aggregate_id, payload)
		SELECT 'TaskCreated', 2, 'tasks', id, jsonb_build_object('title', title, 'assign_fee', assign_fee) FROM t),
	 a AS (INSERT INTO bench_event (event_name, event_version, producer, aggregate_id, payload)
		SELECT 'TaskAssigned', 1, 'tasks', id, jsonb_build_object('task_id', id, 'assignee_id', assignee_id, 'assign_fee', assign_fee)
		  FROM t RETURNING event_id, occurred_at, payload)
INSERT INTO bench_payment (id, account_id, task_id, kind, debit, description, occurred_at, billing_day, event_id)
SELECT md5(event_id::text || '|assign_fee')::uuid, (payload->>'assignee_id')::uuid, (payload->>'task_id')::uuid,
	   'assign_fee', (payload->>'assign_fee')::numeric, 'Assigned', occurred_at, current_date, event_id FROM a;
UPDATE bench_balance SET amount = amount - 15.00, updated_at = now() WHERE account_id = (SELECT id FROM bench_worker WHERE w = :w);
INSERT INTO bench_event (event_name, event_version, producer, aggregate_id, payload)
SELECT 'TransactionApplied', 1, 'accounting', id, jsonb_build_object('account_id', id, 'debit', 15.00) FROM bench_worker WHERE w = :w;
COMMIT;
SQL
# completions: client k works as worker k + 1 through that worker's tasks;
# the role switch rides in the same message and transaction as the call
# (\;), as the baselines need no switch at all
cat >"$dir/complete.sql" <<'SQL'
\set w :client_id + 1
SET ROLE bench_w:w \; SELECT popug.task_complete(id) FROM bench_todo WHERE w = :w AND n = (SELECT nextval(('bench_seq' || :w)::regclass)) \; RESET ROLE;
SQL
cat >"$dir/complete_base.sql" <<'SQL'
\set w :client_id + 1
WITH t AS (UPDATE bench_task SET status = 'done', completed_at = now()
			WHERE id = (SELECT id FROM bench_todo WHERE w = :w AND n = (SELECT nextval(('bench_base_seq' || :w)::regclass)))
			RETURNING *)
INSERT INTO bench_event (event_name, event_version, producer, aggregate_id, payload)
SELECT 'TaskCompleted', 1, 'tasks', id, jsonb_build_object('task_id', id, 'assignee_id', assignee_id, 'complete_reward', complete_reward) FROM t;
SQL
cat >"$dir/complete_full.sql" <<'SQL'
\set w :client_id + 1
BEGIN;
WITH t AS (UPDATE bench_task SET status = 'done', completed_at = now()
			WHERE id = (SELECT id FROM bench_todo WHERE w = :w AND n = (SELECT nextval(('bench_base_seq' || :w)::regclass)))
			RETURNING *),
	 c AS (INSERT INTO bench_event (event_name, event_version, producer, aggregate_id, payload)
		SELECT 'TaskCompleted', 1, 'tasks', id, jsonb_build_object('task_id', id, 'assignee_id', assignee_id, 'complete_reward', complete_reward)
		  FROM t RETURNING event_id, occurred_at, payload)
INSERT INTO bench_payment (id, account_id, task_id, kind, credit, description, occurred_at, billing_day, event_id)
SELECT md5(event_id::text || '|complete_reward')::uuid, (payload->>'assignee_id')::uuid, (payload->>'task_id')::uuid,
	   'complete_reward', (payload->>'complete_reward')::numeric, 'Completed', occurred_at, current_date, event_id FROM c;
UPDATE bench_balance SET amount = amount + 30.00, updated_at = now() WHERE account_id = (SELECT id FROM bench_worker WHERE w = :w);
INSERT INTO bench_event (event_name, event_version, producer, aggregate_id, payload)
SELECT 'TransactionApplied', 1, 'accounting', id, jsonb_build_object('account_id', id, 'credit', 30.00) FROM bench_worker WHERE w = :w;
COMMIT;
SQL

# caught_up: waits (up to a minute) until accounting has no event pending
caught_up() {
	local i
	for i in $(seq 1 600); do
		[ "$(q popug "SELECT pending FROM popug.consumer_lag WHERE consumer = 'accounting'")" = 0 ] && return 0
		sleep 0.1
	done
	echo "accounting still has events pending after a minute" >&2
	return 1
}

# lag KIND SINCE: "p50 p99" in ms of the KIND payments of events since SINCE
lag() {
	caught_up || return 1
	q popug "SELECT round(extract(epoch FROM p[1]) * 1000, 1) || ' ' || round(extract(epoch FROM p[2]) * 1000, 1)
		FROM (SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY applied_at - occurred_at) AS p
				FROM popug.payment WHERE kind = '$1' AND occurred_at >= '$2') x"
}

# phase WHAT KIND SCRIPT BASE FULL [pgbench options]: one phase's rows
phase() {
	local what=$1 kind=$2 script=$3 base_script=$4 full_script=$5 since popug base full p50 p99
	shift 5
	base=$(tps popug $CLIENTS "$base_script")
	full=$(tps popug $CLIENTS "$full_script")
	caught_up || return 1
	since=$(q popug "SELECT now()")
	popug=$(tps popug $CLIENTS "$script" "$@")
	read -r p50 p99 < <(lag "$kind" "$since") || return 1
	row "$what/s, $CLIENTS clients, workers running, beside plain SQL: the task and its events" "${popug%.*}" "${base%.*}" "tx/s" ">= 0.90"
	row "same, beside every row of the pipeline in one transaction" "${popug%.*}" "${full%.*}" "tx/s" ""
	printf '| accounting lag p50 / p99 of those %ss | %s ms / %s ms | | | p99 < 50 ms |\n' "$what" "$p50" "$p99"
}

phase task_create assign_fee "$dir/create.sql" "$dir/create_base.sql" "$dir/create_full.sql" -U bench_m || exit 1

# completions: the open tasks of each worker, numbered, and the baseline's
# copies of them; more than the clients can complete in the run
q popug "SET ROLE bench_m;
	SELECT count(popug.task_create('To complete')) FROM generate_series(1, 60000);
	RESET ROLE;
	INSERT INTO bench_todo SELECT w.w, row_number() OVER (PARTITION BY w.w), t.id
	  FROM popug.task t JOIN bench_worker w ON w.id = t.assignee_id WHERE t.status = 'open';
	TRUNCATE bench_task;
	INSERT INTO bench_task SELECT t.* FROM popug.task t JOIN bench_todo USING (id);
	ANALYZE" >/dev/null || exit 1
phase task_complete complete_reward "$dir/complete.sql" "$dir/complete_base.sql" "$dir/complete_full.sql" || exit 1
rm -rf "$dir"
