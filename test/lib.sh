# Shared shell functions for popug's test harness, integration tests, demo
# and benchmarks.  Source it; it defines functions and a few variables and
# runs nothing by itself.
#
# popug is installed into a private copy of the system PostgreSQL tree
# (tmp_install/, as PostgreSQL's own "make check" does), so tests never
# touch the system installation and several checkouts can test at once.

POPUG_ROOT=${POPUG_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
PG_MAJOR=15
SYS_PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
STAGE=$POPUG_ROOT/tmp_install
export PG_BIN=$STAGE/usr/lib/postgresql/$PG_MAJOR/bin
PYTHON=/usr/bin/python3

# Debian packages popug's build, tests, demo and benchmarks need.
POPUG_PACKAGES="build-essential postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR
	postgresql-$PG_MAJOR-pgtap postgresql-$PG_MAJOR-cron libcurl4-openssl-dev
	libpq-dev libtap-parser-sourcehandler-pgtap-perl python3 python3-aiosmtpd
	python3-psycopg2 python3-pytest curl libipc-run-perl pgbackrest prometheus-postgres-exporter prometheus
	postgresql-$PG_MAJOR-wal2json"

log() { printf '\n=== %s\n' "$*" >&2; }

# Installs the Debian packages that are missing (as root), or says what to
# install.
ensure_deps() {
	local missing=() p
	for p in $POPUG_PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing packages: ${missing[*]} (run as root, or apt-get install them)" >&2
		return 1
	fi
	log "installing ${missing[*]}"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends "${missing[@]}" >/dev/null
}

# stage_tree SRC DEST: builds popug from source tree SRC and installs it into
# DEST, a fresh copy of the system PostgreSQL tree that PostgreSQL finds its
# files in relative to its binaries.
stage_tree() {
	local src=$1 dest=$2 lib share
	make -C "$src" -s PG_CONFIG=$SYS_PG_CONFIG >/dev/null || return 1
	lib=$(dirname "$($SYS_PG_CONFIG --pkglibdir)")	# /usr/lib/postgresql/15
	share=$($SYS_PG_CONFIG --sharedir)			# /usr/share/postgresql/15
	rm -rf "$dest"
	mkdir -p "$dest$(dirname "$lib")" "$dest$(dirname "$share")"
	cp -a "$lib" "$dest$(dirname "$lib")/"
	cp -a "$share" "$dest$(dirname "$share")/"
	make -C "$src" -s PG_CONFIG=$SYS_PG_CONFIG install DESTDIR="$dest" >/dev/null || return 1
	chmod -R a+rX "$dest"
}

# Builds popug and installs it into tmp_install/.
stage_install() {
	stage_tree "$POPUG_ROOT" "$STAGE"
}

# stage_released VERSION: popug as released at VERSION (the commit that
# extension/released names), built from git history into
# tmp_install-VERSION/, for the upgrade test.  Kept while the commit is.
stage_released() {
	local version=$1 commit src dest=$POPUG_ROOT/tmp_install-$1
	commit=$(awk -v v="$version" '$1 == v { print $2 }' "$POPUG_ROOT/extension/released")
	[ -n "$commit" ] || { echo "version $version is not in extension/released" >&2; return 1; }
	if [ -f "$dest/.commit" ] && [ "$(cat "$dest/.commit")" = "$commit" ]; then
		return 0
	fi
	git -C "$POPUG_ROOT" cat-file -e "$commit^{commit}" 2>/dev/null || {
		echo "commit $commit of popug $version is not in this clone's history" >&2
		return 1
	}
	src=$(mktemp -d /tmp/popug-src.XXXXXX)
	git -C "$POPUG_ROOT" archive "$commit" | tar -x -C "$src" &&
		stage_tree "$src" "$dest" && echo "$commit" >"$dest/.commit"
	local rc=$?
	rm -rf "$src"
	return $rc
}

# sanitize_server [BINDIR]: makes the postgres of BINDIR (the staged one by
# default) a wrapper that runs the real one with the AddressSanitizer
# runtime preloaded (popug.so is built with ASan and UBSan when
# POPUG_SANITIZE=1; PostgreSQL is not, so the runtime must come first, with
# test/asan_preload.c to let it start).  The wrapper finds both beside
# itself, so a copy of the tree runs its own.  Reports go to the server's
# stderr, its log.  Leak detection is off: PostgreSQL frees by memory
# context and at exit, not allocation by allocation.
sanitize_server() {
	local bin=${1:-$PG_BIN} asan
	asan=$(gcc -print-file-name=libasan.so)
	[ -e "$asan" ] || { echo "no libasan.so (gcc -print-file-name=libasan.so)" >&2; return 1; }
	gcc -shared -fPIC -O2 -Wall -Wextra -Werror -o "$bin/asan_preload.so" \
		"$POPUG_ROOT/test/asan_preload.c" || return 1
	[ -e "$bin/postgres.real" ] || mv "$bin/postgres" "$bin/postgres.real" || return 1
	cat >"$bin/postgres" <<WRAPPER
#!/bin/sh
case \$0 in */*) bin=\${0%/*} ;; *) bin=\$(dirname "\$(command -v "\$0")") ;; esac
LD_PRELOAD="$asan \$bin/asan_preload.so\${LD_PRELOAD:+ \$LD_PRELOAD}" \\
ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:quarantine_size_mb=32" \\
UBSAN_OPTIONS="print_stacktrace=1" \\
	exec "\$bin/postgres.real" "\$@"
WRAPPER
	chmod 755 "$bin/postgres"
}

# unsanitize_server BINDIR: undoes sanitize_server, for a tree kept
# between runs.
unsanitize_server() {
	[ -e "$1/postgres.real" ] || return 0
	mv -f "$1/postgres.real" "$1/postgres" && rm -f "$1/asan_preload.so"
}

# sanitizer_reports LOG...: prints the sanitizer reports in the server logs
# LOG; returns how many there are.
sanitizer_reports() {
	local f n=0 pattern='runtime error:|ERROR: AddressSanitizer'
	for f in "$@"; do
		[ -e "$f" ] && grep -q -E "$pattern" "$f" || continue
		n=$((n + $(grep -c -E "$pattern" "$f")))
		echo "--- $f" >&2
		grep -A 24 -E "$pattern" "$f" | head -n 100 >&2
	done
	return $((n > 255 ? 255 : n))
}

# Runs a command as the postgres user when we are root (PostgreSQL refuses
# to run as root), as ourselves otherwise.
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# A free TCP port on 127.0.0.1 at or above $1.
free_port() {
	local port=${1:-55432}
	while (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null || [ -e "/tmp/.s.PGSQL.$port" ]; do
		port=$((port + 1))
	done
	echo $port
}

# cluster_init DIR [extra postgresql.conf lines...]: a new cluster in
# DIR/data with its socket in DIR, listening on a free port on 127.0.0.1.
# Exports PGHOST, PGPORT, PGUSER and PGDATA for everything that follows.
cluster_init() {
	local dir=$1
	shift
	mkdir -p "$dir"
	[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
	chmod 755 "$dir"
	export PGDATA=$dir/data PGHOST=$dir PGUSER=postgres PGDATABASE=postgres
	export PGPORT=${POPUG_PORT:-$(free_port 55432)}
	as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null || return 1
	{
		echo "port = $PGPORT"
		echo "listen_addresses = '127.0.0.1'"
		echo "unix_socket_directories = '$dir'"
		echo "shared_preload_libraries = 'popug,pg_cron'"
		echo "cron.database_name = 'popug'"
		echo "cron.use_background_workers = on"
		echo "popug.database = 'popug'"
		echo "max_connections = 100"
		echo "max_worker_processes = 16"
		echo "log_line_prefix = '%m [%p] %b '"
		local line
		for line in "$@"; do echo "$line"; done
	} | as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null
}

cluster_start() {
	as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PGHOST/server.log" -w -t 60 start >/dev/null
}

# Stops the cluster; mode fast by default, immediate for a crash.
cluster_stop() {
	as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m "${1:-fast}" -w -t 60 stop >/dev/null 2>&1
}

cluster_restart() {
	cluster_stop "${1:-fast}"
	cluster_start
}

# Waits until the server accepts connections again (after a crash restart).
cluster_wait() {
	local i
	for i in $(seq 1 300); do
		"$PG_BIN/pg_isready" -q -d postgres && return 0
		sleep 0.1
	done
	return 1
}

# q DB SQL...: runs SQL as the superuser, prints unaligned tuples only.
q() {
	local db=$1
	shift
	"$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -d "$db" -c "$*"
}

# A fresh popug in database $1 (dropped and created again).
fresh_db() {
	local db=$1
	"$PG_BIN/psql" -X -q -d postgres -v ON_ERROR_STOP=1 \
		-c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" &&
		q "$db" "CREATE EXTENSION popug"
}

# ---- TAP output for integration scripts (run by prove) ----

TAP_N=0
TAP_FAILED=0

ok() {
	local cond=$1
	shift
	TAP_N=$((TAP_N + 1))
	if [ "$cond" = 0 ] || [ "$cond" = true ]; then
		echo "ok $TAP_N - $*"
	else
		echo "not ok $TAP_N - $*"
		TAP_FAILED=$((TAP_FAILED + 1))
	fi
}

# is GOT WANT NAME
is() {
	TAP_N=$((TAP_N + 1))
	if [ "$1" = "$2" ]; then
		echo "ok $TAP_N - $3"
	else
		echo "not ok $TAP_N - $3"
		echo "#   got:  '$1'"
		echo "#   want: '$2'"
		TAP_FAILED=$((TAP_FAILED + 1))
	fi
}

done_testing() {
	echo "1..$TAP_N"
	[ "$TAP_FAILED" -eq 0 ]
}

# Fails the script (one failed test) unless the cluster is running.
require_cluster() {
	if [ -z "${PGHOST:-}" ] || ! "$PG_BIN/pg_isready" -q -d postgres; then
		echo "1..0 # SKIP no popug test cluster (run through make test)"
		exit 1
	fi
}
