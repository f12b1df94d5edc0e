# Sustained load (SPEC 11): task creations and completions at a steady rate
# for SUSTAIN_MINUTES with the workers running and popug.event_retention at
# SUSTAIN_RETENTION, so that partitions of popug.event come and go while it
# runs.  One row a minute: producer transactions per second (pgbench's own
# progress), accounting lag p50/p99 of the payments applied in that minute
# (applied_at - occurred_at: from the start of the producing transaction to
# the start of the worker's applying one), events the accounting worker has
# pending, the on-disk size of popug.event (every partition with its
# indexes) and its partitions.  Then the first and the last SUSTAIN_WINDOW
# minutes side by side.  Target: throughput and lag of the last window
# within 10% of the first; size flat once retention removes.
#   SUSTAIN_MINUTES=30 SUSTAIN_WINDOW=5 SUSTAIN_RATE=200 SUSTAIN_RETENTION=2min
source "$(dirname "$0")/lib.sh"
MINUTES=${SUSTAIN_MINUTES:-30}
WINDOW=${SUSTAIN_WINDOW:-5}
RATE=${SUSTAIN_RATE:-200}
RETENTION=${SUSTAIN_RETENTION:-2min}
[ "$WINDOW" -gt $((MINUTES / 2)) ] && WINDOW=$(( MINUTES / 2 > 0 ? MINUTES / 2 : 1 ))
dir=$(mktemp -d)
chmod 755 "$dir"

bench_role bench_m
bench_roles bench_w 10
q popug "SELECT popug.account_create('bench_m', 'm@example.com', 'manager');
	SELECT popug.account_create('bench_w' || i, 'w' || i || '@example.com', 'worker') FROM generate_series(1, 10) i" >/dev/null &&
	q popug "ALTER SYSTEM SET popug.event_retention = '$RETENTION'" >/dev/null &&
	q popug "SELECT pg_reload_conf()" >/dev/null || exit 1

# One round: the manager files a task, and the client's own worker (client
# k is bench_w(k+1), so that no two clients complete the same task; a
# failed statement would end its pgbench client) completes one of their
# open tasks (a task and four events, two payments).
cat >"$dir/round.sql" <<'SQL'
\set w :client_id + 1
SET ROLE bench_m;
SELECT popug.task_create('Sustained load', 'a description', 'LOAD-1');
SET ROLE bench_w:w;
SELECT popug.task_complete(id) FROM (SELECT id FROM popug.my_tasks WHERE status = 'open' LIMIT 1) t;
RESET ROLE;
SQL

# the workers serve the database once they see it; the load starts when
# accounting has run
for i in $(seq 1 600); do
	[ "$(q popug "SELECT count(*) FROM popug.worker_status WHERE worker = 'accounting' AND last_run IS NOT NULL")" = 1 ] && break
	sleep 0.1
done
"$PG_BIN/pgbench" -n -c 10 -j 2 -R "$RATE" -T $((MINUTES * 60 + 5)) -P 60 -f "$dir/round.sql" popug \
	>"$dir/pgbench.out" 2>"$dir/progress.out" &
pgbench_pid=$!

# the minutes on stderr, beside the summary table make bench prints
{ echo; echo "| minute | rounds/s | lag p50 | lag p99 | accounting pending | popug.event on disk | partitions |"; echo "|---|---|---|---|---|---|---|"; } >&2
sleep 2	# pgbench's progress line of each minute is written by then
for m in $(seq 1 "$MINUTES"); do
	sleep 60
	tps=$(sed -n 's/^progress: [0-9.]* s, \([0-9.]*\) tps.*/\1/p' "$dir/progress.out" | sed -n "${m}p")
	q popug "SELECT $m, '${tps:-?}', l.p50, l.p99,
			(SELECT pending FROM popug.consumer_lag WHERE consumer = 'accounting'),
			(SELECT sum(pg_catalog.pg_total_relation_size(inhrelid)) FROM pg_catalog.pg_inherits
			  WHERE inhparent = 'popug.event'::regclass),
			(SELECT count(*) FROM pg_catalog.pg_inherits WHERE inhparent = 'popug.event'::regclass)
		  FROM (SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY applied_at - occurred_at) AS p
				  FROM popug.payment WHERE applied_at > now() - interval '60 s') x,
			   LATERAL (SELECT extract(epoch FROM x.p[1]) * 1000 AS p50, extract(epoch FROM x.p[2]) * 1000 AS p99) l" |
		awk -F'|' '{ printf "| %s | %s | %.1f ms | %.1f ms | %s | %.1f MB | %s |\n", $1, $2, $3, $4, $5, $6 / 1048576, $7 }' |
		tee -a "$dir/minutes.md" >&2
done
wait "$pgbench_pid" || { grep -m 5 error "$dir/progress.out" >&2; echo "pgbench failed" >&2; exit 1; }
q popug "ALTER SYSTEM RESET popug.event_retention" >/dev/null
q popug "SELECT pg_reload_conf()" >/dev/null

# first and last window, as rows of the summary table
awk -F'|' -v w="$WINDOW" -v n="$MINUTES" '
	{ m = $2 + 0; tps = $3 + 0; lag = $5 + 0; size = $7 + 0 }
	m <= w { t1 += tps; l1 += lag; s1 += size }
	m > n - w { t2 += tps; l2 += lag; s2 += size }
	END {
		printf "| sustained rounds/s, last %d min vs first | %.1f | %.1f | %.2f | within 10%% |\n", w, t2 / w, t1 / w, (t1 > 0 ? t2 / t1 : 0)
		printf "| sustained accounting lag p99, last %d min vs first | %.1f ms | %.1f ms | %.2f | within 10%% |\n", w, l2 / w, l1 / w, (l1 > 0 ? l2 / l1 : 0)
		printf "| popug.event on disk, last %d min vs first | %.1f MB | %.1f MB | %.2f | flat |\n", w, s2 / w, s1 / w, (s1 > 0 ? s2 / s1 : 0)
	}' "$dir/minutes.md"
rm -rf "$dir"
