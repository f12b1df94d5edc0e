# Backups (SPEC 10): a logical dump of a database with popug, restored into
# an empty database of the same cluster and of a fresh cluster, in custom
# and plain formats, holds every row and the position of every sequence and
# consumer, and popug carries on where the dump was taken: no event applied
# twice, no payout or mail repeated, new ids after the old ones, external
# consumers neither skip nor repeat, and the workers serve the restored
# database.  A dump taken mid-payout finishes the day on restore, paying
# nobody twice.  The publication popug_events belongs to the extension:
# no dump holds it, each restore gets it from CREATE EXTENSION.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PopugTest;

my $tmp = PostgreSQL::Test::Utils::tempdir;

# The primary: workers serve database popug; mail stays queued (no SMTP).
my $a = popug_node('a');
$a->start;
popug_create($a);
popug_wait_workers($a);
# Events in a partition of popug.event made at run time (not a member of
# the extension) as well as in event_default.
$a->safe_psql('popug', "SELECT popug.event_maintenance(); SELECT count(popug.event_append('Probe', 1, 'backup', NULL, '{}')) FROM generate_series(1, 1500)");
popug_outrun($a, 'popug', 500);
$a->safe_psql('popug', 'SELECT popug.event_maintenance()');	# the ids move on to a new partition
ok($a->safe_psql('popug', "SELECT count(DISTINCT tableoid) FROM popug.event") == 2, 'events in event_default and in a partition');

# Runs SQL as a role (SET ROLE) and returns the output.
sub as_role
{
	my ($node, $db, $role, $sql) = @_;
	return $node->safe_psql($db, "SET ROLE $role; $sql");
}

# Waits until popug's own consumers have nothing pending.
sub settle
{
	my ($node, $db) = @_;
	$node->poll_query_until($db,
		"SELECT count(*) = 2 FROM popug.consumer_lag WHERE consumer IN ('accounting', 'mailer') AND pending = 0"
	) or die "popug's consumers did not catch up";
	return;
}

# Rows of every popug table, without the transaction ids a restore into
# another cluster renumbers (event.txid, consumer positions, origin).
sub fingerprint
{
	my ($node, $db) = @_;
	# A consumer's position is its snapshot columns, which a restore into
	# another cluster renumbers (what each consumer reads next is checked
	# below instead); acked_at is when it last acknowledged, which the
	# workers of a cluster that serves the restored database do as soon as
	# the restore commits, moving their window over the renumbered ids.
	return popug_fingerprint($node, $db, 'origin.*', 'event.txid',
		map { "consumer.$_" } qw(snap_lo snap_hi last_id win_max_id batch_last_id batch_size acked_at));
}

# Reads and acknowledges everything a consumer (ext by default) has
# pending; its ids.
sub drain
{
	my ($node, $db, $consumer) = @_;
	my @ids;
	$consumer //= 'ext';
	for (;;)
	{
		my $batch = $node->safe_psql($db,
			"SET ROLE adm; SELECT string_agg(id::text, ',' ORDER BY id) FROM popug.events_read('$consumer', 7)");
		last if $batch eq '';
		push @ids, split /,/, $batch;
		$node->safe_psql($db, "SET ROLE adm; SELECT popug.events_ack('$consumer')");
	}
	return join(',', @ids);
}

