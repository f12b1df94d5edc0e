#!/usr/bin/env bash
# make test: installs what is missing, builds, installs popug into a staged
# tree, starts a throwaway cluster (popug and pg_cron preloaded), runs
# pg_regress and the isolation specs (make installcheck), pgTAP (pg_prove),
# the integration tests (pytest, and prove for the shell scripts and
# test/sim) and the TAP tests (prove), stops the cluster whatever happens,
# and ends with "N passed, N failed".
#
#   POPUG_TESTS="sql/00_install.sql specs/tasks_shuffle_shuffle.spec t/10_identity.sql
#                integration/10_events.py tap/10_upgrade.pl"  run only these
#   POPUG_KEEP=1   leave the cluster's directory (logs) behind
#   POPUG_SIM_SECONDS, POPUG_SIM_STEPS, POPUG_SIM_SEED   a longer, or a replayed,
#                  randomized run with crashes (see test/sim/sim.py)
#   POPUG_SANITIZE=1   build popug with AddressSanitizer and UBSan, run the
#                  server with their runtime, and fail on any report (make
#                  sanitize; slower, so not part of make test)
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$POPUG_ROOT"

passed=0
failed=0
tally() {	# tally NAME OUTPUT_FILE EXIT_CODE PASSED FAILED: adds one file's results
	passed=$((passed + $4))
	failed=$((failed + $5))
	if [ "$3" -ne 0 ] && [ "$5" -eq 0 ]; then
		failed=$((failed + 1))	# died, or ran fewer tests than planned
	fi
	if [ "$3" -ne 0 ]; then
		echo "FAILED: $1" >&2
		sed 's/^/    /' "$2" | tail -n 60 >&2
	else
		echo "ok: $1 ($4)" >&2
	fi
}
count() {	# count NAME OUTPUT_FILE EXIT_CODE: tallies the TAP lines of one file
	tally "$@" "$(grep -cE '^[[:space:]]*ok [0-9]+' "$2")" "$(grep -cE '^[[:space:]]*not ok [0-9]+' "$2")"
}
count_junit() {	# count_junit NAME OUTPUT_FILE EXIT_CODE: tallies pytest's junit xml, OUTPUT_FILE.xml
	local t
	t=$("$PYTHON" -c 'import sys, xml.etree.ElementTree as E
s = E.parse(sys.argv[1]).getroot().find("testsuite")
n = lambda k: int(s.get(k))
print(n("tests") - n("skipped") - n("failures") - n("errors"), n("failures") + n("errors"))' "$2.xml" 2>/dev/null)
	tally "$@" ${t:-0 0}
}
finish() {
	if [ "${POPUG_SANITIZE:-}" = 1 ] && [ -n "${WORK:-}" ]; then
		sanitizer_reports "$WORK"/*/server.log "$WORK"/tap/*/tmp_check/log/*.log
		n=$?
		echo "sanitizer reports: $n (in the server logs)" >&2
		failed=$((failed + n))
	fi
	echo
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit
}
selected() {	# is test file $1 (relative to test/, or sql/ or specs/) selected?
	[ -z "${POPUG_TESTS:-}" ] && return 0
	case " $POPUG_TESTS " in *" $1 "*) return 0 ;; esac
	return 1
}

log "dependencies"
if ! ensure_deps; then failed=1; finish; fi
log "build and staged install${POPUG_SANITIZE:+ (POPUG_SANITIZE=$POPUG_SANITIZE)}"
if [ "${POPUG_SANITIZE:-}" = 1 ]; then export POPUG_SANITIZE; else unset POPUG_SANITIZE; fi
if ! stage_install; then
	echo "FAILED: build" >&2
	failed=1
	finish
fi
# every released version, for the upgrade test
for v in $(awk '!/^#/ && NF { print $1 }' extension/released); do
	if ! stage_released "$v"; then
		echo "FAILED: build of released version $v" >&2
		failed=$((failed + 1))
	fi
done

WORK=$(mktemp -d /tmp/popug-test.XXXXXX)
chmod 755 "$WORK"
# With POPUG_SANITIZE=1 every staged server runs with the sanitizers'
# runtime (the trees of released versions too: a test may put the current
# popug.so into a copy of one); without, the kept trees run as built.
for bin in "$PG_BIN" "$POPUG_ROOT"/tmp_install-*/usr/lib/postgresql/$PG_MAJOR/bin; do
	[ -d "$bin" ] || continue
	if [ "${POPUG_SANITIZE:-}" != 1 ]; then
		unsanitize_server "$bin"
	elif ! sanitize_server "$bin"; then
		echo "FAILED: sanitizer set-up of $bin" >&2
		failed=1
		finish
	fi
done
cleanup() {
	[ -n "${smtp_pid:-}" ] && kill "$smtp_pid" 2>/dev/null
	cluster_stop immediate
	[ -n "${POPUG_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
export POPUG_WORK=$WORK
log "cluster in $WORK"
if ! cluster_init "$WORK/pg" || ! cluster_start; then
	echo "FAILED: cluster start" >&2
	cat "$WORK/pg/server.log" >&2 2>/dev/null
	failed=1
	finish
fi
# The workers serve database popug: create it and wait for them to attach
# (they retry every few seconds until it exists).
"$PG_BIN/createdb" popug
q popug "CREATE EXTENSION popug"
for i in $(seq 1 150); do
	[ "$(q popug "SELECT count(*) FROM popug.worker_status WHERE pid IS NULL")" = 0 ] && break
	sleep 0.1
done

# installcheck LABEL DIR EXT: make installcheck (PGXS, with the Makefile's
# REGRESS_OPTS and ISOLATION_OPTS) against this cluster, limited to the
# selected DIR/*.EXT: the REGRESS tests (LABEL regress) or the ISOLATION
# specs (LABEL isolation).  Their databases are ones no worker serves.
# Output goes to $WORK/LABEL; the tests are counted from pg_regress's
# summary ("All N tests passed." or "N of M tests failed.").
installcheck() {
	local label=$1 dir=$2 ext=$3 f out rc sum tests=() lists
	for f in "$dir"/*."$ext"; do
		[ -e "$f" ] && selected "$f" && tests+=("$(basename "$f" ".$ext")")
	done
	[ ${#tests[@]} -gt 0 ] || return 0
	if [ "$label" = regress ]; then
		lists=(REGRESS="${tests[*]}" ISOLATION=)
	else
		lists=(REGRESS= ISOLATION="${tests[*]}")
	fi
	out=$WORK/$label.out
	timeout 900 make -s installcheck PG_CONFIG="$SYS_PG_CONFIG" "${lists[@]}" \
		EXTRA_REGRESS_OPTS="--outputdir=$WORK/$label" >"$out" 2>&1
	rc=$?
	sum=$(grep -E '^ *(All [0-9]+ tests passed|[0-9]+ of [0-9]+ tests failed)' "$out")
	if [[ $sum =~ All\ ([0-9]+)\ tests\ passed ]]; then
		passed=$((passed + BASH_REMATCH[1]))
	elif [[ $sum =~ ([0-9]+)\ of\ ([0-9]+)\ tests\ failed ]]; then
		passed=$((passed + BASH_REMATCH[2] - BASH_REMATCH[1]))
		failed=$((failed + BASH_REMATCH[1]))
	fi
	[ "$rc" -ne 0 ] && ! [[ $sum =~ failed ]] && failed=$((failed + 1))
	if [ "$rc" -ne 0 ]; then
		echo "FAILED: $label" >&2
		cat "$out" >&2
		cat "$WORK/$label/regression.diffs" >&2 2>/dev/null
	else
		echo "ok: $label (${#tests[@]})" >&2
	fi
}

# pg_regress: one test per sql/*.sql.
log "pg_regress"
installcheck regress sql sql

# isolationtester: one test per specs/*.spec, each a race played in every
# interleaving its permutations name (steps that wait on a lock included).
# The mail spec sends to the test SMTP server started here, named to the
# specs' connections only (not to the workers) through PGOPTIONS.
log "isolation"
smtp_port=$(free_port $((30000 + RANDOM % 20000)))	# apart from other checkouts' runs
smtp_record=$WORK/isolation-smtp.jsonl
"$PYTHON" test/smtp_server.py --port "$smtp_port" --record "$smtp_record" >"$WORK/isolation-smtp.log" 2>&1 &
smtp_pid=$!
for i in $(seq 1 100); do
	(echo >"/dev/tcp/127.0.0.1/$smtp_port") 2>/dev/null && break
	sleep 0.1
done
PGOPTIONS="-c popug.smtp_url=smtp://127.0.0.1:$smtp_port -c popug_test.smtp_record=$smtp_record" \
	installcheck isolation specs spec
kill "$smtp_pid" && wait "$smtp_pid" 2>/dev/null
smtp_pid=

# pgTAP: each file runs in its own fresh database, inside BEGIN/ROLLBACK.
log "pgTAP"
for f in test/t/*.sql; do
	[ -e "$f" ] || continue
	selected "t/$(basename "$f")" || continue
	db=popug_tap
	fresh_db $db && q $db "CREATE EXTENSION pgtap" || { failed=$((failed + 1)); continue; }
	out=$WORK/$(basename "$f").out
	PGDATABASE=$db PATH="$PG_BIN:$PATH" pg_prove -v "$f" >"$out" 2>&1
	count "$f" "$out" $?
done

# Integration tests, several connections, the workers, real crashes.  The
# Python files run under pytest, each test on a fresh cluster of its own
# (test/integration/conftest.py), counted from pytest's junit xml.  The
# shell scripts print TAP for prove on this cluster, which each leaves
# running.  Then the model-based randomized run with crashes (test/sim),
# TAP on this cluster too, which it kills and restarts;
# POPUG_SIM_SECONDS makes it longer (and its time limit with it).
log "integration"
for f in test/integration/*.sh test/integration/[0-9]*.py test/sim/sim.py; do
	[ -e "$f" ] || continue
	selected "${f#test/}" || continue
	out=$WORK/$(basename "$f").out
	case "$f" in
	test/integration/*.py)
		timeout 900 "$PYTHON" -m pytest -p no:cacheprovider -v \
			--junitxml="$out.xml" "$f" >"$out" 2>&1
		count_junit "$f" "$out" $?
		continue ;;
	*.py) runner=$PYTHON ;;
	*) runner=bash ;;
	esac
	timeout $((900 + ${POPUG_SIM_SECONDS:-0})) prove -v --exec "$runner" "$f" >"$out" 2>&1
	count "$f" "$out" $?
	cluster_wait || { cluster_start; cluster_wait; }
done

# TAP tests on PostgreSQL's own framework (PostgreSQL::Test::Cluster): each
# starts the nodes it needs (standbys, a second cluster, an old version),
# so they run as the postgres user, in a directory it owns.
log "TAP (PostgreSQL::Test::Cluster)"
PGXS_DIR=$STAGE/usr/lib/postgresql/$PG_MAJOR/lib/pgxs
for f in test/tap/*.pl; do
	[ -e "$f" ] || continue
	selected "tap/$(basename "$f")" || continue
	out=$WORK/$(basename "$f").out
	tapdir=$WORK/tap/$(basename "$f" .pl)
	mkdir -p "$tapdir"
	[ "$(id -u)" -eq 0 ] && chown -R postgres: "$WORK/tap"
	(cd "$tapdir" && as_pg timeout 1500 env PATH="$PG_BIN:$PATH" PGHOST= PGPORT= PGDATA= \
		TESTDIR="$tapdir" PG_REGRESS="$PGXS_DIR/src/test/regress/pg_regress" \
		POPUG_ROOT="$POPUG_ROOT" POPUG_STAGE="$STAGE" PYTHON="$PYTHON" \
		prove -v -I "$PGXS_DIR/src/test/perl" -I "$POPUG_ROOT/test/tap" "$POPUG_ROOT/$f") >"$out" 2>&1
	count "$f" "$out" $?
done

finish
