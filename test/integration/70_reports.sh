# The psql reports in reports/: they connect like any psql script (PGHOST,
# PGPORT, PGUSER, PGDATABASE or flags), print only their output, draw
# their bar charts in proportion with losses left of the axis (Unicode, or
# ASCII with -v ascii=1), and stop with a non-zero exit on the first error,
# such as a worker's permission denied.
source "$(dirname "$0")/../lib.sh"
cd "$POPUG_ROOT"
psql() { "$PG_BIN/psql" -X "$@"; }
check() {	# check RC MESSAGE OUTPUT: ok, and the output as diagnostics on failure
	ok "$1" "$2"
	[ "$1" = 0 ] || echo "$3" | sed 's/^/#   /'
}
chart() {	# chart OUTPUT TITLE WIDTH [ascii]: the chart TITLE in OUTPUT is right
	local msg
	msg=$(echo "$1" | $PYTHON test/chart_check.py "$2" "$3" ${4:-})
	check $? "chart '$2' (${4:-unicode}, $3 cells): bars in proportion, losses left of one axis" "$msg"
}
matches() {	# matches OUTPUT REGEX MESSAGE: a line of OUTPUT matches REGEX
	echo "$1" | grep -q -E "$2"
	check $? "$3" "$1"
}
admin() { PGUSER=t_rep_admin PGDATABASE=popug psql "$@" 2>&1; }

q popug "DROP EXTENSION IF EXISTS popug CASCADE; CREATE EXTENSION popug"
for r in t_rep_admin t_rep_worker t_rep_debtor; do
	q popug "DO \$\$BEGIN CREATE ROLE $r LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END\$\$"
done
# t_rep_worker completes REP-1 (a reward is never below a fee), leaves;
# t_rep_debtor then gets REP-2 and is charged its fee
q popug "SELECT popug.account_create('t_rep_admin', 'ra@example.com', 'admin'),
		 popug.account_create('t_rep_worker', 'rw@example.com', 'worker')" >/dev/null
q popug "SET ROLE t_rep_admin; SELECT popug.task_create('Report me', '', 'REP-1')" >/dev/null
q popug "SET ROLE t_rep_worker; SELECT popug.task_complete(id) FROM popug.my_tasks" >/dev/null
q popug "SET ROLE t_rep_admin;
		 SELECT popug.account_deactivate(id) FROM popug.accounts WHERE login = 't_rep_worker';
		 SELECT popug.account_create('t_rep_debtor', 'rd@example.com', 'worker');
		 SELECT popug.task_create('Owe me', '', 'REP-2')" >/dev/null
q popug "SELECT popug.payments_apply()" >/dev/null
# earlier days, as the accounting worker would have written them: fees of
# 40 three days ago, a reward of 20 (for REP-1 again) the day before
# yesterday, a fee of 10 yesterday
q popug "INSERT INTO popug.payment (id, account_id, task_id, kind, debit, credit, description, occurred_at, billing_day)
		 SELECT gen_random_uuid(), (SELECT id FROM popug.account WHERE login = 't_rep_worker'),
				CASE WHEN credit > 0 THEN (SELECT id FROM popug.task WHERE jira_id = 'REP-1') END,
				kind, debit, credit, 'test', now() - ago * interval '1 day', current_date - ago
		   FROM (VALUES ('assign_fee', 40, 0, 3), ('complete_reward', 0, 20, 2), ('assign_fee', 10, 0, 1)) p(kind, debit, credit, ago)"

# ---- each report for an admin: connected by environment, only its output ----
for f in reports/*.sql; do
	out=$(admin -f "$f")
	check $? "$f runs for an admin (PGUSER, PGDATABASE)" "$out"
	echo "$out" | grep -q -E "Expanded display|^(SET|RESET|SELECT [0-9]+)$|^Pager|^Output format"
	check $((! $?)) "$f prints nothing but its output" "$out"
done
out=$(PGHOST=127.0.0.1 PGPORT=$PGPORT PGUSER=t_rep_admin PGDATABASE=popug psql -f reports/dashboard.sql 2>&1)
matches "$out" "Tasks completed *\| 1" "the dashboard connects through PGHOST and PGPORT (TCP) and shows today's completed task"
out=$(PGHOST=/nonexistent PGPORT=1 psql -h 127.0.0.1 -p "$PGPORT" -U t_rep_admin -d popug -f reports/top_tasks.sql 2>&1)
matches "$out" "REP-1" "top_tasks connects through psql's flags, whatever the environment says, and names REP-1"

# ---- charts ----
out=$(admin -f reports/last_30_days.sql)
chart "$out" "Management earnings" 40
chart "$out" "Workers in debt at the end of the day" 40
matches "$out" "^ *$(date -d '-3 days' +%F) \| 40\.00 +\| +│(█){20,}" "three days ago (earnings 40) has the longest bar to the right of the axis"
matches "$out" "^ *$(date -d '-2 days' +%F) \| -20\.00 +\| +(▐)?(█)+│" "two days ago (a loss of 20) is drawn to the left of the axis"
out=$(admin -v chart_width=24 -f reports/last_30_days.sql)
chart "$out" "Management earnings" 24
out=$(admin -v ascii=1 -f reports/last_30_days.sql)
chart "$out" "Management earnings" 40 ascii
chart "$out" "Workers in debt at the end of the day" 40 ascii
out=$(admin -f reports/dashboard.sql)
chart "$out" "Biggest earners of the day (rewards less fees)" 40
chart "$out" "Biggest debtors now (balance)" 40
matches "$out" "^ *t_rep_worker +\| [0-9.]+ +\| │█" "the dashboard's earners: t_rep_worker, who completed REP-1"
matches "$out" "^ *t_rep_debtor +\| -[0-9.]+ +\| +(▐)?(█)+│$" "its debtors: t_rep_debtor, charged for REP-2"
out=$(admin -v ascii=1 -f reports/dashboard.sql)
chart "$out" "Biggest debtors now (balance)" 40 ascii
out=$(admin -v day="$(date -d '-3 days' +%F)" -f reports/dashboard.sql)
matches "$out" "^Fees charged *\| 40\.00$" "-v day= shows another day's dashboard (three days ago: a fee of 40)"

# ---- refused: a non-zero exit at the first error, nothing after it ----
out=$(PGUSER=t_rep_debtor PGDATABASE=popug psql -f reports/dashboard.sql 2>&1)
rc=$?
is "$rc" 3 "a worker running the dashboard: psql exits with 3 (ON_ERROR_STOP)"
matches "$out" "permission denied to read statistics" "with permission denied"
echo "$out" | grep -q -E "Biggest|RECORD"; check $((! $?)) "and nothing after the error" "$out"
out=$(PGUSER=t_rep_debtor PGDATABASE=popug psql -f reports/last_30_days.sql 2>&1)
is $? 3 "last_30_days too"
done_testing