# ---- a day's work on the primary ----
$a->safe_psql('postgres', 'CREATE ROLE adm; CREATE ROLE acc; CREATE ROLE mgr; CREATE ROLE w1; CREATE ROLE w2; CREATE ROLE w3');
$a->safe_psql('popug', q{
	SELECT popug.account_create('adm', 'adm@example.com', 'admin');
	SET ROLE adm;
	SELECT popug.account_create('acc', 'acc@example.com', 'accountant');
	SELECT popug.account_create('mgr', 'mgr@example.com', 'manager');
	SELECT popug.account_create(w, w || '@example.com', 'worker') FROM unnest('{w1,w2,w3}'::name[]) w;
	SELECT popug.consumer_create('ext', true);
	SELECT popug.consumer_create('late', true);
});
as_role($a, 'popug', 'mgr', "SELECT popug.task_create('task ' || i) FROM generate_series(1, 30) i");
# w1 and w2 earn (a reward outweighs any fee), w3 owes
as_role($a, 'popug', 'w1', "SELECT popug.task_complete(id) FROM popug.my_tasks WHERE status = 'open'");
as_role($a, 'popug', 'w2', "SELECT popug.task_complete(id) FROM popug.my_tasks WHERE status = 'open'");
settle($a, 'popug');
$a->safe_psql('popug', 'SET ROLE acc; CALL popug.payout_run(current_date)');
as_role($a, 'popug', 'mgr', "SELECT popug.task_create('after the payout ' || i) FROM generate_series(1, 5) i");
as_role($a, 'popug', 'mgr', 'SELECT popug.tasks_shuffle()');
settle($a, 'popug');

# Consumer late has read everything committed while a transaction that
# wrote events was still open; that one commits afterwards, so at the dump
# its events are pending for late behind events it has consumed.
my $held = $a->background_psql('popug');
my $late_task = $held->query_safe("BEGIN; SET ROLE mgr; SELECT popug.task_create('committed late')");
chomp $late_task;
my $early_task = as_role($a, 'popug', 'mgr', "SELECT popug.task_create('committed early')");
drain($a, 'popug', 'late');
$held->query_safe('COMMIT');
$held->quit;
settle($a, 'popug');

# ext has acknowledged some events and holds a batch it has not.
as_role($a, 'popug', 'adm', "SELECT count(*) FROM popug.events_read('ext', 20); SELECT popug.events_ack('ext'); SELECT count(*) FROM popug.events_read('ext', 9)");
$a->poll_query_until('popug', "SELECT count(*) > 0 FROM popug.mail WHERE status = 'pending'")
  or fail('payout mail waits to be sent');

# The primary's transaction ids run ahead of a new cluster's.
my $burn = "$tmp/burn.sql";
PostgreSQL::Test::Utils::append_to_file($burn, "SELECT pg_current_xact_id();\n" x 3000);
$a->command_ok(['psql', '-X', '-q', '-d', 'postgres', '-f', $burn], 'burn transaction ids');

my $fp_a = fingerprint($a, 'popug');
my $partitions_a = $a->safe_psql('popug', "SELECT string_agg(tableoid::regclass || ' ' || n, ',' ORDER BY tableoid::regclass::text) FROM (SELECT tableoid, count(*) n FROM popug.event GROUP BY 1) p");
my $max_event = $a->safe_psql('popug', 'SELECT max(id) FROM popug.event');
$a->command_ok(['pg_dump', '-Fc', '-d', 'popug', '-f', "$tmp/popug.dump"], 'pg_dump -Fc');
$a->command_ok(['pg_dump', '-d', 'popug', '-f', "$tmp/popug.sql"], 'pg_dump plain');
$a->command_ok(['pg_dumpall', '--globals-only', '-f', "$tmp/globals.sql"], 'pg_dumpall --globals-only');
unlike(slurp_file("$tmp/popug.sql"), qr/PUBLICATION/, 'no dump holds the extension\'s publication');

# What the primary's ext consumer still had to read at the dump.
my $ext_a = drain($a, 'popug');
ok($ext_a ne '', 'ext had events pending at the dump');
my $late_a = drain($a, 'popug', 'late');
my $late_min = $a->safe_psql('popug', "SELECT min(id) FROM popug.event WHERE aggregate_id = '$late_task'");
my $early_min = $a->safe_psql('popug', "SELECT min(id) FROM popug.event WHERE aggregate_id = '$early_task'");
ok($late_min < $early_min && ",$late_a," =~ /,$late_min,/ && ",$late_a," !~ /,$early_min,/,
	'late had the late commit pending behind a later-numbered event it had read')
  or diag("late: $late_a; late task's first event $late_min, early task's $early_min");

