#!/usr/bin/env bash
# make bench: a dedicated cluster (default durability settings, popug and
# pg_cron preloaded), then every bench/NN_*.sh in order.  Each prints
# Markdown rows, each popug figure beside a baseline from this same run.
#   POPUG_BENCH="bench/20_events.sh"   run only these
#   BENCH_SECONDS=10                    length of each throughput run
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$POPUG_ROOT"

ensure_deps || exit 1
stage_install || exit 1
WORK=$(mktemp -d /tmp/popug-bench.XXXXXX)
chmod 755 "$WORK"
trap 'cluster_stop immediate; rm -rf "$WORK"' EXIT
cluster_init "$WORK/pg" "shared_buffers = '1GB'" "max_wal_size = '4GB'" \
	"checkpoint_timeout = '30min'" || exit 1
cluster_start || exit 1
"$PG_BIN/createdb" popug
export BENCH_WORK=$WORK

echo "popug benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'), ${BENCH_SECONDS}s per throughput run"
echo
echo "| what | popug | baseline | popug/baseline | target |"
echo "|---|---|---|---|---|"
rc=0
for f in bench/[0-9]*.sh; do
	[ -n "${POPUG_BENCH:-}" ] && case " $POPUG_BENCH " in *" $f "*) ;; *) continue ;; esac
	fresh_db popug >/dev/null || { rc=1; continue; }
	bash "$f" || { echo "| $f failed | | | | |"; rc=1; }
done
exit $rc
