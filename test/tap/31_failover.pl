# Failover with a synchronous standby (SPEC 10): 100,000 accounts are
# being paid out in batches of 1,000 while another session creates and
# completes tasks and the workers apply them; the primary is killed
# (immediate stop) half-way, the standby promoted, the payout run again
# there.  Nothing a client saw committed is lost, each account is paid once
# for the day, and the invariants of SPEC 4 hold.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PopugTest;

my $N = 100_000;
my $BATCH = 1000;

my $primary = popug_node('primary', init => { allows_streaming => 1 }, conf => <<'EOC');
shared_buffers = 128MB
max_wal_size = 1GB
max_connections = 40
log_statement = none
synchronous_commit = on
popug.payout_at = ''
EOC
$primary->start;
popug_create($primary);
$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->append_conf('postgresql.conf',
	"primary_conninfo = '" . $primary->connstr . " application_name=sync_standby'");
$standby->start;
# Only the primary waits for a synchronous standby: a promoted standby
# that kept this setting would wait for one that does not exist.
$primary->append_conf('postgresql.conf', "synchronous_standby_names = 'sync_standby'");
$primary->reload;
ok( $primary->poll_query_until('postgres',
		"SELECT sync_state = 'sync' FROM pg_stat_replication"
		  . " WHERE application_name = 'sync_standby'"),
	'the standby is synchronous');

# ---- accounts: a few through the API, 100,000 workers in bulk ----

my @roles = qw(fo_admin fo_manager fo_accountant fo_w1 fo_w2 fo_w3);
$primary->safe_psql('popug', join '', map { "CREATE ROLE $_ LOGIN;\n" } @roles);
$primary->safe_psql('popug', <<'SQL');
SELECT popug.account_create('fo_admin', 'admin@example.com', 'admin');
SET ROLE fo_admin;
SELECT popug.account_create('fo_manager', 'manager@example.com', 'manager');
SELECT popug.account_create('fo_accountant', 'accountant@example.com', 'accountant');
SELECT popug.account_create('fo_w' || i, 'w' || i || '@example.com', 'worker')
  FROM generate_series(1, 3) i;
SQL
my $day = $primary->safe_psql('popug', "SELECT (now() AT TIME ZONE 'UTC')::date - 1");

# As test/integration/50_payout_crash.py does: one payment each on $day,
# 70% earn, 20% owe, 10% net zero, and balances that are their sums.  They
# are not in the worker pool: tasks go to the API workers.
$primary->safe_psql('popug', <<"SQL");
INSERT INTO popug.account (login, email, role)
SELECT 'fo_' || i, 'fo' || i || '\@example.com', 'worker' FROM generate_series(1, $N) i;
WITH a AS (SELECT id, row_number() OVER (ORDER BY login) AS i FROM popug.account WHERE login LIKE 'fo\\_%'),
	 p AS (SELECT id, CASE WHEN i % 10 < 7 THEN (i % 50) + 1.25 ELSE 0 END AS credit,
					  CASE WHEN i % 10 IN (7, 8) THEN (i % 30) + 0.5 ELSE 0 END AS debit FROM a),
	 ins AS (INSERT INTO popug.payment (id, account_id, kind, debit, credit, description, occurred_at, billing_day)
			 SELECT gen_random_uuid(), id, 'complete_reward', debit, credit, 'failover test', now(), '$day' FROM p)
INSERT INTO popug.balance (account_id, amount) SELECT id, credit - debit FROM p;
VACUUM ANALYZE popug.account, popug.balance, popug.payment;
SQL
my $owed_sql = "SELECT count(*) || ' ' || sum(s) FROM (SELECT account_id, sum(credit - debit) AS s"
  . " FROM popug.payment WHERE billing_day <= '$day' GROUP BY 1) x WHERE s > 0";
my $owed = $primary->safe_psql('popug', $owed_sql);
my ($owed_n) = split / /, $owed;
note("$N accounts, owed for $day: $owed");

# ---- a client creating and completing tasks, and the payout ----

# time_since($t): seconds since time() was $t.
sub time_since { my ($t) = @_; return time - $t }

# Each round: the manager creates a task, one worker completes one of its
# open tasks.  psql prints a row only once its statement has committed
# (and so, with synchronous_commit = on, reached the standby).
my $rounds = join '', map {
	my $w = 'fo_w' . (1 + $_ % 3);
	"SET ROLE fo_manager;\nSELECT 'created ' || popug.task_create('Failover task $_');\n"
	  . "SET ROLE $w;\nSELECT 'completed ' || t.id FROM (SELECT id FROM popug.my_tasks"
	  . " WHERE status = 'open' ORDER BY id LIMIT 1) t, LATERAL (SELECT popug.task_complete(t.id)) c;\n"
} 1 .. 40000;
my $dir = PostgreSQL::Test::Utils::tempdir;
append_to_file("$dir/tasks.sql", $rounds);
my $tasks = IPC::Run::start(
	[ 'psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-d', $primary->connstr('popug'),
	  '-f', "$dir/tasks.sql" ],
	'<', \undef, '>', "$dir/tasks.out", '2>', "$dir/tasks.err");
