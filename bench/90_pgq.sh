# popug's outbox beside PgQ (Debian's postgresql-15-pgq3) on the same
# server, in a database no popug worker serves: events appended per second,
# one per transaction, at 1 and 8 clients (popug.event_append against
# pgq.insert_event); then a backlog of PGQ_BACKLOG events, written 1,000 per
# transaction, read and acknowledged in batches of 1,000 by one client
# (events_read/events_ack against next_batch/get_batch_events/finish_batch,
# PgQ ticked by pgq.ticker() after every 1,000 events), each batch's rows
# sent to the client, then again with the rows only counted in the server.
# Each backlog is measured PGQ_RUNS times, each in a freshly created
# database, so every run is a first run after CREATE EXTENSION.
#   PGQ_BACKLOG=100000 PGQ_RUNS=3
source "$(dirname "$0")/lib.sh"
N=${PGQ_BACKLOG:-100000}
RUNS=${PGQ_RUNS:-3}
dir=$(mktemp -d)
chmod 755 "$dir"

# pgq_db: a fresh popug_b with PgQ's queue and both consumers registered
pgq_db() {
	fresh_db popug_b >/dev/null &&
		q popug_b "CREATE EXTENSION pgq;
			SELECT pgq.create_queue('bench');
			SELECT pgq.set_queue_config('bench', 'ticker_max_count', '1000');
			SELECT pgq.register_consumer('bench', 'c');
			SELECT popug.consumer_create('c')" >/dev/null
}

cat >"$dir/popug.sql" <<'SQL'
SELECT popug.event_append('BenchEvent', 1, 'bench', '6a1f0f9e-3c2b-4a51-9d7e-0c2b7d1e9f10', '{"n": 1, "what": "bench"}');
SQL
cat >"$dir/pgq.sql" <<'SQL'
SELECT pgq.insert_event('bench', 'BenchEvent', '{"n": 1, "what": "bench"}');
SQL
pgq_db || exit 1
for clients in 1 8; do
	base=$(tps popug_b $clients "$dir/pgq.sql")
	popug=$(tps popug_b $clients "$dir/popug.sql")
	row "events appended/s, $clients client(s), beside PgQ" "${popug%.*}" "${base%.*}" "tx/s" ">= 1.00"
done

# consume SIDE HOW: events and seconds one client takes to read and
# acknowledge the whole backlog of popug's (SIDE popug) or PgQ's (SIDE pgq)
# consumer c, each batch's rows sent to the client (HOW rows) or only
# counted in the server (HOW count); either side's payloads reach the client
# as text, unparsed
consume() {
	"$PYTHON" - "$1" "$2" <<'PY'
import os, sys, time, psycopg2, psycopg2.extras
c = psycopg2.connect(dbname="popug_b", host=os.environ["PGHOST"], port=os.environ["PGPORT"], user="postgres")
# both payloads reach the client as the text of their JSON: psycopg2 would
# otherwise parse every jsonb payload, and not PgQ's text ones
psycopg2.extras.register_default_jsonb(c, loads=lambda s: s)
cur = c.cursor()
n, t0 = 0, time.time()
def batch(sql, args=None):
    if sys.argv[2] == "rows":
        cur.execute("SELECT * FROM " + sql, args)
        return len(cur.fetchall())
    cur.execute("SELECT count(*) FROM " + sql, args)
    return cur.fetchone()[0]
while True:
    if sys.argv[1] == "popug":
        got = batch("popug.events_read('c', 1000)")
        cur.execute("SELECT popug.events_ack('c')")
    else:
        cur.execute("SELECT pgq.next_batch('bench', 'c')")
        batch_id = cur.fetchone()[0]
        if batch_id is None:
            got = 0
        else:
            got = batch("pgq.get_batch_events(%s)", (batch_id,))
            cur.execute("SELECT pgq.finish_batch(%s)", (batch_id,))
    c.commit()
    n += got
    if got == 0:
        break
print("%d %.3f" % (n, time.time() - t0))
PY
}

# the backlogs, 1,000 events a transaction for both; PgQ ticks after each
for i in $(seq 1 $(( N / 1000 ))); do
	echo "SELECT popug.event_append('BenchEvent', 1, 'bench', gen_random_uuid(), '{\"n\": 1, \"what\": \"bench\"}') FROM generate_series(1, 1000);"
	echo "SELECT pgq.insert_event('bench', 'BenchEvent', '{\"n\": 1, \"what\": \"bench\"}') FROM generate_series(1, 1000);"
	echo "SELECT pgq.ticker('bench');"
done >"$dir/fill.sql"
for run in $(seq 1 "$RUNS"); do
	for how in rows count; do
		pgq_db || exit 1
		"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d popug_b -f "$dir/fill.sql" >/dev/null || exit 1
		settle popug_b
		read -r pn ps < <(consume popug $how)
		read -r bn bs < <(consume pgq $how)
		[ "$pn" -eq "$N" ] && [ "$bn" -eq "$N" ] || { echo "consumed $pn (popug) and $bn (PgQ) of $N" >&2; exit 1; }
		row "events consumed/s, backlog of $N in batches of 1,000, rows $([ $how = rows ] && echo "sent to the client" || echo "counted in the server"), run $run (fresh database)" \
			"$(awk -v s="$ps" -v n="$N" 'BEGIN { printf "%d", n / s }')" \
			"$(awk -v s="$bs" -v n="$N" 'BEGIN { printf "%d", n / s }')" "events/s" ">= 1.50"
	done
done
rm -rf "$dir"