# Checks a restored database against the dump, then works in it.
sub check_restored
{
	my ($node, $db, $what, $served) = @_;

	# Before anything runs in it, and again after the workers looked at it.
	my $fp = fingerprint($node, $db);
	for my $t (sort keys %$fp_a)
	{
		is($fp->{$t}, $fp_a->{$t}, "$what: popug.$t as dumped");
	}
	is($node->safe_psql($db, "SELECT string_agg(tableoid::regclass || ' ' || n, ',' ORDER BY tableoid::regclass::text) FROM (SELECT tableoid, count(*) n FROM popug.event GROUP BY 1) p"),
		$partitions_a, "$what: popug.event's partitions as dumped");
	is(drain($node, $db), $ext_a, "$what: ext reads exactly what it had not acknowledged");
	is(drain($node, $db, 'late'), $late_a, "$what: a commit that came late to a consumer is still pending for it");
	if ($served)
	{
		popug_wait_workers($node, $db);
		sleep 2;
	}
	else
	{
		as_role($node, $db, 'acc', 'SELECT popug.payments_apply()');
	}
	my $fp2 = fingerprint($node, $db);
	is($fp2->{payment}, $fp_a->{payment}, "$what: no event applied again");
	is($fp2->{mail}, $fp_a->{mail}, "$what: no mail queued again");

	# A closed day stays closed: a rerun pays nobody.
	$node->safe_psql($db, 'SET ROLE acc; CALL popug.payout_run(current_date)');
	is($node->safe_psql($db, 'SELECT count(*) FROM popug.payout'),
		$a->safe_psql('popug', 'SELECT count(*) FROM popug.payout'), "$what: nobody paid again");

	# New work: ids continue, ext gets it, accounting applies it once.
	my $task = as_role($node, $db, 'mgr', "SELECT popug.task_create('restored')");
	$task =~ s/^SET\n//;
	ok($node->safe_psql($db, 'SELECT min(id) FROM popug.event WHERE aggregate_id = ' . "'$task'") > $max_event,
		"$what: new event ids continue after the dump's");
	if ($served)
	{
		$node->poll_query_until($db, "SELECT count(*) = 1 FROM popug.payment WHERE task_id = '$task'")
		  or fail("$what: the accounting worker applies new events");
	}
	else
	{
		as_role($node, $db, 'acc', 'SELECT popug.payments_apply()');
	}
	is($node->safe_psql($db, "SELECT count(*) FROM popug.payment WHERE task_id = '$task'"), '1',
		"$what: the new task's fee is charged once");
	my $ext = drain($node, $db);
	my @got = split /,/, $ext;
	ok(@got >= 2 && !grep({ $_ <= $max_event } @got), "$what: ext gets the new events and none of the old ones")
	  or diag("ext read $ext");
	is($node->safe_psql($db, "SELECT count(*) FROM popug.mail WHERE status = 'pending'"),
		$a->safe_psql('popug', "SELECT count(*) FROM popug.mail WHERE status = 'pending'"),
		"$what: pending mail is still pending");
	is($node->safe_psql($db, "SELECT string_agg(schemaname || '.' || tablename, ',') FROM pg_publication_tables WHERE pubname = 'popug_events'"),
		'popug.event', "$what: the extension's publication publishes popug.event");
	popug_invariants_hold($node, $db, $what);
	return;
}

# ---- into the same cluster, custom format ----
$a->safe_psql('postgres', 'CREATE DATABASE copy1');
$a->command_ok(['pg_restore', '-d', 'copy1', "$tmp/popug.dump"], 'pg_restore into the same cluster');
check_restored($a, 'copy1', 'same cluster, pg_restore', 0);

