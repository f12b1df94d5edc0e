# Events out by logical replication (SPEC 10): the extension's publication
# popug_events, a second cluster subscribing with CREATE SUBSCRIPTION to a
# table made by replication/subscriber.sql, and pg_recvlogical with
# wal2json.  While popug works (tasks, completions, the accounting worker
# writing TransactionApplied), transactions are held open and committed in
# another order than their event ids, one is rolled back and one dies in a
# crash of the publisher; the subscriber is killed and the publisher is
# killed and restarted, and retention drops what popug's consumers have
# read.  The subscriber ends with every committed event
# exactly once, in commit order, and nothing else; pg_recvlogical receives
# the same events in the same order as JSON.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PopugTest;

my $tmp = PostgreSQL::Test::Utils::tempdir;

my $pub = popug_node('pub', init => { allows_streaming => 'logical' });
$pub->start;
# A server that has output_plugin_libraries (Debian's 15.20 does) loads only
# the output plugins it names.
my $plugins = $pub->safe_psql('postgres',
	"SELECT setting FROM pg_settings WHERE name = 'output_plugin_libraries'");
$pub->append_conf('postgresql.conf', "output_plugin_libraries = '$plugins, wal2json'") if $plugins ne '';
$pub->restart;
popug_create($pub);
is($pub->safe_psql('popug', q{
	SELECT pubinsert || ' ' || pubupdate || ' ' || pubdelete || ' ' || pubtruncate || ' ' || pubviaroot || ' '
		   || (SELECT string_agg(schemaname || '.' || tablename, ',') FROM pg_publication_tables t WHERE t.pubname = p.pubname)
	  FROM pg_publication p WHERE pubname = 'popug_events'}),
	'true false false false true popug.event', 'the extension publishes popug.event: inserts only, through the root');

# Both clients start before the first event.
$pub->command_ok(['pg_recvlogical', '-d', $pub->connstr('popug'), '--slot', 'w2j',
		'--create-slot', '--plugin', 'wal2json'], 'a wal2json slot');
my $sub = PostgreSQL::Test::Cluster->new('sub');
$sub->init;
$sub->start;
$sub->safe_psql('postgres', 'CREATE DATABASE events');
$sub->command_ok(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $sub->connstr('events'),
		'-f', "$ENV{POPUG_ROOT}/replication/subscriber.sql"], 'the subscriber creates its table');
# the order events arrive in, as the subscriber applies them
$sub->safe_psql('events', 'ALTER TABLE popug.event ADD COLUMN received bigint GENERATED ALWAYS AS IDENTITY');
my $pubconn = $pub->connstr . ' dbname=popug';
$sub->safe_psql('events', "CREATE SUBSCRIPTION popug_sub CONNECTION '$pubconn' PUBLICATION popug_events");
$sub->wait_for_subscription_sync($pub, 'popug_sub', 'events');
popug_wait_workers($pub);

$pub->safe_psql('popug', q{
	CREATE ROLE lr_admin; CREATE ROLE lr_w1; CREATE ROLE lr_w2;
	SELECT popug.account_create('lr_admin', 'admin@example.com', 'admin');
	SELECT popug.account_create('lr_w1', 'w1@example.com', 'worker');
	SELECT popug.account_create('lr_w2', 'w2@example.com', 'worker');
});

# work($n): $n tasks created, the workers complete all their open tasks
# (the accounting worker turns them into TransactionApplied events).
sub work
{
	my ($n) = @_;
	$pub->safe_psql('popug', "SET ROLE lr_admin; SELECT popug.task_create('lr ' || i) FROM generate_series(1, $n) i");
	$pub->safe_psql('popug', "SET ROLE $_; SELECT popug.task_complete(id) FROM popug.my_tasks WHERE status = 'open'")
	  for qw(lr_w1 lr_w2);
	return;
}

# probe($h, $label): appends a Probe event labelled $label in session $h.
sub probe
{
	my ($h, $label) = @_;
	$h->query_safe("SELECT popug.event_append('Probe', 1, 'lr', NULL, jsonb_build_object('p', '$label'))");
	return;
}

# probes($round): three sessions append two probes each, their ids
# interleaved (1 2 3 1 2 3), a fourth appends one and rolls back; work
# commits meanwhile; then they commit in the order 3, 1, 2.  Returns the
# labels in commit order.
sub probes
{
	my ($round) = @_;
	my @h = map { $pub->background_psql('popug') } 0 .. 3;
	$_->query_safe('BEGIN') for @h;
	for my $k (1, 2)
	{
		probe($h[$_], "$round.$_.$k") for 0 .. 2;
		work(2);
	}
	probe($h[3], "$round.rolled back");
	$h[3]->query_safe('ROLLBACK');
	my @order;
	for my $i (2, 0, 1)
	{
		$h[$i]->query_safe('COMMIT');
		push @order, "$round.$i.1", "$round.$i.2";
		work(1);
	}
	$_->quit for @h;
	return @order;
}

