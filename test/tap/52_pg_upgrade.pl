# pg_upgrade of a cluster with popug: a database with tasks, payments, a
# partition of popug.event made at run time and events a consumer has not
# read yet is upgraded into a fresh cluster (15 to 15, both preloading
# popug), once as an operator runs pg_upgrade (popug preloaded in the
# servers pg_upgrade runs, which start no popug worker in binary upgrade
# mode) and once with popug kept out of those servers.  pg_dump
# --binary-upgrade makes the publication popug_events as an ordinary
# object, since ALTER EXTENSION ADD knows no publications; popug's first
# call, as the new server starts, makes it a member
# of the extension again.  Afterwards every row is there, the consumer
# reads what it had not read and then new events, accounting goes on, the
# publication streams the new events, a dump holds no publication, and
# DROP EXTENSION leaves nothing behind.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PopugTest;

my $tmp = PostgreSQL::Test::Utils::tempdir;

# member(NODE): whether popug_events is a member of extension popug.
sub member
{
	my ($node) = @_;
	return $node->safe_psql('popug', q{
		SELECT count(*) FROM pg_depend d JOIN pg_publication p ON p.oid = d.objid
		 WHERE d.classid = 'pg_publication'::regclass AND p.pubname = 'popug_events'
		   AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
		   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'popug')});
}

# read_ext(NODE): the ids consumer ext reads and acknowledges, up to 10,000.
sub read_ext
{
	my ($node) = @_;
	my $ids = $node->safe_psql('popug',
		"SET ROLE u_admin; SELECT string_agg(id::text, ',' ORDER BY id) FROM popug.events_read('ext', 10000)");
	$node->safe_psql('popug', "SET ROLE u_admin; SELECT popug.events_ack('ext')");
	return $ids;
}

# publication(NODE): what popug_events publishes.
sub publication
{
	my ($node) = @_;
	return $node->safe_psql('popug', q{
		SELECT pubinsert || ' ' || pubupdate || ' ' || pubdelete || ' ' || pubtruncate || ' ' || pubviaroot || ' '
			   || (SELECT string_agg(schemaname || '.' || tablename, ',') FROM pg_publication_tables t WHERE t.pubname = p.pubname)
		  FROM pg_publication p WHERE pubname = 'popug_events'});
}

