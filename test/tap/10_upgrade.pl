# Upgrades (SPEC 10): for each released version, a database filled through
# that version's API is upgraded the way users do it: the new package
# replaces the library and scripts (popug then refuses to run old SQL and
# its workers wait), then ALTER EXTENSION popug UPDATE.  Afterwards the data
# is intact, the catalogs match a fresh install of the current version
# exactly (test/catalog.sql), and everything works.
use strict;
use warnings;

use File::Copy;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PopugTest;

my $root = $ENV{POPUG_ROOT};
my $new_stage = $ENV{POPUG_STAGE};
my $pg = 'usr/lib/postgresql/15';
my $share = 'usr/share/postgresql/15/extension';
my $current = slurp_file("$root/extension/popug.control") =~ /default_version = '([^']+)'/ && $1;
my @released = map { (split ' ')[0] } grep { !/^#/ && /\S/ } split /\n/, slurp_file("$root/extension/released");

# Rows of every popug table.  Payment ids are left out: SPEC 4 defines
# them, and the upgrade may renumber them to that definition (checked
# below through the events they come from).
sub fingerprint
{
	my ($node) = @_;
	# payment ids are rewritten; ledger_task.billing_day is new in 0.2; a
	# worker's idle pass moves its consumer's snap_lo up past transactions
	# that wrote no event, at any time (the position stays the same)
	return popug_fingerprint($node, 'popug', 'payment.id', 'ledger_task.billing_day',
		'consumer.snap_lo');
}

sub catalog
{
	my ($node, $db) = @_;
	my ($rc, $out, $err) = $node->psql($db, undef, extra_params => ['-f', "$root/test/catalog.sql"]);
	die "catalog.sql failed: $err" if $rc;
	return $out;
}

for my $old (grep { $_ ne $current } @released)
{
	# A private copy of the old version's tree: the package upgrade below
	# writes into it.
	my $stage = PostgreSQL::Test::Utils::tempdir . "/stage";
	system('cp', '-a', "$root/tmp_install-$old", $stage) == 0 or die "cannot copy the $old tree";
	my $node = popug_node("v$old", install_path => "$stage/$pg");
	$node->start;
	popug_create($node);
	is($node->safe_psql('popug', "SELECT extversion FROM pg_extension WHERE extname = 'popug'"), $old,
		"$old installed");
	popug_wait_workers($node);

	# ---- fill it through its own API ----
	$node->safe_psql('postgres', join(';', map { "CREATE ROLE $_" } qw(adm acc mgr w1 w2 w3)));
	$node->safe_psql('popug', q{
		SELECT popug.account_create('adm', 'adm@example.com', 'admin');
		SET ROLE adm;
		SELECT popug.account_create('acc', 'acc@example.com', 'accountant');
		SELECT popug.account_create('mgr', 'mgr@example.com', 'manager', 'Manager');
		SELECT popug.account_create(w, w || '@example.com', 'worker') FROM unnest('{w1,w2,w3}'::name[]) w;
		SELECT popug.consumer_create('ext', true);
		SET ROLE mgr;
		SELECT popug.task_create('task ' || i, 'about ' || i, 'POP-' || i) FROM generate_series(1, 20) i;
		SET ROLE w1;
		SELECT popug.task_complete(id) FROM popug.my_tasks WHERE status = 'open';
		SET ROLE adm;
		SELECT popug.account_deactivate(id) FROM popug.accounts WHERE login = 'w3';
	});
	$node->poll_query_until('popug',
		"SELECT count(*) = 2 FROM popug.consumer_lag WHERE consumer IN ('accounting', 'mailer') AND pending = 0")
	  or die 'accounting did not catch up';
	$node->safe_psql('popug', 'SET ROLE acc; CALL popug.payout_run(current_date)');
	$node->safe_psql('popug', "SET ROLE mgr; SELECT popug.task_create('after the payout'); SELECT popug.tasks_shuffle()");
	$node->safe_psql('popug', "SET ROLE adm; SELECT count(*) FROM popug.events_read('ext', 15); SELECT popug.events_ack('ext');");
	$node->poll_query_until('popug',
		"SELECT count(*) = 2 FROM popug.consumer_lag WHERE consumer IN ('accounting', 'mailer') AND pending = 0")
	  or die 'accounting did not catch up';
	ok($node->safe_psql('popug', 'SELECT count(*) FROM popug.payout') > 0, "$old: a day paid out");

	# 0.1 hashed an event's timestamp into its payment's id, so a copy of an
	# event with another timestamp was charged again: have it do that once.
	# (The task was created and shuffled: it has two fees already, so the
	# copy's charge is counted by the copied event's event_id.)
	my $twice = $node->safe_psql('popug',
		"SELECT event_id FROM popug.event WHERE event_name = 'TaskAssigned' ORDER BY id DESC LIMIT 1");
	$node->safe_psql('popug', qq{
		INSERT INTO popug.event (event_id, event_name, event_version, producer, aggregate_id, occurred_at, payload)
		SELECT event_id, event_name, event_version, producer, aggregate_id, occurred_at + interval '1 minute', payload
		  FROM popug.event WHERE event_id = '$twice'});
	$node->poll_query_until('popug', "SELECT count(*) = 2 FROM popug.payment WHERE event_id = '$twice' AND kind = 'assign_fee'")
	  or fail("$old charges a redelivered copy again (the bug 0.2 fixes)");
	$node->poll_query_until('popug',
		"SELECT count(*) = 2 FROM popug.consumer_lag WHERE consumer IN ('accounting', 'mailer') AND pending = 0")
	  or die 'accounting did not catch up';
	my $before = fingerprint($node);
	my $kept_ids = $node->safe_psql('popug', 'SELECT string_agg(id::text, \',\' ORDER BY id) FROM popug.payment WHERE event_id IS NULL');
	# an event applied under the old version, to apply again after the upgrade
	my $old_event = $node->safe_psql('popug',
		"SELECT id FROM popug.event WHERE event_name = 'TaskAssigned' ORDER BY id LIMIT 1");

	# ---- the package upgrade: new library and scripts, old SQL ----
	$node->stop;
	copy("$new_stage/$pg/lib/popug.so", "$stage/$pg/lib/popug.so") or die $!;
	unlink glob("$stage/$share/popug*");
	copy($_, "$stage/$share/") or die $! for glob("$new_stage/$share/popug*");
	$node->start;

	# every C function the old SQL names still resolves in the new library
	my @symbols = split /\n/, $node->safe_psql('popug',
		"SELECT DISTINCT prosrc FROM pg_proc WHERE pronamespace = 'popug'::regnamespace AND prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')");
	my @missing = grep {
		my ($rc) = $node->psql('popug',
			"CREATE FUNCTION pg_temp.probe() RETURNS void AS '\$libdir/popug', '$_' LANGUAGE C");
		$rc != 0
	} @symbols;
	is_deeply(\@missing, [], "$old: the new library has every C symbol the old SQL names");

	my ($rc, $out, $err) = $node->psql('popug', 'SET ROLE adm; SELECT popug.whoami()');
	like($err, qr/extension popug is at version \Q$old\E, but its library is version \Q$current\E.*HINT:  Run ALTER EXTENSION popug UPDATE/s,
		"$old: calls ask for ALTER EXTENSION UPDATE before it");
	sleep 3;
	my $log = slurp_file($node->logfile);
	$log =~ s/.*database system is ready to accept connections//s;
	ok($log !~ /popug (accounting|mailer|scheduler|notifier) (ERROR|FATAL)/, "$old: the workers wait quietly for the update");

	# ---- ALTER EXTENSION UPDATE ----
	$node->safe_psql('popug', 'ALTER EXTENSION popug UPDATE');
	is($node->safe_psql('popug', "SELECT extversion FROM pg_extension WHERE extname = 'popug'"), $current,
		"$old: updated to $current");
	my $after = fingerprint($node);
	delete $after->{$_} for grep { !exists $before->{$_} } keys %$after;
	is_deeply($after, $before, "$old: every row kept");
	is($node->safe_psql('popug',
			"SELECT count(*) FROM popug.ledger_task t WHERE billing_day IS DISTINCT FROM"
			  . " (SELECT min(p.billing_day) FROM popug.payment p WHERE p.task_id = t.task_id AND p.kind = 'assign_fee')"),
		'0', "$old: each task counts in statistics on the billing day of its first fee");

	$node->safe_psql('postgres', 'CREATE DATABASE fresh');
	$node->safe_psql('fresh', 'CREATE EXTENSION popug');
	my ($got, $want) = (catalog($node, 'popug'), catalog($node, 'fresh'));
	ok($got eq $want, "$old: the catalogs equal a fresh install of $current") or do
	{
		my %w = map { $_ => 1 } split /\n/, $want;
		my %g = map { $_ => 1 } split /\n/, $got;
		diag("only after the upgrade: $_") for grep { !$w{$_} } split /\n/, $got;
		diag("only in a fresh install: $_") for grep { !$g{$_} } split /\n/, $want;
	};
	like($want, qr/^dumped popug\.event where $/m, 'the catalog listing covers what pg_dump keeps');

	# ---- payment ids: SPEC 4's hash, and nothing 0.1 applied applies again ----
	is($node->safe_psql('popug',
			"SELECT count(*) FROM (SELECT event_id, kind, account_id FROM popug.payment WHERE event_id IS NOT NULL"
			  . " GROUP BY 1, 2, 3 HAVING count(*) FILTER (WHERE id = md5(concat_ws('|', event_id, kind, account_id))::uuid) <> 1) d"),
		'0', "$old: each event's payment has the id SPEC 4 gives it");
	is($node->safe_psql('popug', "SELECT count(*) FROM popug.payment WHERE event_id = '$twice' AND kind = 'assign_fee'"),
		'2', "$old: a payment $old charged twice stays in the audit log");
	is($node->safe_psql('popug', 'SELECT string_agg(id::text, \',\' ORDER BY id) FROM popug.payment WHERE event_id IS NULL'),
		$kept_ids, "$old: payout payments keep their ids");
	popug_wait_workers($node);
	# replay the whole stream to accounting, and redeliver a copy with
	# another timestamp and fee
	$node->safe_psql('popug', q{
		UPDATE popug.consumer SET snap_lo = '1:1:', snap_hi = NULL, last_id = NULL, win_max_id = NULL,
			   batch_last_id = NULL, batch_size = NULL WHERE name = 'accounting'});
	$node->safe_psql('popug', qq{
		INSERT INTO popug.event (event_id, event_name, event_version, producer, aggregate_id, occurred_at, payload)
		SELECT event_id, event_name, event_version, 'import', aggregate_id, occurred_at - interval '1 day',
			   payload || '{"assign_fee": 19.99}'
		  FROM popug.event WHERE id = $old_event});
	$node->poll_query_until('popug', "SELECT pending = 0 FROM popug.consumer_lag WHERE consumer = 'accounting'")
	  or fail('accounting replays the stream');
	my $replayed = fingerprint($node);
	is($replayed->{payment} . ' ' . $replayed->{balance}, $before->{payment} . ' ' . $before->{balance},
		"$old: replaying every event and a redelivered copy writes no payment and moves no balance");
	is($replayed->{dead_letter}, $before->{dead_letter}, "$old: and sets nothing aside");
	is($node->safe_psql('popug',
			"SELECT count(*) FROM popug.event e WHERE e.event_name = 'TaskAssigned' AND popug.payment_apply(e)"),
		'0', "$old: payment_apply of every event applied before: false");

	# ---- and it works ----
	my $task = $node->safe_psql('popug', "SET ROLE mgr; SELECT popug.task_create('after the upgrade')");
	$node->poll_query_until('popug', "SELECT count(*) = 1 FROM popug.payment WHERE task_id = '$task'")
	  or fail("$old: the accounting worker applies new events after the upgrade");
	$node->safe_psql('popug', "SET ROLE w1; SELECT popug.task_complete(id) FROM popug.my_tasks WHERE status = 'open'");
	ok($node->safe_psql('popug', "SET ROLE adm; SELECT count(*) FROM popug.events_read('ext', 1000)") > 0,
		"$old: an external consumer reads on from its position");
	$node->poll_query_until('popug',
		"SELECT count(*) = 2 FROM popug.consumer_lag WHERE consumer IN ('accounting', 'mailer') AND pending = 0")
	  or fail('accounting catches up');
	$node->safe_psql('popug', 'SET ROLE acc; CALL popug.payout_run(current_date)');
	popug_invariants_hold($node, 'popug', $old, 'balances equal the sum of their payments',
		'nobody paid twice a day', 'closed days owe nothing');
	is($node->safe_psql('popug',
			"SELECT count(*) FROM (SELECT event_id, kind, account_id FROM popug.payment"
			  . " WHERE event_id IS NOT NULL AND event_id <> '$twice' GROUP BY 1, 2, 3 HAVING count(*) > 1) d"),
		'0', "$old: no event applied twice, but for the copy $old charged again");
	$node->stop;
}

done_testing();
