# Task tracker: task_create and task_complete per second at 1 and 8
# clients beside a bare INSERT (UPDATE) of a task row plus an event row in
# one transaction; task_create latency with 10 and with 1,000,000 active
# workers; tasks_shuffle beside a bare set-based UPDATE + INSERT of the
# event rows.   TASKS_SHUFFLE_SIZES="100000 1000000"  TASKS_MANY_WORKERS=1000000
source "$(dirname "$0")/lib.sh"
SIZES=${TASKS_SHUFFLE_SIZES:-100000 1000000}
MANY=${TASKS_MANY_WORKERS:-1000000}
dir=$(mktemp -d)
chmod 755 "$dir"

bench_role bench_m
bench_role bench_w
bench_roles bench_w 10
bench_roles bench_v 10
bench_roles bench_x 1000
q popug "SELECT popug.account_create('bench_m', 'm@example.com', 'manager');
	SELECT popug.account_create('bench_w', 'w@example.com', 'worker');
	SELECT popug.account_create('bench_w' || i, 'w' || i || '@example.com', 'worker') FROM generate_series(2, 10) i;
	CREATE TABLE bench_task (LIKE popug.task INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
	CREATE TABLE bench_event (LIKE popug.event INCLUDING DEFAULTS INCLUDING IDENTITY, PRIMARY KEY (id));
	CREATE INDEX ON bench_event (txid);
	CREATE TABLE bench_todo (n bigint PRIMARY KEY, id uuid);
	CREATE SEQUENCE bench_seq; CREATE SEQUENCE bench_base_seq;
	GRANT ALL ON bench_task, bench_event, bench_todo, bench_seq, bench_base_seq TO PUBLIC" >/dev/null || exit 1

cat >"$dir/create.sql" <<'SQL'
SELECT popug.task_create('Benchmark task', 'a description', 'BENCH-1');
SQL
cat >"$dir/create_base.sql" <<'SQL'
BEGIN;
INSERT INTO bench_task (id, title, description, jira_id, assign_fee, complete_reward, assignee_id, created_by)
VALUES (gen_random_uuid(), 'Benchmark task', 'a description', 'BENCH-1', 15.00, 30.00, gen_random_uuid(), gen_random_uuid());
INSERT INTO bench_event (event_name, event_version, producer, aggregate_id, payload)
VALUES ('TaskCreated', 2, 'tasks', gen_random_uuid(), '{"title": "Benchmark task", "assign_fee": 15.00}');
COMMIT;
SQL
cat >"$dir/complete.sql" <<'SQL'
SELECT popug.task_complete(id) FROM bench_todo WHERE n = (SELECT nextval('bench_seq'));
SQL
cat >"$dir/complete_base.sql" <<'SQL'
BEGIN;
UPDATE bench_task SET status = 'done', completed_at = now() WHERE id = (SELECT id FROM bench_todo WHERE n = (SELECT nextval('bench_base_seq')));
INSERT INTO bench_event (event_name, event_version, producer, aggregate_id, payload)
VALUES ('TaskCompleted', 1, 'tasks', gen_random_uuid(), '{"complete_reward": 30.00}');
COMMIT;
SQL

for clients in 1 8; do
	base=$(tps popug $clients "$dir/create_base.sql" -U bench_m)
	popug=$(tps popug $clients "$dir/create.sql" -U bench_m)
	row "task_create/s, $clients client(s)" "${popug%.*}" "${base%.*}" "tx/s" ">= 0.80"
done

# completions: enough open tasks of one worker, numbered for the clients
q popug "SELECT popug.account_deactivate(id) FROM popug.account WHERE login LIKE 'bench_w_%';
	TRUNCATE bench_task, bench_todo;
	SET ROLE bench_m;
	SELECT count(popug.task_create('To complete')) FROM generate_series(1, 60000);
	RESET ROLE;
	INSERT INTO bench_todo SELECT row_number() OVER (), t.id FROM popug.task t JOIN popug.account a ON a.id = t.assignee_id
	 WHERE t.status = 'open' AND a.login = 'bench_w';
	INSERT INTO bench_task SELECT t.* FROM popug.task t JOIN bench_todo USING (id)" >/dev/null || exit 1
for clients in 1 8; do
	base=$(tps popug $clients "$dir/complete_base.sql" -U bench_w)
	popug=$(tps popug $clients "$dir/complete.sql" -U bench_w)
	row "task_complete/s, $clients client(s)" "${popug%.*}" "${base%.*}" "tx/s" ">= 0.80"
done

# latency of task_create: 10 active workers, then 10 + $MANY, each in a
# fresh database no worker serves (the accounting worker's own work would
# be measured too), so both start with no tasks or events
workers_db() {	# workers_db N: a fresh popug_b with 10 + N workers
	fresh_db popug_b >/dev/null || return 1
	q popug_b "SELECT popug.account_create('bench_m', 'm@example.com', 'manager');
		SELECT popug.account_create('bench_v' || i, 'v' || i || '@example.com', 'worker') FROM generate_series(1, 10) i;
		WITH a AS (INSERT INTO popug.account (login, email, role)
			SELECT 'bench_many' || i, 'many' || i || '@example.com', 'worker' FROM generate_series(1, $1) i RETURNING id),
		  s AS (INSERT INTO popug.worker_slot (slot, account_id)
			SELECT (SELECT n FROM popug.worker_pool) + row_number() OVER (), id FROM a)
		UPDATE popug.worker_pool SET n = n + $1" >/dev/null || return 1
	q popug_b "VACUUM ANALYZE popug.account, popug.worker_slot" >/dev/null
	settle popug_b
}
workers_db 0 || exit 1
few=$(tps popug_b 1 "$dir/create.sql" -U bench_m)
workers_db "$MANY" || exit 1
many=$(tps popug_b 1 "$dir/create.sql" -U bench_m)
row "task_create latency, $(( MANY + 10 )) workers vs 10" \
	"$(awk -v t="$many" 'BEGIN { printf "%.3f", 1000 / t }')" \
	"$(awk -v t="$few" 'BEGIN { printf "%.3f", 1000 / t }')" "ms" "within 10%"

# shuffles of many open tasks among 1,000 workers, beside a bare set-based
# UPDATE + INSERT, in a database no worker serves
fresh_db popug_b >/dev/null || exit 1
q popug_b "SELECT popug.account_create('bench_m', 'm@example.com', 'manager');
	SELECT count(popug.account_create('bench_x' || i, 'x' || i || '@example.com', 'worker'))
	  FROM generate_series(1, 1000) i;
	CREATE TABLE bench_task (LIKE popug.task INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
	CREATE TABLE bench_event (LIKE popug.event INCLUDING DEFAULTS INCLUDING IDENTITY, PRIMARY KEY (id));
	CREATE INDEX ON bench_event (txid)" >/dev/null || exit 1
for n in $SIZES; do
	q popug_b "TRUNCATE popug.task, popug.event, bench_task, bench_event;
		INSERT INTO popug.task (id, title, assign_fee, complete_reward, assignee_id, created_by)
		SELECT gen_random_uuid(), 'Shuffled', 15.00, 30.00, s.account_id, s.account_id
		  FROM generate_series(1, $n) i JOIN popug.worker_slot s ON s.slot = 1 + i % 1000;
		INSERT INTO bench_task SELECT * FROM popug.task" >/dev/null || exit 1
	q popug_b "VACUUM ANALYZE popug.task, bench_task" >/dev/null
	base=$(ms_db popug_b "WITH w AS (SELECT array_agg(account_id) AS ids FROM popug.worker_slot),
		u AS (UPDATE bench_task t SET assignee_id = w.ids[1 + floor(random() * array_length(w.ids, 1))::int] FROM w
			  WHERE t.status = 'open' RETURNING t.id, t.assignee_id, t.assign_fee)
		INSERT INTO bench_event (event_name, event_version, producer, aggregate_id, payload)
		SELECT 'TaskAssigned', 1, 'tasks', id, jsonb_build_object('task_id', id, 'assignee_id', assignee_id,
			'assign_fee', assign_fee, 'reason', 'shuffle') FROM u")
	popug=$(ms_db popug_b "SET ROLE bench_m; SELECT popug.tasks_shuffle()")
	row "tasks_shuffle of $n open tasks" "$popug" "$base" "ms" "<= 1.5x"
done
rm -rf "$dir"
