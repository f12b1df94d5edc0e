# The launcher (SPEC 8): popug's workers serve popug.database, created in
# any order with the extension; while it does not exist they wait quietly
# (one LOG line, no FATAL restart loop); a stopped worker is started again;
# DROP DATABASE ... WITH (FORCE) sends them back to waiting; a restarted
# launcher never runs two of a worker.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PopugTest;

my $node = popug_node('launcher', conf => "popug.database = 'later'\n");
$node->start;

# count(*) of popug's processes by backend_type, as "type:n,..."
sub processes
{
	return $node->safe_psql('postgres', q{
		SELECT string_agg(backend_type || ':' || n, ',' ORDER BY backend_type)
		FROM (SELECT backend_type, count(*) AS n FROM pg_stat_activity
		      WHERE backend_type LIKE 'popug %' GROUP BY 1) p});
}

sub log_count
{
	my ($re, $from) = @_;
	my $log = slurp_file($node->logfile, $from);
	my @m = $log =~ /$re/g;
	return scalar @m;
}

# 1. no database: the launcher alone, waiting quietly through several polls
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'popug launcher'")
  or die 'no launcher';
sleep 12;
is(processes(), 'popug launcher:1', 'only the launcher runs while popug.database does not exist');
is(log_count(qr/database "later" does not exist/), 0, 'no worker ended FATAL on the missing database');
is(log_count(qr/popug workers wait for database "later"/), 1,
	'the wait is logged once');

# 2. the extension elsewhere shows the workers waiting for their database
$node->safe_psql('postgres', 'CREATE EXTENSION popug');
is($node->safe_psql('postgres',
		q{SELECT string_agg(worker || '=' || state || '/' || (pid IS NULL), ',' ORDER BY worker) FROM popug.worker_status}),
	join(',', map { "$_=waiting for database \"later\"/true" } qw(accounting mailer notifier scheduler)),
	'worker_status in another database says what the workers wait for');

# 3. the database, then its extension: the workers serve it
$node->safe_psql('postgres', 'CREATE DATABASE later');
$node->poll_query_until('postgres',
	"SELECT count(*) = 4 FROM pg_stat_activity WHERE backend_type LIKE 'popug %' AND backend_type <> 'popug launcher' AND datname = 'later'")
  or die 'workers did not start on the new database';
$node->safe_psql('later', 'CREATE EXTENSION popug');
popug_wait_workers($node, 'later');
$node->safe_psql('later', q{
	SELECT popug.account_create('postgres', 'admin@example.com', 'admin');
	CREATE ROLE w1 LOGIN;
	SELECT popug.account_create('w1', 'w1@example.com', 'worker');
	SELECT popug.task_create('launched');
});
ok($node->poll_query_until('later',
		"SELECT amount < 0 FROM popug.balance b JOIN popug.account a ON a.id = b.account_id WHERE a.login = 'w1'"),
	'the accounting worker applies the new database\'s events');

# 4. a stopped worker is started again, alone
my $pid = $node->safe_psql('later', "SELECT pid FROM popug.worker_status WHERE worker = 'accounting'");
$node->safe_psql('later', "SELECT pg_terminate_backend($pid)");
ok($node->poll_query_until('later',
		"SELECT pid IS NOT NULL AND pid <> $pid FROM popug.worker_status WHERE worker = 'accounting'"),
	'a terminated worker is started again');
is(processes(), 'popug accounting:1,popug launcher:1,popug mailer:1,popug notifier:1,popug scheduler:1',
	'one process of each');

# 5. DROP DATABASE ... WITH (FORCE) ends the workers; they wait again
my $from = -s $node->logfile;
$node->safe_psql('postgres', 'DROP DATABASE later WITH (FORCE)');
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type LIKE 'popug %' AND backend_type <> 'popug launcher'")
  or die 'workers still run';
sleep 12;
is(processes(), 'popug launcher:1', 'after DROP DATABASE only the launcher runs');
is(log_count(qr/database "later" does not exist/, $from), 0, 'no worker restarted into the dropped database');
is(log_count(qr/popug workers wait for database "later"/, $from), 1,
	'the wait is logged once again');

# 6. the database back: the workers serve it again
popug_create($node, 'later');
popug_wait_workers($node, 'later');
pass('the workers serve the database created again');

# 7. a terminated launcher stops its workers; the postmaster restarts it and
# it starts one of each again
my $launcher = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'popug launcher'");
my %old = map { $_ => 1 } split /\n/, $node->safe_psql('later',
	'SELECT pid FROM popug.worker_status');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($launcher)");
ok($node->poll_query_until('later',
		q{SELECT count(*) = 4 FROM popug.worker_status WHERE pid IS NOT NULL AND state <> 'starting'}
		  . ' AND pid NOT IN (' . join(',', keys %old) . ')'),
	'a new launcher starts new workers');
is(processes(), 'popug accounting:1,popug launcher:1,popug mailer:1,popug notifier:1,popug scheduler:1',
	'never two of a worker');
is(log_count(qr/PANIC|was terminated by signal|database "later" does not exist/), 0, "no crash and no missing database in the log");

$node->stop;
done_testing();