# ---- into a fresh cluster whose workers serve the database, custom format ----
my $b = popug_node('b');
$b->start;
$b->psql('postgres', undef, extra_params => ['-f', "$tmp/globals.sql"]);
$b->safe_psql('postgres', 'CREATE DATABASE popug');
$b->command_ok(['pg_restore', '--single-transaction', '-d', 'popug', "$tmp/popug.dump"],
	'pg_restore --single-transaction into a fresh cluster');
check_restored($b, 'popug', 'fresh cluster, pg_restore', 1);
ok($b->log_contains('event positions of a restored dump carried over'), 'the fresh cluster carried the positions over');

# ---- into a fresh cluster, plain format with psql ----
$b->safe_psql('postgres', 'CREATE DATABASE plain');
$b->command_ok(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction', '-d', 'plain', '-f', "$tmp/popug.sql"],
	'psql -f of a plain dump into a fresh cluster');
check_restored($b, 'plain', 'fresh cluster, psql -f', 0);

# ---- a dump taken in the middle of a payout ----
$a->safe_psql('postgres', 'CREATE DATABASE mid');
$a->safe_psql('mid', 'CREATE EXTENSION popug');
$a->safe_psql('mid', q{
	SELECT popug.account_create('acc', 'acc@example.com', 'accountant');
	SELECT popug.account_create('w' || i, 'w' || i || '@example.com', 'worker') FROM generate_series(1, 3) i;
});
$a->safe_psql('postgres', q{DO $$BEGIN FOR i IN 4..40 LOOP EXECUTE format('CREATE ROLE w%s', i); END LOOP; END$$});
$a->safe_psql('mid', q{SELECT popug.account_create('w' || i, 'w' || i || '@example.com', 'worker') FROM generate_series(4, 40) i});
as_role($a, 'mid', 'acc', "SELECT popug.task_create('mid ' || i) FROM generate_series(1, 120) i");
for my $i (1 .. 40)
{
	as_role($a, 'mid', "w$i", "SELECT popug.task_complete(id) FROM popug.my_tasks WHERE status = 'open'");
}
as_role($a, 'mid', 'acc', 'SELECT popug.payments_apply()');
# start the day and pay two batches of 5, then dump
for (1 .. 3)
{
	as_role($a, 'mid', 'acc', 'SELECT popug.payout_step(current_date, 5)');
}
my $paid_mid = $a->safe_psql('mid', 'SELECT count(*) FROM popug.payout');
ok($paid_mid > 0 && $a->safe_psql('mid', 'SELECT closed_at IS NULL FROM popug.billing_day') eq 't',
	"the dump is taken mid-payout ($paid_mid paid)");
$a->command_ok(['pg_dump', '-Fc', '-d', 'mid', '-f', "$tmp/mid.dump"], 'pg_dump mid-payout');
$a->safe_psql('mid', 'SET ROLE acc; CALL popug.payout_run(current_date)');
$b->safe_psql('postgres', 'CREATE DATABASE mid');
$b->command_ok(['pg_restore', '-d', 'mid', "$tmp/mid.dump"], 'pg_restore the mid-payout dump');
is($b->safe_psql('mid', 'SELECT count(*) FROM popug.payout'), $paid_mid, 'the restore holds the batches paid before the dump');
$b->safe_psql('mid', 'SET ROLE acc; CALL popug.payout_run(current_date)');
is($b->safe_psql('mid', 'SELECT closed_at IS NOT NULL FROM popug.billing_day'), 't', 'a rerun closes the day');
is($b->safe_psql('mid', "SELECT string_agg(account_id || ':' || amount, ',' ORDER BY account_id) FROM popug.payout"),
	$a->safe_psql('mid', "SELECT string_agg(account_id || ':' || amount, ',' ORDER BY account_id) FROM popug.payout"),
	'the restored day pays exactly whom and what the original did');
$b->safe_psql('mid', 'SELECT popug.mail_dispatch()');
popug_invariants_hold($b, 'mid', 'mid-payout restore');

done_testing();