ok($primary->poll_query_until('popug', 'SELECT count(*) >= 20 FROM popug.task'),
	'the task client is at work');
my $tasks_before_payout = $primary->safe_psql('popug', 'SELECT count(*) FROM popug.task');

my $payout_started = time;
my $payout = IPC::Run::start(
	[ 'psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-d', $primary->connstr('popug'),
	  '-c', "SET popug.payout_batch_size = $BATCH", '-c', 'SET ROLE fo_accountant',
	  '-c', "CALL popug.payout_run('$day')" ],
	'<', \undef, '>', "$dir/payout.out", '2>', "$dir/payout.err");

# Half-way through the payout (billing_day.accounts_paid moves with each
# batch) the standby stops receiving WAL for a second, as a lagging or cut
# off standby does: commits wait for it, so nothing the clients see as
# committed is missing from it (an asynchronous standby would lose that
# second's work).  Then what the primary shows as committed, and the crash.
$primary->safe_psql('popug', <<"SQL");
DO \$\$BEGIN
	FOR i IN 1 .. 6000 LOOP
		EXIT WHEN (SELECT accounts_paid FROM popug.billing_day WHERE day = '$day') >= $owed_n / 2;
		PERFORM pg_sleep(0.02);
	END LOOP;
END\$\$;
SQL
my $walreceiver = $standby->safe_psql('postgres', 'SELECT pid FROM pg_stat_wal_receiver');
like($walreceiver, qr/^[0-9]+$/, 'the standby is receiving WAL');
kill 'STOP', $walreceiver;
sleep 1;
my $seen = $primary->safe_psql('popug', <<"SQL");
SELECT (SELECT count(*) FROM popug.payout WHERE billing_day = '$day')
	|| ' ' || (SELECT count(*) FROM popug.event) || ' ' || (SELECT max(id) FROM popug.event)
	|| ' ' || (SELECT count(*) FROM popug.payment);
SQL
$primary->stop('immediate');
kill 'CONT', $walreceiver;
note('killed ' . time_since($payout_started) . ' s into the payout');
my ($seen_paid, $seen_events, $seen_max_event, $seen_payments) = split / /, $seen;
note("seen before the kill: $seen_paid paid, $seen_events events (max id $seen_max_event), "
	  . "$seen_payments payments");
ok($seen_paid > 0 && $seen_paid < $owed_n, "the primary was killed half-way through the payout ($seen_paid of $owed_n paid)");

isnt($payout->finish ? 0 : $payout->result, 0, 'the payout was cut short')
  or diag(slurp_file("$dir/payout.err"));
$tasks->finish;
my $tasks_out = slurp_file("$dir/tasks.out");
my $tasks_err = slurp_file("$dir/tasks.err");
my @created = $tasks_out =~ /^created (\S+)$/mg;
my @completed = $tasks_out =~ /^completed (\S+)$/mg;
note(scalar(@created) . ' tasks created and ' . scalar(@completed) . ' completed by the client');
like($tasks_err, qr/terminat|server closed the connection|connection to server was lost/,
	'the task client ran until the kill')
  or diag($tasks_err);
ok(@created > $tasks_before_payout, 'and created tasks during the payout');

# ---- promotion ----

$standby->promote;
ok($standby->poll_query_until('popug', 'SELECT NOT pg_is_in_recovery()'), 'the standby is promoted');

# nq($sql): the output of $sql on the new primary.
sub nq { my ($sql) = @_; return $standby->safe_psql('popug', $sql) }

# in_list(@ids): the ids as a SQL list of uuids (NULL for none).
sub in_list { return @_ ? join ',', map { "'$_'" } @_ : 'NULL' }

my $paid_kept = nq("SELECT count(*) FROM popug.payout WHERE billing_day = '$day'");
ok($paid_kept >= $seen_paid && $paid_kept < $owed_n,
	"every payout seen committed is on the new primary ($paid_kept >= $seen_paid), the day still open");
is(nq("SELECT count(*) FROM popug.event WHERE id <= $seen_max_event") >= $seen_events ? 1 : 0, 1,
	'every event seen committed is on the new primary');
ok(nq('SELECT count(*) FROM popug.payment') >= $seen_payments,
	'and every payment seen committed');
is(nq('SELECT count(*) FROM popug.task WHERE id IN (' . in_list(@created) . ')'),
	scalar @created, 'every task the client saw created is on the new primary');
