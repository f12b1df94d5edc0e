# Event log retention (SPEC 11): popug.event's partitions are made ahead and
# dropped whole once their events are older than popug.event_retention and
# every consumer has acknowledged them.  A transaction holding an event in
# a partition stays open while later ids fill the next one and other
# consumers read past it; it commits last.  No consumer skips or repeats an
# event across the rotation boundary; a partition is kept while a consumer
# lags or the open transaction's event is unread; a dead letter is replayed
# from its own copy after its event is gone; a consumer created from the
# start reads what is kept; and the scheduler worker drops partitions by
# itself.  No partition is attached under an open transaction that wrote
# events, whose later events past the partitions are then accepted.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PopugTest;

my $node = popug_node('r');
$node->start;
popug_create($node);
popug_wait_workers($node);
$node->safe_psql('popug', q{
	CREATE ROLE r_admin;
	SELECT popug.account_create('r_admin', 'admin@example.com', 'admin');
	SET ROLE r_admin;
	SELECT popug.consumer_create('ext');
	SELECT popug.consumer_create('lag');
});

my $setup_max = $node->safe_psql('popug', 'SELECT max(id) FROM popug.event');

# sql($sql): runs $sql, returns its output without the tags of SETs.
sub sql
{
	my $out = $node->safe_psql('popug', shift);
	$out =~ s/^(SET\n)+//;
	return $out;
}

# maint(): one maintenance run with a retention of a second; how many it
# dropped.  (The scheduler worker runs it too, with the default retention,
# so it may have made a partition first; it drops nothing.)
sub maint
{
	return sql("SET popug.event_retention = '1s'; SET ROLE r_admin; SELECT dropped FROM popug.event_maintenance()");
}

# append($n, $tag): $n Probe events in one transaction.
sub append
{
	my ($n, $tag) = @_;
	$node->safe_psql('popug', "SELECT count(popug.event_append('Probe', 1, 'r', NULL, jsonb_build_object('tag', '$tag', 'i', i)))"
		  . " FROM generate_series(1, $n) i");
	return;
}

# drain($consumer): reads and acknowledges everything it has pending; the ids.
sub drain
{
	my ($consumer) = @_;
	my @ids;
	for (;;)
	{
		my $batch = sql("SET ROLE r_admin; SELECT string_agg(id::text, ',' ORDER BY id) FROM popug.events_read('$consumer', 5000)");
		last if $batch eq '';
		push @ids, split /,/, $batch;
		$node->safe_psql('popug', "SET ROLE r_admin; SELECT popug.events_ack('$consumer')");
	}
	return @ids;
}

# partitions(): popug.event's partitions but event_default, by lower bound.
sub partitions
{
	return split /\n/, $node->safe_psql('popug', q{
		SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		 WHERE i.inhparent = 'popug.event'::regclass AND c.relname <> 'event_default'
		 ORDER BY substr(c.relname, 7)::bigint});
}

maint();
my ($p1) = partitions();
ok(defined $p1, 'a partition is made ahead of the ids');
my $p1_lo = substr($p1, 6);

# An event for an account nobody knows: a dead letter of accounting.
my $ghost = $node->safe_psql('popug', 'SELECT gen_random_uuid()');
my $ghost_id = sql(qq{SELECT popug.event_append('TaskAssigned', 1, 'import', NULL,
	jsonb_build_object('task_id', gen_random_uuid(), 'assignee_id', '$ghost'::uuid, 'assign_fee', 10, 'reason', 'create'))});
my $ghost_event = sql("SELECT event_id FROM popug.event WHERE id = $ghost_id");
append(2000, 'before');
is(sql("SELECT count(*) FILTER (WHERE tableoid <> 'popug.$p1'::regclass) || ' ' || (count(*) > 0) FROM popug.event WHERE id >= $p1_lo"),
	'0 true', 'the ids it covers land in it');

append(4500, 'fill');
maint();

# T1 writes an event in the first partition and stays open while later
# ids fill it and the next one, and consumers read past it.
my $t1 = $node->background_psql('popug');
$t1->query_safe('BEGIN');
my $held = $t1->query_safe("SELECT popug.event_append('Probe', 1, 'r', NULL, '{\"tag\": \"held\"}')");
chomp $held;
ok($held >= $p1_lo && $held < $p1_lo + 10000, 'the held event is in the first partition');
append(8000, 'past');
my @parts = partitions();
is(scalar(@parts), 2, 'the first partition half used, the next one was made');
ok($node->safe_psql('popug', "SELECT count(*) > 0 FROM popug.$parts[1]"), 'ids have moved on to the second partition');

