# The psql reports in reports/ run for an admin and show the day's figures;
# a worker running them is refused.
source "$(dirname "$0")/../lib.sh"
cd "$POPUG_ROOT"
psql() { "$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -d popug "$@"; }
check() {	# check RC MESSAGE OUTPUT: ok, and the output as diagnostics on failure
	ok "$1" "$2"
	[ "$1" = 0 ] || echo "$3" | sed 's/^/#   /'
}

q popug "DROP EXTENSION IF EXISTS popug CASCADE; CREATE EXTENSION popug"
for r in t_rep_admin t_rep_worker; do
	q popug "DO \$\$BEGIN CREATE ROLE $r LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END\$\$"
done
q popug "SELECT popug.account_create('t_rep_admin', 'ra@example.com', 'admin'),
		 popug.account_create('t_rep_worker', 'rw@example.com', 'worker')" >/dev/null
q popug "SET ROLE t_rep_admin; SELECT popug.task_create('Report me', '', 'REP-1')" >/dev/null
q popug "SET ROLE t_rep_worker; SELECT popug.task_complete(id) FROM popug.my_tasks" >/dev/null
q popug "SELECT popug.payments_apply()" >/dev/null

for f in reports/*.sql; do
	out=$(PGUSER=t_rep_admin psql -f "$f" 2>&1)
	check $? "$f runs for an admin" "$out"
done
out=$(PGUSER=t_rep_admin psql -f reports/dashboard.sql 2>&1)
echo "$out" | grep -q "Tasks completed *| 1" ; check $? "the dashboard shows today's completed task" "$out"
out=$(PGUSER=t_rep_admin psql -f reports/top_tasks.sql 2>&1)
echo "$out" | grep -q "REP-1" ; check $? "the top tasks name it" "$out"
out=$(PGUSER=t_rep_worker psql -f reports/dashboard.sql 2>&1)
echo "$out" | grep -q "permission denied to read statistics"; check $? "a worker is refused" "$out"
done_testing
