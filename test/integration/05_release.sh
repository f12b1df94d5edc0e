# Releases (SPEC 10): a released install script never changes, and the
# current version is reached from every released one by upgrade scripts.
# (test/tap/10_upgrade.pl checks that the upgraded catalogs equal a fresh
# install.)  See "Releasing a version" in README.md.
source "$(dirname "$0")/../lib.sh"
cd "$POPUG_ROOT"

current=$(sed -n "s/^default_version = '\(.*\)'$/\1/p" extension/popug.control)
is "$current" "$(sed -n 's/^EXTVERSION = //p' Makefile)" "popug.control's default_version is the Makefile's EXTVERSION"

released=()
while read -r version commit sum; do
	case "$version" in '#'* | '') continue ;; esac
	released+=("$version")
	f=extension/popug--$version.sql
	if [ "$version" = "$current" ]; then
		ok "$(! git ls-files --error-unmatch "$f" >/dev/null 2>&1; echo $?)" "$version is current: its script is built, not kept" 
	fi
	is "$(sha256sum <"$f" 2>/dev/null | cut -d' ' -f1)" "$sum" "$f is byte for byte as released"
	# and as built from extension/sql/ at the commit that released it
	if git cat-file -e "$commit^{commit}" 2>/dev/null; then
		built=$(git ls-tree --name-only "$commit" extension/sql/ | LC_ALL=C sort |
			while read -r part; do git show "$commit:$part"; done | sha256sum | cut -d' ' -f1)
		is "$built" "$sum" "$f is what $commit's extension/sql/ builds"
	else
		ok 1 "commit $commit of $version is in this clone's history"
	fi
done <extension/released

# Every released version reaches the current one through upgrade scripts.
reach() {	# reach FROM: can FROM be upgraded to $current?
	local from=$1 seen=" $2 " f to
	[ "$from" = "$current" ] && return 0
	for f in extension/popug--"$from"--*.sql; do
		[ -e "$f" ] || continue
		to=${f#extension/popug--"$from"--}
		to=${to%.sql}
		case "$seen" in *" $to "*) continue ;; esac
		reach "$to" "$seen $from" && return 0
	done
	return 1
}
for version in "${released[@]}"; do
	[ "$version" = "$current" ] && continue
	reach "$version" ""
	ok $? "an upgrade path leads from $version to $current"
done

# The current version's script is built from extension/sql/ alone: if it
# differs from the last released one, that version must not be current.
last=${released[${#released[@]}-1]}
if [ "$last" != "$current" ]; then
	ok "$(cmp -s "extension/popug--$last.sql" <(LC_ALL=C; cat $(ls extension/sql/*.sql | LC_ALL=C sort)); [ $? -ne 0 ]; echo $?)" \
		"$current changes something since $last (or it would not be a new version)"
fi
done_testing