# upgrade_case(CASE, WORKERS): the whole upgrade, with popug's workers in
# the servers pg_upgrade runs or not.
sub upgrade_case
{
	my ($case, $workers) = @_;
	my $old = popug_node("old_$case", init => { allows_streaming => 'logical' });
	$old->start;
	popug_create($old);
	popug_wait_workers($old);
	$old->safe_psql('popug', q{
		CREATE ROLE u_admin; CREATE ROLE u_worker;
		SELECT popug.account_create('u_admin', 'admin@example.com', 'admin');
		SELECT popug.account_create('u_worker', 'worker@example.com', 'worker');
		SET ROLE u_admin;
		SELECT popug.consumer_create('ext');
		SELECT popug.task_create('before ' || i) FROM generate_series(1, 10) i;
	});

	# ext reads the first events; those after are pending through the upgrade,
	# some of them in a partition made at run time.
	popug_settle($old);
	my $read = read_ext($old);
	$old->safe_psql('popug', q{
		SELECT popug.event_maintenance();
		SELECT count(popug.event_append('Probe', 1, 'upgrade', NULL, '{}')) FROM generate_series(1, 1500);
		SET ROLE u_admin;
		SELECT popug.task_create('before ' || i) FROM generate_series(11, 20) i;
	});
	popug_outrun($old, 'popug', 100);
	$old->safe_psql('popug', 'SELECT popug.event_maintenance()');	# the ids move on to a new partition
	popug_settle($old);
	my $pending = $old->safe_psql('popug', "SELECT string_agg(id::text, ',' ORDER BY id) FROM popug.event WHERE id > " . (split /,/, $read)[-1]);
	ok($old->safe_psql('popug', 'SELECT count(DISTINCT tableoid) FROM popug.event') == 2,
		"$case: events in event_default and in a partition made at run time");
	is(member($old), '1', "$case: before: popug_events is a member of the extension");
	my $pub_before = publication($old);
	# Rows without the consumers' acknowledgments, which the workers move as
	# soon as they run (where ext resumes is checked below).
	my @skip = ('origin.*', map { "consumer.$_" } qw(snap_lo snap_hi last_id win_max_id batch_last_id batch_size acked_at));
	my $before = popug_fingerprint($old, 'popug', @skip);
	$old->stop;

	my $new = popug_node("new_$case", init => { allows_streaming => 'logical' });
	my $bindir = $old->config_data('--bindir');
	my ($stdout, $stderr);
	my $ok = IPC::Run::run(
		[ "$bindir/pg_upgrade", '--no-sync',
			'-b', $bindir, '-B', $bindir,
			'-d', $old->data_dir, '-D', $new->data_dir,
			'-p', $old->port, '-P', $new->port,
			'-s', $new->host,
			$workers ? () : ('-o', "-c shared_preload_libraries=''", '-O', "-c shared_preload_libraries=''") ],
		'>', \$stdout, '2>', \$stderr, init => sub { chdir $tmp });
	ok($ok, "$case: pg_upgrade") or diag("$stdout\n$stderr");
	$new->start;

	# popug's first call (a worker's, as the server starts) restores the membership.
	ok($new->poll_query_until('popug', 'SELECT ' . q{
		(SELECT count(*) FROM pg_depend d JOIN pg_publication p ON p.oid = d.objid
		  WHERE d.classid = 'pg_publication'::regclass AND p.pubname = 'popug_events' AND d.deptype = 'e') = 1}),
		"$case: after: popug_events is a member of the extension again");
	is(member($new), '1', "$case: of extension popug, once");
	# (pg_upgrade's own servers run no popug worker, so it happens here)
	ok($new->log_contains('publication popug_events made a member of extension popug again'), "$case: the server log says so");
	is(publication($new), $pub_before, "$case: it publishes what it did");
	is_deeply(popug_fingerprint($new, 'popug', @skip), $before, "$case: every row and sequence position is there");
	popug_wait_workers($new);

	# Events flow: ext reads what it had not read, then new events; the
	# accounting worker charges the new tasks' fees; a slot on the publication
	# streams the new events.
	is(read_ext($new), $pending, "$case: ext reads the events it had not read before the upgrade");
	$new->safe_psql('popug', "SELECT pg_create_logical_replication_slot('after', 'pgoutput')");
	$new->safe_psql('popug', "SET ROLE u_admin; SELECT popug.task_create('after ' || i) FROM generate_series(1, 5) i");
	popug_settle($new);
	my $after = $new->safe_psql('popug', "SELECT string_agg(id::text, ',' ORDER BY id) FROM popug.event WHERE id > " . (split /,/, $pending)[-1]);
	is(read_ext($new), $after, "$case: and then the new ones");
	is($new->safe_psql('popug', "SELECT count(*) FROM popug.payment p JOIN popug.account a ON a.id = p.account_id WHERE a.login = 'u_worker' AND p.kind = 'assign_fee'"),
		'25', "$case: accounting charged the fees of the tasks made before and after");
	is($new->safe_psql('popug', q{
		SELECT count(*) FROM pg_logical_slot_peek_binary_changes('after', NULL, NULL,
			'proto_version', '1', 'publication_names', 'popug_events')
		 WHERE get_byte(data, 0) = ascii('I')}),
		scalar(split /,/, $after), "$case: the publication streams every new event");

	# A dump holds no publication; DROP EXTENSION leaves nothing.
	my $dump = "$tmp/after_$case.sql";
	$new->command_ok([ 'pg_dump', '-d', $new->connstr('popug'), '-f', $dump ], "$case: pg_dump after the upgrade");
	ok(!(slurp_file($dump) =~ /PUBLICATION/), "$case: the dump holds no publication");
	$new->safe_psql('popug', "SELECT pg_drop_replication_slot('after')");
	$new->safe_psql('popug', 'DROP EXTENSION popug');
	is($new->safe_psql('popug', q{
		SELECT (SELECT count(*) FROM pg_publication) || ' ' || (SELECT count(*) FROM pg_namespace WHERE nspname = 'popug')
			   || ' ' || (SELECT count(*) FROM pg_class WHERE relname LIKE 'event%')}),
		'0 0 0', "$case: DROP EXTENSION leaves no publication, schema or table");
	return;
}

upgrade_case('preloaded', 1);
upgrade_case('unloaded', 0);

done_testing();
