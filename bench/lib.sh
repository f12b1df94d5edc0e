# Shared functions for popug's benchmarks (sourced by bench/run.sh and by
# each bench/NN_*.sh).  Every benchmark prints Markdown table rows
#   | what | popug | baseline | popug/baseline | target |
# where the baseline is measured in the same run on the same server.
source "$(dirname "${BASH_SOURCE[0]}")/../test/lib.sh"
POPUG_PACKAGES="$POPUG_PACKAGES postgresql-$PG_MAJOR-pgq3"	# bench/90_pgq.sh's yardstick

BENCH_SECONDS=${BENCH_SECONDS:-10}

# tps DB CLIENTS SCRIPT_FILE [pgbench options...]: transactions per second
# of a pgbench custom script, excluding connection time.
tps() {
	local db=$1 clients=$2 script=$3
	shift 3
	"$PG_BIN/pgbench" -n -c "$clients" -j "$(( clients < 2 ? 1 : 2 ))" \
		-T "$BENCH_SECONDS" -f "$script" "$@" "$db" 2>/dev/null |
		sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p'
}

# row WHAT POPUG BASELINE UNIT TARGET [higher|lower]: one table row; the
# ratio is popug/baseline.
row() {
	local what=$1 popug=$2 base=$3 unit=$4 target=$5
	local ratio
	ratio=$(awk -v a="$popug" -v b="$base" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
	printf '| %s | %s %s | %s %s | %s | %s |\n' "$what" "$popug" "$unit" "$base" "$unit" "$ratio" "$target"
}

# ms_db DB SQL...: wall-clock milliseconds of one psql run of SQL in DB.
ms_db() {
	local db=$1 t0 t1
	shift
	t0=$(date +%s%N)
	q "$db" "$@" >/dev/null || return 1
	t1=$(date +%s%N)
	echo $(( (t1 - t0) / 1000000 ))
}

# settle DB: a checkpoint before a timed statement, so that each of the
# figures compared starts with no dirty buffers or WAL left by the last.
settle() {
	q "$1" "CHECKPOINT" >/dev/null
}

# ms SQL...: the same in database popug.
ms() {
	ms_db popug "$@"
}

# bench_role NAME: a login role, created unless it exists (roles are
# cluster-wide; each benchmark starts from a fresh database).
bench_role() {
	q postgres "DO \$\$BEGIN CREATE ROLE $1 LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END\$\$" >/dev/null
}

# bench_roles PREFIX N: login roles PREFIX1 .. PREFIXN, as bench_role makes
# them (an account's login must name a role).
bench_roles() {
	q postgres "DO \$\$BEGIN FOR i IN 1..$2 LOOP
		IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$1' || i) THEN
			EXECUTE format('CREATE ROLE %I LOGIN', '$1' || i);
		END IF; END LOOP; END\$\$" >/dev/null
}
