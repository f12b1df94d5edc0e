# Hot standby (SPEC 10): a primary with popug and its workers, and a
# streaming standby.  On the standby every reading function, view and psql
# report gives each role what it gives on the primary (the same rows, the
# same refusals); every writing function fails with PostgreSQL's read-only
# error, 25006; the workers stay out of the way during recovery.  After
# promotion the same writes succeed and the workers serve the new primary.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PopugTest;

my $primary = popug_node('primary', init => { allows_streaming => 1 },
	conf => "shared_buffers = 32MB\nmax_connections = 40\n");
$primary->start;
popug_create($primary);
$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->start;

# ---- fill the primary through the API, the standby streaming it ----

my @roles = qw(sb_admin sb_manager sb_accountant sb_worker1 sb_worker2
  sb_worker3 sb_spare sb_late sb_gone sb_nobody);
$primary->safe_psql('popug', join '', map { "CREATE ROLE $_ LOGIN;\n" } @roles);

# as($role, $sql): runs $sql on the primary as $role (SET ROLE), returns
# its output.
sub as
{
	my ($role, $sql) = @_;
	return $primary->safe_psql('popug', "SET ROLE $role;\n$sql");
}

$primary->safe_psql('popug',
	"SELECT popug.account_create('sb_admin', 'admin\@example.com', 'admin')");
as('sb_admin', <<'SQL');
SELECT popug.account_create('sb_manager', 'manager@example.com', 'manager', 'Manny');
SELECT popug.account_create('sb_accountant', 'accountant@example.com', 'accountant');
SELECT popug.account_create('sb_worker1', 'w1@example.com', 'worker');
SELECT popug.account_create('sb_worker2', 'w2@example.com', 'worker');
SELECT popug.account_create('sb_worker3', 'w3@example.com', 'manager');
SELECT popug.account_set_role(id, 'worker') FROM popug.accounts WHERE login = 'sb_worker3';
SELECT popug.account_create('sb_spare', 'spare@example.com', 'worker');
SELECT popug.account_create('sb_gone', 'gone@example.com', 'worker');
SELECT popug.account_deactivate(id) FROM popug.accounts WHERE login = 'sb_gone';
SQL
# Two tasks charged twice (created, shuffled), ten charged once; workers 1
# to 3 complete all of theirs, sb_spare none: the payout pays some workers
# and leaves sb_spare in debt.
sub tasks { my ($from, $to) = @_;
	return join '', map { "SELECT popug.task_create('Task $_', 'standby test', 'SB-$_');\n" } $from .. $to }
as('sb_manager', tasks(1, 2));
as('sb_admin', 'SELECT popug.tasks_shuffle()');
as('sb_manager', tasks(3, 12));

# until_open($worker, $from): tasks from number $from on until $worker has
# an open one (assignees are random).
sub until_open
{
	my ($worker, $from) = @_;
	for my $i ($from .. $from + 99)
	{
		return if as($worker, "SELECT count(*) FROM popug.my_tasks WHERE status = 'open'") > 0;
		as('sb_manager', tasks($i, $i));
	}
	die "$worker got no task";
}
until_open('sb_spare', 100);

# complete($keep, @workers): each worker completes its open tasks but $keep.
sub complete
{
	my ($keep, @workers) = @_;
	as($_, "SELECT popug.task_complete(id) FROM (SELECT id FROM popug.my_tasks"
		  . " WHERE status = 'open' ORDER BY id OFFSET $keep) t") for @workers;
	return;
}
complete(0, qw(sb_worker1 sb_worker2 sb_worker3));
as('sb_accountant', 'SELECT popug.payments_apply()');
as('sb_accountant', 'CALL popug.payout_run(current_date)');
# after the payout: payments that count on the next day, and sb_worker1
# keeps an open task to complete later
as('sb_manager', tasks(13, 14));
until_open('sb_worker1', 200);
complete(1, qw(sb_worker1 sb_worker2 sb_worker3));
as('sb_admin', "SELECT popug.consumer_create('sb_feed', true)");
as('sb_admin', "SELECT count(*) FROM popug.events_read('sb_feed', 5)");
# an event accounting cannot take, so that there is a dead letter
$primary->safe_psql('popug',
	"SELECT popug.event_append('TaskCompleted', 9, 'test', NULL, '{}')");
as('sb_accountant', 'SELECT popug.payments_apply()');

# Quiet: the workers have consumed everything (the mailer has queued the
# payout mail; no SMTP server is set, so it stays pending).
ok( $primary->poll_query_until('popug',
		"SELECT count(*) = 0 FROM popug.consumer_lag"
		  . " WHERE consumer IN ('accounting', 'mailer') AND pending > 0"),
	'the primary\'s workers consumed every event');