my @ext = drain('ext');
ok(!grep({ $_ == $held } @ext), 'ext read past the open transaction');
# every event since ext was created but the held one, before anything is dropped
my $all = sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM popug.event WHERE id > $setup_max");
popug_settle($node);
sleep 2;
is(maint(), '0', 'nothing is dropped: lag has read nothing');
drain('lag');
popug_settle($node);
sleep 2;
is(maint(), '0', 'once every consumer has read the rest, still nothing is dropped');
is(sql('SELECT count(*) FROM popug.event_default'), '0', 'event_default, which held the events before the first partition, is empty');
ok((grep { $_ eq $p1 } partitions()), 'the first partition is kept while the held event is unread, though all the rest of it is read');

$t1->query_safe('COMMIT');
$t1->quit;
my @late = drain('ext');
is(join(',', @late), $held, 'the held event reaches ext after the rotation, alone');
push @ext, @late;
is(join(',', sort { $a <=> $b } @ext), join(',', sort { $a <=> $b } split(/,/, $all), $held),
	'ext read every event exactly once');
my @lag = drain('lag');
ok((grep { $_ == $held } @lag), 'lag gets it too');

# Every consumer has everything; the first partition and event_default go.
$node->poll_query_until('popug', "SELECT count(*) = 1 FROM popug.dead_letter WHERE event_id = '$ghost_event'")
  or die 'the ghost event did not become a dead letter';
popug_settle($node);
sleep 2;
is(maint(), '1', 'now the first partition goes');
ok(!(grep { $_ eq $p1 } partitions()), 'the first partition is dropped');
is($node->safe_psql('popug', "SELECT count(*) FROM popug.event WHERE id <= $held"), '0', 'no event up to the held one is left');
is($node->safe_psql('popug', "SELECT count(*) FROM popug.event"),
	$node->safe_psql('popug', "SELECT count(*) FROM popug.$parts[1]"), 'the second partition holds the rest');
is(sql("SET ROLE r_admin; SELECT string_agg(consumer || ' ' || pending, ',' ORDER BY consumer) FROM popug.consumer_lag"),
	'accounting 0,ext 0,lag 0,mailer 0', 'consumer_lag: nothing pending');

# A dead letter is replayed from its own copy.
is($node->safe_psql('popug', "SELECT count(*) FROM popug.event WHERE event_id = '$ghost_event'"), '0', 'the dead letter\'s event is gone');
$node->safe_psql('popug', "INSERT INTO popug.account (id, login, email, role) VALUES ('$ghost', 'r_ghost', 'ghost\@example.com', 'worker')");
is(sql("SET ROLE r_admin; SELECT popug.dead_letter_retry('$ghost_event')"), '1',
	'the dead letter is replayed after its event is gone');
is($node->safe_psql('popug', "SELECT debit FROM popug.payment WHERE account_id = '$ghost'"), '10.00', 'and charges the fee');

# A consumer from the start reads what is kept.
$node->safe_psql('popug', "SET ROLE r_admin; SELECT popug.consumer_create('fresh', true)");
my @fresh = drain('fresh');
is(join(',', @fresh), $node->safe_psql('popug', "SELECT string_agg(id::text, ',' ORDER BY id) FROM popug.event"),
	'a consumer created from the start reads every event kept');

# The scheduler worker maintains by itself: the second partition goes once
# ids have left it and everyone has read it.  It was sized for two minutes
# of this test's rate; the ids jump past it, as two minutes of work would
# take them.
my $p2_hi = sql("SELECT (regexp_match(pg_get_expr(relpartbound, oid), 'TO \\(''?([0-9]+)'))[1] FROM pg_class WHERE relname = '$parts[1]'");
sql("SELECT setval('popug.event_id_seq', $p2_hi + 10)");
append(100, 'more');
drain($_) for qw(ext lag fresh);
popug_settle($node);
$node->safe_psql('popug', "ALTER SYSTEM SET popug.event_retention = '1s'; SELECT pg_reload_conf()");
ok($node->poll_query_until('popug', "SELECT to_regclass('popug.$parts[1]') IS NULL"),
	'the scheduler worker drops the second partition by itself');
ok(scalar(partitions()) >= 1, 'and keeps a partition ahead');

