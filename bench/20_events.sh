# Events appended per second through popug's append path (the C function
# every producer uses, reached here through popug.event_append) beside a
# bare INSERT of the same row into a plain table with the same columns and
# defaults, at 1 and 8 clients, without and with a LISTEN popug_events
# client draining notifications.  Target: popug at 8 clients >= 80% of bare.
source "$(dirname "$0")/lib.sh"

q popug "CREATE TABLE bench_event (LIKE popug.event INCLUDING DEFAULTS INCLUDING IDENTITY);
		 ALTER TABLE bench_event ADD PRIMARY KEY (id)"
dir=$(mktemp -d)
cat >"$dir/popug.sql" <<'SQL'
SELECT popug.event_append('BenchEvent', 1, 'bench', '6a1f0f9e-3c2b-4a51-9d7e-0c2b7d1e9f10', '{"n": 1, "what": "bench"}');
SQL
cat >"$dir/bare.sql" <<'SQL'
INSERT INTO bench_event (event_name, event_version, producer, aggregate_id, payload)
VALUES ('BenchEvent', 1, 'bench', '6a1f0f9e-3c2b-4a51-9d7e-0c2b7d1e9f10', '{"n": 1, "what": "bench"}');
SQL

# A LISTEN client that drains notifications until killed.
listener() {
	# stdout closed, or $(listener) would wait for it
	"$PYTHON" - >/dev/null 2>&1 <<'PY' &
import os, select, psycopg2
c = psycopg2.connect(dbname="popug", host=os.environ["PGHOST"], port=os.environ["PGPORT"], user="postgres")
c.autocommit = True
c.cursor().execute("LISTEN popug_events")
n = 0
while True:
    if select.select([c], [], [], 1) != ([], [], []):
        c.poll(); n += len(c.notifies); c.notifies.clear()
PY
	echo $!
}

for mode in "" "LISTEN"; do
	[ -n "$mode" ] && lpid=$(listener) && sleep 0.5
	for clients in 1 8; do
		base=$(tps popug $clients "$dir/bare.sql")
		popug=$(tps popug $clients "$dir/popug.sql")
		row "events appended/s, $clients client(s)${mode:+, with a LISTEN client}" \
			"${popug%.*}" "${base%.*}" "tx/s" ">= 0.80 at 8 clients"
	done
	[ -n "$mode" ] && kill "$lpid" 2>/dev/null
done
rm -rf "$dir"
