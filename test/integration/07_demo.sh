# make demo (README's first command), run for real on the staged tree with
# its own directory and ports: the scripted day succeeds, its payout mails
# reach the SMTP catcher, every person the closing message names can
# connect as printed, and the cluster it hands over has today as its open
# billing day: a task filed now counts today, shows on today's dashboard,
# and CALL popug.payout_run(current_date) closes it.  `stop` stops it all.
source "$(dirname "$0")/../lib.sh"
cd "$POPUG_ROOT"
require_cluster

export POPUG_STAGED=1 POPUG_DEMO_DIR=$POPUG_WORK/demo
export POPUG_DEMO_PORT=$(free_port $((PGPORT + 200)))
export POPUG_DEMO_SMTP_PORT=$(free_port $((PGPORT + 300)))
trap 'bash demo/run.sh stop >/dev/null 2>&1' EXIT
out=$(timeout 600 bash demo/run.sh 2>&1)
rc=$?
ok $rc "make demo plays its day and exits 0"
[ $rc -eq 0 ] || printf '%s\n' "$out" | tail -n 30 | sed 's/^/# /'

export PGHOST=$POPUG_DEMO_DIR PGPORT=$POPUG_DEMO_PORT PGDATABASE=popug
paid=$(q popug "SELECT count(*) FROM popug.payout")
ok "$([ "$paid" -gt 0 ]; echo $?)" "the demo's day was paid out ($paid payouts)"
is "$(grep -c '"rcpt_tos"' "$POPUG_DEMO_DIR/mail.jsonl" 2>/dev/null)" "$paid" "the SMTP catcher received one mail per payout"

# every psql line of the closing message connects as the person it names
lines=$(printf '%s\n' "$out" | grep -E '^ +/.*/psql -h ' | sed 's/ *#.*//')
is "$(printf '%s\n' "$lines" | grep -c .)" 5 "the message prints how to connect as each person"
while read -r line; do
	[ -n "$line" ] || continue
	who=$(printf '%s\n' "$line" | sed -n 's/.* -U \([a-z_]*\) .*/\1/p')
	is "$($line -X -A -t -c 'SELECT current_user' 2>&1)" "$who" "the printed line connects as $who"
done <<<"$lines"

# today is the open billing day for every session
as() {	# as ROLE SQL: runs SQL as ROLE, unaligned tuples only
	local role=$1
	shift
	"$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -U "$role" -c "$*"
}
is "$(q popug "SELECT popug.billing_day_open() = current_date")" t "the open billing day is today"
as manager_max "SELECT popug.task_create('After the demo') IS NOT NULL" >/dev/null
ok $? "the manager files a task after the demo"
for i in $(seq 1 300); do
	[ "$(q popug "SELECT pending FROM popug.consumer_lag WHERE consumer = 'accounting'")" = 0 ] && break
	sleep 0.1
done
is "$(q popug "SELECT string_agg(DISTINCT (billing_day = current_date)::text, ',') FROM popug.payment p JOIN popug.task t ON t.id = p.task_id WHERE t.title = 'After the demo'")" \
	true "its fee counts on today"
is "$(as accountant_eve "SELECT day = current_date AND fees_charged > 0 FROM popug.stats_day()")" t \
	"today's dashboard (stats_day()) shows it"
as admin_ada "CALL popug.payout_run(current_date)"
ok $? "the admin pays today out early"
is "$(q popug "SELECT closed_at IS NOT NULL FROM popug.billing_day WHERE day = current_date")" t \
	"CALL popug.payout_run(current_date) closes today"

bash demo/run.sh stop >/dev/null 2>&1
ok "$(! "$PG_BIN/pg_isready" -q; echo $?)" "bash demo/run.sh stop stops the cluster"
ok "$([ ! -f "$POPUG_DEMO_DIR/smtp.pid" ]; echo $?)" "and the SMTP catcher"
trap - EXIT
done_testing