# A transaction that has written events stays open while the ids outrun
# the partitions, and goes on writing events past their end.  The next
# partition is not attached under it (its later events would find a
# partition it does not know of, and fail): the maintenance leaves it for
# a run after the transaction ends.
$node->safe_psql('popug', "ALTER SYSTEM RESET popug.event_retention; SELECT pg_reload_conf()");
my $last = (partitions())[-1];
my $top = sql("SELECT (regexp_match(pg_get_expr(relpartbound, oid), 'TO \\(''?([0-9]+)'))[1] FROM pg_class WHERE relname = '$last'");
sql("SELECT setval('popug.event_id_seq', $top - 10)");
my $t2 = $node->background_psql('popug');
$t2->query_safe('BEGIN');
$t2->query_safe("SELECT popug.event_append('Probe', 1, 'r', NULL, '{\"tag\": \"open\"}')");
sql("SELECT setval('popug.event_id_seq', $top + 10)");
is(sql("SET ROLE r_admin; SELECT created FROM popug.event_maintenance()"), '0',
	'no partition is attached while a transaction that wrote events is open');
# ids drawn elsewhere meanwhile, past where that partition would have begun
sql("SELECT setval('popug.event_id_seq', $top + 5000)");
$t2->query("SELECT popug.event_append('Probe', 1, 'r', NULL, '{\"tag\": \"open\"}')");
is($t2->{stderr}, '', 'its later event past the partitions is accepted');
$t2->query_safe('COMMIT');
$t2->quit;
is(sql(q{SELECT count(*) FROM popug.event WHERE payload->>'tag' = 'open'}), '2', 'both its events are kept');
sql("SET ROLE r_admin; SELECT popug.event_maintenance()");
is(sql("SELECT count(*) FROM popug.event e WHERE e.tableoid = 'popug.$last'::regclass AND payload->>'tag' = 'open'"), '1',
	'its first event is in the last partition');
ok((grep { substr($_, 6) > $top } partitions()),
	'once it has ended, the next partition is made');

# A quiet database: a few events in a partition they would take days to
# fill.  Once the oldest of them has been there for the period (a quarter
# of the retention, two minutes at least; here they are made an hour old,
# as on a database quiet for an hour), the ids move on to a partition
# ahead, and the next run drops theirs.
maint();
is(sql(q{SELECT count(*) FROM popug.event_default WHERE payload->>'tag' = 'open'}), '1',
	'event_default holds the event written when the ids had outrun the partitions');
append(3, 'quiet');
drain($_) for qw(ext lag fresh);
popug_settle($node);
my $quiet = sql(q{SELECT DISTINCT tableoid::regclass FROM popug.event WHERE payload->>'tag' = 'quiet'});
like($quiet, qr/^popug\.event_[0-9]+$/, 'quiet events are in a partition');
sleep 2;
maint();
maint();
is(sql(q{SELECT count(*) FROM popug.event WHERE payload->>'tag' = 'quiet'}), '3',
	'it keeps them while they are younger than the period');
sql(q{UPDATE popug.event SET occurred_at = occurred_at - interval '1 hour' WHERE payload->>'tag' = 'quiet'});
maint();
append(1, 'after quiet');
isnt(sql(q{SELECT tableoid::regclass FROM popug.event WHERE payload->>'tag' = 'after quiet'}), $quiet,
	'then the ids move on to the next partition');
drain($_) for qw(ext lag fresh);
popug_settle($node);
sleep 2;
maint();
is(sql(q{SELECT count(*) FROM popug.event WHERE payload->>'tag' = 'quiet'}), '0', 'and the next run drops the quiet events');
is(sql("SELECT to_regclass('$quiet')"), '', 'with their partition');
is(sql('SELECT count(*) FROM popug.event_default'), '0', 'event_default is emptied on the same terms');

# The last event goes the same way; popug.metrics still counts the ids
# handed out.
my $last_id = sql('SELECT max(id) FROM popug.event');
sql(q{UPDATE popug.event SET occurred_at = occurred_at - interval '1 hour'});
maint();
drain($_) for qw(ext lag fresh);
popug_settle($node);
sleep 2;
maint();
is(sql('SELECT count(*) FROM popug.event'), '0', 'a database quiet for longer than the retention keeps no event');
cmp_ok(sql('SET ROLE r_admin; SELECT events_total FROM popug.metrics'), '>=', $last_id,
	'popug.metrics still counts every event id handed out');

done_testing();