my @expected = probes(1);

# The subscriber dies and comes back while events commit.
$sub->stop('immediate');
work(5);
push @expected, probes(2);
$sub->start;

# The publisher dies with a transaction open, and comes back.
my $doomed = $pub->background_psql('popug', on_error_stop => 0);
$doomed->query_safe('BEGIN');
probe($doomed, 'crashed');
work(3);
$pub->stop('immediate');
eval { $doomed->quit };
$pub->start;
popug_wait_workers($pub);
push @expected, probes(3);

# A retention rotation: what every consumer has read is dropped on the
# publisher, the clients stream on.  The ids leave the partition they
# fill, as a quarter of the retention would take them.
my $all = "SELECT string_agg(id::text || ':' || event_id, ',' ORDER BY id) FROM popug.event";
popug_outrun($pub, 'popug', 0);
popug_settle($pub);
my $before_drop = $pub->safe_psql('popug', $all);
sleep 2;
like($pub->safe_psql('popug', "SET popug.event_retention = '1s'; SELECT dropped FROM popug.event_maintenance()"),
	qr/^(SET\n)?[1-9]/, 'retention drops events on the publisher');
ok($pub->safe_psql('popug', 'SELECT count(*) FROM popug.event') < scalar(split /,/, $before_drop),
	'fewer events are left there');

# A clean restart of the publisher, a last round.
$pub->restart;
work(5);
push @expected, probes(4);
popug_settle($pub);
$pub->wait_for_catchup('popug_sub');

# ---- the subscriber: every event once, in commit order ----

my %seen;
my $pub_all = join ',', map { $_->[1] } sort { $a->[0] <=> $b->[0] } map { [ (split /:/)[0], $_ ] }
  grep { !$seen{$_}++ } split /,/, $before_drop . ',' . $pub->safe_psql('popug', $all);
ok(scalar(split /,/, $pub_all) > 100, 'the publisher wrote events');
is($sub->safe_psql('events', $all), $pub_all, 'the subscriber has every committed event and nothing else');
is($sub->safe_psql('events', 'SELECT count(*) - count(DISTINCT id) FROM popug.event'), '0', 'none twice');
ok(!$sub->log_contains('duplicate key'), 'no event was delivered twice');
is($sub->safe_psql('events', q{SELECT string_agg(payload->>'p', ',' ORDER BY received) FROM popug.event WHERE event_name = 'Probe'}),
	join(',', @expected), 'the held transactions arrive in commit order; rolled back and crashed ones never');
isnt($pub->safe_psql('popug', q{SELECT string_agg(payload->>'p', ',' ORDER BY id) FROM popug.event WHERE event_name = 'Probe'}),
	join(',', @expected), 'commit order is not id order');
is($sub->safe_psql('events', q{
	SELECT count(*) FROM (SELECT txid FROM popug.event GROUP BY txid
						  HAVING max(received) - min(received) + 1 <> count(*)) t}),
	'0', "each transaction's events arrive together");
ok($sub->safe_psql('events', q{SELECT count(*) FROM popug.event WHERE event_name = 'TransactionApplied'}) > 0,
	"the accounting worker's events among them");

# ---- pg_recvlogical with wal2json: the same events, as JSON ----

my $end = $pub->lsn('insert');
$pub->command_ok(['pg_recvlogical', '-d', $pub->connstr('popug'), '--slot', 'w2j', '--start',
		'--endpos', $end, '--no-loop', '-f', "$tmp/w2j.json",
		'-o', 'format-version=2', '-o', 'actions=insert', '-o', 'add-tables=popug.*'],
	'pg_recvlogical with wal2json');
my (@json, %columns);
for my $line (split /\n/, slurp_file("$tmp/w2j.json"))
{
	my $m = decode_json($line);
	next unless ($m->{action} // '') eq 'I' && $m->{schema} eq 'popug' && $m->{table} =~ /^event/;
	my %c = map { $_->{name} => $_->{value} } @{ $m->{columns} };
	$columns{ join ',', map { $_->{name} } @{ $m->{columns} } } = 1;
	push @json, "$c{id}:$c{event_id}";
}
is(join(',', @json), $sub->safe_psql('events',
		"SELECT string_agg(id::text || ':' || event_id, ',' ORDER BY received) FROM popug.event"),
	'wal2json receives the same events in the same order');
is(join(' ', sort keys %columns), 'id,event_id,event_name,event_version,producer,aggregate_id,occurred_at,payload,txid',
	'with every column');

done_testing();
