# Physical backups (SPEC 10): pgBackRest backs the cluster up and restores
# it to a point in time; popug needs nothing for it.  The restored cluster
# is at the restore point exactly (a payout after it is gone, the money
# before it is there), its invariants hold, its workers serve it, and the
# day can be paid out again on it.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PopugTest;

my $repo = PostgreSQL::Test::Utils::tempdir;
my $conf = "$repo/pgbackrest.conf";

my $node = popug_node('pitr');
my $pgdata = $node->data_dir;
my $host = $node->host;
my $port = $node->port;
append_to_file($conf, <<"EOC");
[global]
repo1-path=$repo/repo
log-path=$repo
lock-path=$repo
log-level-console=warn
start-fast=y
repo1-retention-full=2

[popug]
pg1-path=$pgdata
pg1-socket-path=$host
pg1-port=$port
EOC
$node->append_conf('postgresql.conf', <<"EOC");
archive_mode = on
archive_command = 'pgbackrest --config=$conf --stanza=popug archive-push %p'
wal_level = replica
EOC
$node->start;
popug_create($node);
popug_wait_workers($node);

my @br = ('pgbackrest', "--config=$conf", '--stanza=popug');
$node->command_ok([@br, 'stanza-create'], 'pgbackrest stanza-create');
$node->command_ok([@br, 'check'], 'pgbackrest check');
$node->command_ok([@br, '--type=full', 'backup'], 'pgbackrest full backup');

# Work after the backup, up to a restore point, then a payout after it.
$node->safe_psql('postgres', join(';', map { "CREATE ROLE $_" } qw(adm acc w1 w2)));
$node->safe_psql('popug', q{
	SELECT popug.account_create('adm', 'adm@example.com', 'admin');
	SELECT popug.account_create('acc', 'acc@example.com', 'accountant');
	SELECT popug.account_create(w, w || '@example.com', 'worker') FROM unnest('{w1,w2}'::name[]) w;
	SET ROLE adm;
	SELECT popug.task_create('task ' || i) FROM generate_series(1, 10) i;
	SET ROLE w1;
	SELECT popug.task_complete(id) FROM popug.my_tasks;
});
$node->poll_query_until('popug',
	"SELECT count(*) = 2 FROM popug.consumer_lag WHERE consumer IN ('accounting', 'mailer') AND pending = 0")
  or die 'accounting did not catch up';
my $payments = $node->safe_psql('popug', "SELECT count(*) || ' ' || sum(credit - debit) FROM popug.payment");
$node->safe_psql('popug', "SELECT pg_create_restore_point('before_payout')");
$node->safe_psql('popug', 'SET ROLE acc; CALL popug.payout_run(current_date)');
ok($node->safe_psql('popug', 'SELECT count(*) FROM popug.payout') > 0, 'a payout after the restore point');
$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
$node->command_ok([@br, 'check'], 'the WAL is archived');
$node->stop('immediate');

$node->command_ok([@br, '--delta', '--type=name', '--target=before_payout', '--target-action=promote', 'restore'],
	'pgbackrest restore to the restore point');
$node->start;
$node->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()') or die 'no promotion';

is($node->safe_psql('popug', "SELECT count(*) || ' ' || sum(credit - debit) FROM popug.payment"), $payments,
	'the money up to the restore point is there');
is($node->safe_psql('popug', 'SELECT count(*) FROM popug.payout'), '0', 'the payout after it is not');
popug_invariants_hold($node, 'popug', 'restored', 'balances equal the sum of their payments');
popug_wait_workers($node);
my $task = $node->safe_psql('popug', "SET ROLE adm; SELECT popug.task_create('after the restore')");
ok($node->poll_query_until('popug', "SELECT count(*) = 1 FROM popug.payment WHERE task_id = '$task'"),
	'the workers serve the restored cluster');
$node->safe_psql('popug', 'SET ROLE acc; CALL popug.payout_run(current_date)');
popug_invariants_hold($node, 'popug', 'the day is paid out again', 'nobody paid twice a day', 'closed days owe nothing');
ok($node->safe_psql('popug', 'SELECT count(*) FROM popug.payout') > 0, 'and somebody is paid');

done_testing();