my $dead_event = $primary->safe_psql('popug',
	"SELECT event_id FROM popug.dead_letter WHERE consumer = 'accounting'");
isnt($dead_event, '', 'the unsupported event is a dead letter');
my %count = map { $_ => $primary->safe_psql('popug', "SELECT count(*) FROM popug.$_") }
  qw(account task payment payout mail billing_day dead_letter);
note(join ', ', map { "$_ $count{$_}" } sort keys %count);
ok($count{payout} > 0 && $count{mail} == $count{payout}, 'a day was paid out, its mail queued');
ok( $primary->safe_psql('popug', 'SELECT negative_workers > 0 FROM popug.billing_day') eq 't',
	'and a worker was left in debt');
$primary->wait_for_catchup($standby, 'replay');
is($standby->safe_psql('popug', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');

# ---- reading: the same answers on both nodes ----

# run_labelled($node, $user, [label, sql], ...): runs each statement in one
# psql session connected as $user; returns {label => "SQLSTATE" + rows}.
sub run_labelled
{
	my ($node, $user, @cases) = @_;
	my $script = join '', map { "$_->[1];\n\\echo '\@\@' $_->[0] :SQLSTATE\n" } @cases;
	my ($out, $err) = ('', '');
	$node->psql('popug', $script, on_error_stop => 0, stdout => \$out,
		stderr => \$err, connstr => $node->connstr('popug') . " user=$user");
	my (%res, @rows);
	for my $line (split /\n/, $out)
	{
		if ($line =~ /^\@\@ (\S+) (\S+)$/)
		{
			$res{$1} = { sqlstate => $2, rows => [@rows] };
			@rows = ();
		}
		else
		{
			push @rows, $line;
		}
	}
	return \%res;
}

my @reads = (
	[ whoami => 'SELECT * FROM popug.whoami()' ],
	[ my_tasks => 'SELECT * FROM popug.my_tasks ORDER BY id' ],
	[ tasks => 'SELECT * FROM popug.tasks ORDER BY id' ],
	[ my_balance => 'SELECT * FROM popug.my_balance' ],
	[ my_audit_log => 'SELECT * FROM popug.my_audit_log' ],
	[ audit_log => 'SELECT * FROM popug.audit_log ORDER BY id' ],
	[ accounts => 'SELECT * FROM popug.accounts ORDER BY id' ],
	[ mails => 'SELECT * FROM popug.mails ORDER BY id' ],
	[ dead_letters => 'SELECT * FROM popug.dead_letters ORDER BY consumer, event_id' ],
	[ stats_day => 'SELECT * FROM popug.stats_day()' ],
	[ stats_days => 'SELECT * FROM popug.stats_days(current_date - 3, current_date + 1)' ],
	[ stats_most_expensive_task =>
		  'SELECT * FROM popug.stats_most_expensive_task(current_date - 3, current_date + 1)' ],
	[ consumer_lag => 'SELECT * FROM popug.consumer_lag ORDER BY consumer' ],
	[ balances => 'SELECT * FROM popug.balances ORDER BY account_id' ],
	[ metrics => 'SELECT events_total, mails_pending, mails_failed, billing_days_open, tasks_open,'
		  . ' accounts_in_debt FROM popug.metrics' ],
	[ worker_status => 'SELECT worker FROM popug.worker_status ORDER BY worker' ],
	[ worker_pids => 'SELECT count(pid) FROM popug.worker_status' ]);

# What each role sees on the standby: a number of rows, or a SQLSTATE.
my $n = sub { my ($t) = @_; return $primary->safe_psql('popug', "SELECT count(*) FROM $t") };
my %workers_rows = (
	sb_admin => 4,
	sb_manager => 0, sb_accountant => 0, sb_worker1 => 0, sb_gone => 0, sb_nobody => 0);
my %expect = (
	sb_admin => {
		whoami => 1, tasks => $count{task}, audit_log => $count{payment},
		accounts => $count{account}, mails => $count{mail}, stats_day => 1,
		stats_days => 5, stats_most_expensive_task => 1, consumer_lag => 3,
		balances => $count{account}, metrics => 1,
		dead_letters => $count{dead_letter} },
	sb_manager => {
		whoami => 1, tasks => $count{task}, audit_log => 0,
		accounts => $count{account}, mails => 0, stats_day => '42501',
		stats_most_expensive_task => '42501', consumer_lag => 0, balances => 0, metrics => 0,
		dead_letters => 0 },
	sb_accountant => {
		whoami => 1, tasks => 0, audit_log => $count{payment},
		accounts => $count{account}, stats_day => 1, stats_days => 5,
		stats_most_expensive_task => '42501', consumer_lag => 0,
		balances => $count{account}, metrics => 0, dead_letters => 0 },
	sb_worker1 => {
		whoami => 1, tasks => 0, audit_log => 0, accounts => 1,
		my_tasks => $n->("popug.task t JOIN popug.account a ON a.id = t.assignee_id"
			  . " WHERE a.login = 'sb_worker1'"),
		my_audit_log => $n->("popug.payment p JOIN popug.account a ON a.id = p.account_id"
			  . " WHERE a.login = 'sb_worker1'"),
		stats_day => '42501', consumer_lag => 0, balances => 0, metrics => 0,
		dead_letters => 0 },
	sb_gone => { whoami => '42501', my_tasks => 0, accounts => 0, tasks => 0 },
	sb_nobody => { whoami => '42501', my_balance => 0, audit_log => 0, mails => 0 });

for my $role (sort keys %expect)
{
	my $p = run_labelled($primary, $role, @reads);
	my $s = run_labelled($standby, $role, @reads);
	is(scalar(keys %$s), scalar(@reads), "$role: every read ran on the standby");
	for my $r (@reads)
	{
		my $l = $r->[0];
		next if $l eq 'worker_pids';
		is_deeply($s->{$l}, $p->{$l}, "$role: $l is the same on the standby");
	}
	for my $l (sort keys %{ $expect{$role} })
	{
		my $want = $expect{$role}{$l};
		my $got = $want =~ /^[0-9]{5}$/ ? $s->{$l}{sqlstate}
		  : $s->{$l}{sqlstate} eq '00000' ? scalar @{ $s->{$l}{rows} }
		  : "error $s->{$l}{sqlstate}";
		is($got, $want, "$role on the standby: $l gives " . ($want =~ /^[0-9]{5}$/ ? $want : "$want rows"));
	}
	is($s->{worker_status}{sqlstate} eq '00000' && scalar @{ $s->{worker_status}{rows} },
		$workers_rows{$role}, "$role on the standby: worker_status rows");
	is($s->{worker_pids}{rows}[0], '0', "$role on the standby: no worker has a pid (none runs)");
}

# The psql reports, each as an admin, an accountant and a worker: the same
# exit code and output on both nodes, and an admin's run succeeds.
for my $file (glob "$ENV{POPUG_ROOT}/reports/*.sql")
{
	(my $name = $file) =~ s{.*/}{};
	for my $role (qw(sb_admin sb_accountant sb_worker1))
	{
		my %res;
		for my $node ($primary, $standby)
		{
			my ($out, $err) = ('', '');
			IPC::Run::run([ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d',
					$node->connstr('popug') . " user=$role", '-f', $file ],
				'<', \undef, '>', \$out, '2>', \$err);
			$res{ $node->name } = { rc => $? >> 8, out => $out, err => $err };
		}
		is_deeply($res{standby}, $res{primary}, "report $name as $role: the same on the standby");
		# top_tasks is an admin's (task analytics), the others an accountant's too
		my $allowed = $role eq 'sb_admin'
		  || ($role eq 'sb_accountant' && $name ne 'top_tasks.sql');
		is($res{standby}{rc} == 0 ? 'runs' : 'refused', $allowed ? 'runs' : 'refused',
			"report $name on the standby as $role: " . ($allowed ? 'runs' : 'refused'));
	}
}

# ---- writing: PostgreSQL's read-only error ----

my $spare = $primary->safe_psql('popug', "SELECT id FROM popug.account WHERE login = 'sb_spare'");
my $open_task = $primary->safe_psql('popug',
	"SELECT t.id FROM popug.task t JOIN popug.account a ON a.id = t.assignee_id"
	  . " WHERE a.login = 'sb_worker1' AND t.status = 'open' ORDER BY t.id LIMIT 1");
my $done_event = $primary->safe_psql('popug',
	"SELECT e FROM popug.event e WHERE event_name = 'TaskCompleted' ORDER BY id LIMIT 1");
my @writes = (
	[ account_create => 'sb_admin',
		"SELECT popug.account_create('sb_late', 'late\@example.com', 'worker')" ],
	[ account_set_role => 'sb_admin', "SELECT popug.account_set_role('$spare', 'manager')" ],
	[ account_deactivate => 'sb_admin', "SELECT popug.account_deactivate('$spare')" ],
	[ task_create => 'sb_manager', "SELECT popug.task_create('On the standby')" ],
	[ task_complete => 'sb_worker1', "SELECT popug.task_complete('$open_task')" ],
	[ tasks_shuffle => 'sb_manager', 'SELECT popug.tasks_shuffle()' ],
	[ consumer_create => 'sb_admin', "SELECT popug.consumer_create('sb_feed2')" ],
	[ events_read => 'sb_admin', "SELECT count(*) FROM popug.events_read('sb_feed', 5)" ],
	[ events_ack => 'sb_admin', "SELECT popug.events_ack('sb_feed')" ],
	[ payments_apply => 'sb_accountant', 'SELECT popug.payments_apply()' ],
	[ payment_apply => 'sb_accountant',
		"SELECT popug.payment_apply('$done_event'::popug.event)" ],
	[ payout_run => 'sb_accountant', 'CALL popug.payout_run(current_date)' ],
	[ mail_dispatch => 'sb_admin', 'SELECT popug.mail_dispatch()' ],
	[ dead_letter_retry => 'sb_admin', "SELECT popug.dead_letter_retry('$dead_event')" ]);

# The SQLSTATE of each write, run on $node.
sub write_states
{
	my ($node) = @_;
	my $script = join '',
	  map { "SET ROLE $_->[1];\n$_->[2];\n\\echo '\@\@' $_->[0] :SQLSTATE\nRESET ROLE;\n" } @writes;
	my ($out, $err) = ('', '');
	$node->psql('popug', $script, on_error_stop => 0, stdout => \$out, stderr => \$err,
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	note($err) if $err ne '';
	return { map { /^\@\@ (\S+) (\S+)$/ ? ($1 => $2) : () } split /\n/, $out };
}

my $ro = write_states($standby);
is($ro->{ $_->[0] }, '25006', "$_->[0] on the standby: 25006") for @writes;
$primary->wait_for_catchup($standby, 'replay');
is_deeply(run_labelled($standby, 'sb_admin', @reads[0 .. 11]),
	run_labelled($primary, 'sb_admin', @reads[0 .. 11]),
	'the standby still shows what the primary does: nothing was written');

# ---- the workers during recovery ----

# Long enough for a worker started in recovery to have failed and been
# restarted (bgw_restart_time is 5 s).
sleep 6;
my $log = slurp_file($standby->logfile);
my @bad = grep { /\] popug \w+ (ERROR|FATAL|PANIC):/ } split /\n/, $log;
is(scalar @bad, 0, 'no popug error in the standby\'s log during recovery')
  or diag(join "\n", @bad[0 .. ($#bad < 9 ? $#bad : 9)]);
unlike($log, qr/background worker "popug/, 'no popug worker started or exited during recovery');
is($standby->safe_psql('popug', "SELECT string_agg(DISTINCT state, ',') FROM popug.worker_status"),
	'not started', 'worker_status says the workers have not started');

# ---- promotion: the workers start and serve, writes succeed ----

$primary->stop;
$standby->promote;
ok( $standby->poll_query_until('popug',
		"SELECT count(*) = 4 AND count(pid) = 4 FROM popug.worker_status"),
	'after promotion every worker runs');
my $rw = write_states($standby);
for my $w (@writes)
{
	# the dead letter still fails (its version is still unsupported), but
	# not for being read-only
	my $want = $w->[0] eq 'dead_letter_retry' ? 'not 25006' : '00000';
	my $got = $w->[0] eq 'dead_letter_retry' && $rw->{ $w->[0] } ne '25006'
	  ? 'not 25006' : $rw->{ $w->[0] };
	is($got, $want, "$w->[0] on the promoted standby: $want");
}

# The writes above drained accounting themselves (payments_apply); once
# the worker has caught up, a new task is the worker's to charge.
$standby->poll_query_until('popug',
	"SELECT pending = 0 FROM popug.consumer_lag WHERE consumer = 'accounting'");
my $balances = $standby->safe_psql('popug', 'SELECT sum(amount) FROM popug.balance');
$standby->safe_psql('popug', "SET ROLE sb_manager; SELECT popug.task_create('After promotion')");
ok( $standby->poll_query_until('popug',
		"SELECT sum(amount) < $balances FROM popug.balance"),
	'the accounting worker applies new events on the promoted standby: balances moved');
ok( $standby->poll_query_until('popug',
		"SELECT pending = 0 FROM popug.consumer_lag WHERE consumer = 'accounting'"),
	'and it catches up');
is( $standby->safe_psql('popug',
		"SELECT count(*) FROM popug.worker_status WHERE pid IS NULL OR last_error IS NOT NULL"),
	'0', 'worker_status: every worker has a pid and no error');
is( $standby->safe_psql('popug',
		"SELECT count(*) FROM popug.payment p JOIN popug.task t ON t.id = p.task_id"
		  . " WHERE t.title IN ('On the standby', 'After promotion')"),
	$standby->safe_psql('popug',
		"SELECT count(*) FROM popug.event e JOIN popug.task t ON t.id = e.aggregate_id"
		  . " WHERE t.title IN ('On the standby', 'After promotion')"
		  . " AND e.event_name = 'TaskAssigned'"),
	'the tasks created after promotion were charged each assignment fee');

done_testing();