is(nq("SELECT count(*) FROM popug.task WHERE status = 'done' AND id IN (" . in_list(@completed) . ')'),
	scalar @completed, 'every task the client saw completed is done on the new primary');

ok($standby->poll_query_until('popug', 'SELECT count(pid) = 4 FROM popug.worker_status'),
	'the workers run on the new primary');
my $t = time;
$standby->safe_psql('popug', "SET popug.payout_batch_size = $BATCH; SET ROLE fo_accountant;"
	  . " CALL popug.payout_run('$day')");
note('the rerun took ' . time_since($t) . ' s');
ok( $standby->poll_query_until('popug',
		"SELECT pending = 0 FROM popug.consumer_lag WHERE consumer = 'accounting'"),
	'the accounting worker caught up with every event');
note('accounting caught up after ' . time_since($t) . ' s');
ok( $standby->poll_query_until('popug',
		"SELECT pending = 0 FROM popug.consumer_lag WHERE consumer = 'mailer'"),
	'and the mailer');
note('the mailer caught up after ' . time_since($t) . ' s');

# ---- each account paid once for the day ----

is(nq("SELECT closed_at IS NOT NULL FROM popug.billing_day WHERE day = '$day'"), 't',
	"the rerun closed $day");
is(nq("SELECT count(*) || ' ' || sum(amount) FROM popug.payout WHERE billing_day = '$day'"), $owed,
	'every account owed was paid its amount, nobody else');
is(nq("SELECT accounts_paid || ' ' || total_paid FROM popug.billing_day WHERE day = '$day'"), $owed,
	'billing_day records the same totals');
is( nq(  "SELECT count(*) FROM popug.payout o FULL JOIN (SELECT * FROM popug.payment"
		  . " WHERE kind = 'payout' AND billing_day = '$day') p"
		  . " ON p.account_id = o.account_id AND p.debit = o.amount"
		  . " WHERE o.billing_day = '$day' AND p.id IS NULL OR o.account_id IS NULL"),
	'0', 'each payout row has its one payout payment of the same amount, and no payment is without one');
is( nq(  "SELECT count(*) FROM (SELECT account_id FROM popug.payment WHERE kind = 'payout'"
		  . " GROUP BY account_id, billing_day HAVING count(*) > 1) x"),
	'0', 'no account has two payout payments for a day');
is( nq(  "SELECT count(*) || ' ' || count(DISTINCT aggregate_id) FROM popug.event"
		  . " WHERE event_name = 'PayoutMade' AND payload->>'billing_day' = '$day'"),
	"$owed_n $owed_n", 'one PayoutMade event per account paid');
is( nq(  "SELECT count(*) || ' ' || count(DISTINCT account_id) FROM popug.mail"
		  . " WHERE subject = 'popug payout for $day'"),
	"$owed_n $owed_n", 'one payout mail per account paid');

# ---- SPEC 4's invariants ----

is( nq(  "SELECT count(*) FROM popug.balance b FULL JOIN (SELECT account_id, sum(credit - debit) AS s"
		  . " FROM popug.payment GROUP BY 1) p ON p.account_id = b.account_id"
		  . " WHERE b.amount IS DISTINCT FROM p.s AND NOT (p.s IS NULL AND b.amount = 0)"),
	'0', 'each balance equals the sum of credit - debit of its payments');
is(nq('SELECT count(*) - count(DISTINCT id) FROM popug.payment'), '0', 'no payment id twice');
is( nq(  "SELECT count(*) FROM (SELECT event_id, kind, account_id FROM popug.payment"
		  . " WHERE event_id IS NOT NULL GROUP BY 1, 2, 3 HAVING count(*) > 1) x"),
	'0', 'no event applied twice');
is( nq(  "SELECT count(*) FROM (SELECT p.account_id FROM popug.payment p"
		  . " JOIN popug.billing_day d ON p.billing_day <= d.day WHERE d.closed_at IS NOT NULL"
		  . " GROUP BY p.account_id, d.day HAVING sum(credit - debit) > 0) x"),
	'0', 'for every closed day D, each account\'s payments up to D sum to zero or less');
is( nq(  "SELECT count(*) FROM popug.event e LEFT JOIN (SELECT event_id, count(*) AS n"
		  . " FROM popug.payment WHERE event_id IS NOT NULL GROUP BY 1) p ON p.event_id = e.event_id"
		  . " WHERE e.event_name IN ('TaskAssigned', 'TaskCompleted') AND p.n IS DISTINCT FROM 1"),
	'0', 'every task event, from before the kill and after, was applied exactly once');
is(nq('SELECT count(*) FROM popug.dead_letter'), '0', 'and none was set aside');
is( nq(  "SELECT count(*) FROM popug.payment WHERE kind = 'complete_reward'"
		  . ' AND task_id IN (' . in_list(@completed) . ')'),
	scalar @completed, 'each task the client completed was credited once');

done_testing();
