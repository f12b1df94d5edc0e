# README's "Installing into your own server", pasted: each block of the
# recipe (marked <!-- recipe: KIND -->) is taken from README.md as written
# and run on a fresh cluster that has nothing else: the build and install
# lines (into a scratch DESTDIR), the postgresql.conf lines, the
# superuser's SQL and the admin's SQL.  Then the workers must serve the
# recipe's database, pg_cron must run popug's payout, and the log must
# hold no error.
source "$(dirname "$0")/../lib.sh"
cd "$POPUG_ROOT"
require_cluster

# block KIND: the fenced block after <!-- recipe: KIND --> in README.md
block() {
	awk -v mark="<!-- recipe: $1 -->" '
		$0 == mark { f = 1; next }
		f == 1 && /^```/ { f = 2; next }
		f == 2 && /^```/ { exit }
		f == 2 { print }' README.md
}

# 1. build and install: the packages it names are installed (the harness
# installs them), and its make lines install popug
sh=$(block sh)
ok "$([ -n "$sh" ]; echo $?)" "README has the build block"
for p in $(printf '%s\n' "$sh" | sed -n 's/^apt-get install -y //p'); do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"
	ok $? "package $p of the recipe is installed"
done
dest=$POPUG_WORK/recipe-install
rm -rf "$dest"
printf '%s\n' "$sh" | grep -v '^apt-get ' | DESTDIR=$dest bash -e >/dev/null 2>&1
ok $? "the recipe's make lines build and install (into DESTDIR=$dest)"
lib=$(dirname "$($SYS_PG_CONFIG --pkglibdir)")
share=$($SYS_PG_CONFIG --sharedir)
ok "$([ -f "$dest$lib/lib/popug.so" ] && [ -f "$dest$share/extension/popug.control" ]; echo $?)" \
	"make install puts popug.so and popug.control where PostgreSQL looks"

# 2. a fresh cluster (the staged tree, which that install is a copy of)
# with nothing but its port and the recipe's postgresql.conf lines
dir=$POPUG_WORK/recipe
mkdir -p "$dir"
[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
export PGDATA=$dir/data PGHOST=$dir PGUSER=postgres
export PGPORT=$(free_port $((PGPORT + 100)))
as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
{
	echo "port = $PGPORT"
	echo "listen_addresses = '127.0.0.1'"
	echo "unix_socket_directories = '$dir'"
} | as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null
stop() { as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1; }
trap stop EXIT
start() { as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$dir/server.log" -w -t 60 "$@" >/dev/null; }

# paste KIND: runs the SQL block KIND ("psql -U ROLE -d DB") as it says
paste() {
	local out
	out=$(block "$1" | "$PG_BIN/psql" -X -v ON_ERROR_STOP=1 ${1#psql } 2>&1)
	local rc=$?
	ok $rc "the block for '$1' runs without error"
	[ $rc -eq 0 ] || printf '%s\n' "$out" | sed 's/^/# /'
}

start start
paste "psql -U postgres -d postgres"
block postgresql.conf | as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null
# stop and start rather than pg_ctl restart, which reruns the binary that
# postmaster.opts names: under make sanitize, not the wrapper that
# preloads the sanitizers' runtime
as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null && start start
ok $? "the server restarts with the recipe's settings"
paste "psql -U postgres -d mydb"
paste "psql -U ada -d mydb"

export PGDATABASE=mydb
poll() {	# poll SQL [SECONDS]: waits up to SECONDS (30) for SQL to return t
	local i
	for i in $(seq 1 $((${2:-30} * 10))); do
		[ "$(q mydb "$1" 2>/dev/null)" = t ] && return 0
		sleep 0.1
	done
	return 1
}
poll "SELECT count(*) = 4 FROM popug.worker_status WHERE pid IS NOT NULL AND state NOT LIKE 'waiting%' AND state <> 'starting'"
rc=$?
ok $rc "popug's four workers serve mydb"
[ $rc -eq 0 ] || q mydb "SELECT * FROM popug.worker_status" 2>&1 | sed 's/^/# /'
poll "SELECT b.amount < 0 FROM popug.balance b JOIN popug.account a ON a.id = b.account_id WHERE a.login = 'bob'"
ok $? "the accounting worker charged bob the fee of the task ada filed"
is "$(q mydb "SELECT username || ' ' || schedule || ' ' || command FROM cron.job WHERE jobname = 'popug-payout'")" \
	"postgres 0 0 * * * CALL popug.payout_run()" "pg_cron holds the nightly payout"

# pg_cron can run it with the recipe's settings: the same command, due
# at the next minute
q mydb "SELECT cron.schedule('recipe-now', '* * * * *', 'CALL popug.payout_run()')" >/dev/null
poll "SELECT EXISTS (SELECT FROM cron.job_run_details d JOIN cron.job j USING (jobid) WHERE j.jobname = 'recipe-now' AND d.status = 'succeeded')" 75
rc=$?
ok $rc "pg_cron runs CALL popug.payout_run() successfully"
[ $rc -eq 0 ] || q mydb "SELECT status, return_message FROM cron.job_run_details ORDER BY runid DESC LIMIT 3" | sed 's/^/# /'
q mydb "SELECT cron.unschedule('recipe-now')" >/dev/null
is "$(q mydb "SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('popug launcher', 'popug accounting', 'popug mailer', 'popug notifier', 'popug scheduler', 'pg_cron launcher')")" \
	6 "popug's launcher and workers and pg_cron's launcher all run within max_worker_processes"

bad=$(grep -E ' (ERROR|FATAL|PANIC|WARNING): ' "$dir/server.log")
ok "$([ -z "$bad" ]; echo $?)" "no error or warning in the server log"
[ -n "$bad" ] && printf '%s\n' "$bad" | head -10 | sed 's/^/# /'

done_testing
