#!/usr/bin/env bash
# make demo: installs what is missing, builds popug into a staged tree,
# starts a local cluster (popug and pg_cron preloaded, every worker running)
# and a local SMTP catcher, plays a short scripted day (demo/day.sql), shows
# what came of it, and leaves the cluster running with the psql line to
# connect.
#
#   make demo                 (re)create the demo cluster and play the day
#   bash demo/run.sh stop     stop the demo cluster and the SMTP catcher
#   POPUG_DEMO_DIR=/tmp/popug-demo  POPUG_DEMO_PORT=5499  SMTP port 2525
#   POPUG_DEMO_SMTP_PORT=2525
#   POPUG_STAGED=1            use the staged tree as it is (the demo's test)
set -uo pipefail
source "$(dirname "$0")/../test/lib.sh"
cd "$POPUG_ROOT"

DIR=${POPUG_DEMO_DIR:-/tmp/popug-demo}
export POPUG_PORT=${POPUG_DEMO_PORT:-5499}
SMTP_PORT=${POPUG_DEMO_SMTP_PORT:-2525}
export PGDATA=$DIR/data PGHOST=$DIR PGPORT=$POPUG_PORT PGUSER=postgres

stop() {
	[ -d "$PGDATA" ] && cluster_stop fast
	[ -f "$DIR/smtp.pid" ] && kill "$(cat "$DIR/smtp.pid")" 2>/dev/null
	rm -f "$DIR/smtp.pid"
}

if [ "${1:-}" = stop ]; then
	stop
	echo "demo stopped; its files are in $DIR"
	exit 0
fi

if [ "${POPUG_STAGED:-}" != 1 ]; then
	log "dependencies"
	ensure_deps || exit 1
	log "build and staged install"
	stage_install || exit 1
fi

log "cluster in $DIR, port $PGPORT; SMTP catcher on 127.0.0.1:$SMTP_PORT"
stop
rm -rf "$DIR"
cluster_init "$DIR" \
	"popug.smtp_url = 'smtp://127.0.0.1:$SMTP_PORT'" \
	"popug.smtp_from = 'popug@example.com'" \
	"popug.mail_retry_base = 1" \
	"log_min_messages = 'log'" || exit 1
# The catcher outlives this script, like the cluster.
setsid "$PYTHON" test/smtp_server.py --port "$SMTP_PORT" --record "$DIR/mail.jsonl" \
	>"$DIR/smtp.log" 2>&1 </dev/null &
echo $! >"$DIR/smtp.pid"
cluster_start || { tail -n 20 "$DIR/server.log"; exit 1; }
"$PG_BIN/createdb" popug || exit 1
q popug "CREATE EXTENSION popug; CREATE EXTENSION pg_cron" || exit 1

log "the day (demo/day.sql)"
"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d popug -f demo/day.sql || {
	echo "the scripted day failed; the cluster is still up: $PG_BIN/psql -h $PGHOST -p $PGPORT -U postgres popug" >&2
	exit 1
}

log "the mails the SMTP catcher received ($DIR/mail.jsonl)"
"$PYTHON" - "$DIR/mail.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    head, _, body = m["data"].partition("\r\n\r\n")
    print("-" * 60)
    print("\n".join(h for h in head.split("\r\n") if h.split(":")[0] in ("From", "To", "Subject", "Date")))
    print()
    print(body.replace("\r\n", "\n").rstrip())
PY

# The psql reports with their charts, as the demo's admin runs them: the
# dashboard of the day just played and paid out.
day=$(q popug "SELECT max(day) FROM popug.billing_day")
for f in reports/dashboard.sql reports/last_30_days.sql reports/top_tasks.sql; do
	log "$f (PGUSER=admin_ada PGDATABASE=popug psql -X -v day=$day -f $f)"
	PGUSER=admin_ada PGDATABASE=popug "$PG_BIN/psql" -X -v day="$day" -f "$f"
done

cat <<MSG

The demo cluster is running.  Its clock is in Etc/GMT-14, where the
scripted day is over: today ($(q popug "SELECT current_date")) is the open
billing day, so what you do next shows on today's dashboard and
CALL popug.payout_run(current_date) closes it.  Connect as each person
(each is a login role; the demo trusts local connections):

    $PG_BIN/psql -h $PGHOST -p $PGPORT -U admin_ada popug        # admin
    $PG_BIN/psql -h $PGHOST -p $PGPORT -U manager_max popug      # manager
    $PG_BIN/psql -h $PGHOST -p $PGPORT -U accountant_eve popug   # accountant
    $PG_BIN/psql -h $PGHOST -p $PGPORT -U worker_bob popug       # a worker (also worker_kim, worker_lea, worker_ned)
    $PG_BIN/psql -h $PGHOST -p $PGPORT -U postgres popug         # the superuser

e.g. as worker_bob: SELECT * FROM popug.my_tasks; SELECT * FROM popug.my_balance;
Mails the catcher received: $DIR/mail.jsonl.  Server log: $DIR/server.log.
Stop it with: bash demo/run.sh stop
MSG

