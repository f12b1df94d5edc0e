# The sustained-load benchmark in short (bench/80_sustained.sh, 3 minutes,
# retention 30 s) as a check that it works: it exits 0, prints a row for
# every minute and its three first/last rows, and retention removed the
# oldest events while it ran.  Nothing here is timed.
source "$(dirname "$0")/../lib.sh"
cd "$POPUG_ROOT"
require_cluster
MINUTES=3
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

fresh_db popug >/dev/null
SUSTAIN_MINUTES=$MINUTES SUSTAIN_RETENTION=30s SUSTAIN_RATE=20 \
	bash bench/80_sustained.sh >"$out/sustained.out" 2>"$out/sustained.err"
ok $? "bench/80_sustained.sh ran $MINUTES minutes and exited 0"
sed 's/^/#   /' "$out/sustained.err" "$out/sustained.out"
is "$(grep -c -E '^\| [0-9]+ \| [0-9.]+ \| [0-9.]+ ms \| [0-9.]+ ms \| [0-9]+ \| [0-9.]+ MB \| [0-9]+ \|$' "$out/sustained.err")" \
	"$MINUTES" "a row of figures for every minute"
is "$(grep -c -E '^\| (sustained rounds/s|sustained accounting lag p99|popug.event on disk), last ' "$out/sustained.out")" \
	3 "the last minutes compared with the first: rounds/s, lag, size"
is "$(q popug "SELECT min(id) > 1 FROM popug.event")" t "retention removed the oldest events"
is "$(q popug "SELECT count(*) > 0 FROM popug.task WHERE status = 'done'")" t "tasks were completed"
done_testing
