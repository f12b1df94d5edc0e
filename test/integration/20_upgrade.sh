# Upgrades (SPEC 10): a database made with the released 0.1 and taken to
# the current version by ALTER EXTENSION popug UPDATE has exactly the
# objects, definitions, options, comments and grants of a fresh install.
# Both are compared as pg_dump --binary-upgrade writes them, which dumps
# every member of an extension; only object ids and transaction ids, which
# differ between any two databases, are left out.
source "$(dirname "$0")/../lib.sh"
cd "$POPUG_ROOT"
require_cluster

current=$(sed -n "s/^default_version = '\(.*\)'/\1/p" extension/popug.control)
old=popug_upgrade_old
new=popug_upgrade_new
for db in $old $new; do
	"$PG_BIN/psql" -X -q -d postgres -v ON_ERROR_STOP=1 \
		-c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" || exit 1
done
q $old "CREATE EXTENSION popug VERSION '0.1'"
is "$(q $old "SELECT extversion FROM pg_extension WHERE extname = 'popug'")" 0.1 "0.1 installs as released"
q $old "ALTER EXTENSION popug UPDATE"
q $new "CREATE EXTENSION popug"
is "$(q $old "SELECT extversion FROM pg_extension WHERE extname = 'popug'")" "$current" \
	"ALTER EXTENSION popug UPDATE takes it to $current"

# pg_dump's schema of each, without what differs between any two databases
schema() {
	"$PG_BIN/pg_dump" --schema-only --binary-upgrade -d "$1" |
		grep -v -e 'binary_upgrade_set_next' -e 'binary_upgrade_create_empty_extension' \
			-e '^\\restrict' -e '^\\unrestrict' -e 'relfrozenxid' -e '^WHERE oid = '
}
schema $old >"$POPUG_WORK/upgrade_old.sql"
schema $new >"$POPUG_WORK/upgrade_new.sql"
ok "$([ -s "$POPUG_WORK/upgrade_new.sql" ] && grep -q 'CREATE VIEW popug.my_tasks' "$POPUG_WORK/upgrade_new.sql"; echo $?)" \
	"pg_dump --binary-upgrade shows the extension's members"
d=$(diff -u "$POPUG_WORK/upgrade_new.sql" "$POPUG_WORK/upgrade_old.sql")
ok "$([ -z "$d" ]; echo $?)" "an upgraded database has the objects, definitions, options, comments and grants of a fresh install"
[ -z "$d" ] || echo "$d" | head -60 | sed 's/^/#   /'

# the tables and sequences pg_dump keeps the rows of (their ids differ)
config="SELECT array(SELECT c::regclass::text || ':' || coalesce(e.extcondition[i], '')
					 FROM unnest(e.extconfig) WITH ORDINALITY u(c, i) ORDER BY 1)
		  FROM pg_extension e WHERE e.extname = 'popug'"
is "$(q $old "$config")" "$(q $new "$config")" "and the same tables and sequences marked for pg_dump"

for db in $old $new; do
	"$PG_BIN/psql" -X -q -d postgres -c "DROP DATABASE $db WITH (FORCE)"
done
done_testing
