# popug without shared_preload_libraries (SPEC 8): CREATE EXTENSION works
# in a session that loads the library on first use (it used to end the
# session defining a postmaster-only setting), and every pgTAP suite, none
# of which needs a worker, passes on such a cluster.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = $ENV{POPUG_ROOT};
my $node = PostgreSQL::Test::Cluster->new('plain');
$node->init;
$node->start;
is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'), '', 'popug is not preloaded');

# one session: the library is loaded by CREATE EXTENSION, then used
$node->safe_psql('postgres', 'CREATE DATABASE popug');
my ($rc, $out, $err) = $node->psql('popug', q{
	CREATE EXTENSION popug;
	SELECT count(*) FROM popug.worker_status;
	SELECT popug.account_create('postgres', 'pg@example.com', 'admin') IS NOT NULL;
	SELECT popug.payments_apply();
	CALL popug.payout_run();
	SELECT popug.mail_dispatch();
});
is($rc, 0, 'CREATE EXTENSION and the workers\' functions in the session that loads the library')
  or diag($err);
is($out, "0\nt\n0\n0", 'no workers to show; the functions do their work');
ok($node->log_contains('cannot create PGC_POSTMASTER variables') == 0, 'no session ended loading popug');

for my $f (sort glob("$root/test/t/*.sql"))
{
	my $db = 'tap_' . ($f =~ m{/(\w+)\.sql$})[0];
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION popug; CREATE EXTENSION pgtap');
	local %ENV = (%ENV, PGHOST => $node->host, PGPORT => $node->port, PGDATABASE => $db);
	my ($prove_out, $prove_err);
	my $ok = IPC::Run::run(['pg_prove', $f], '>', \$prove_out, '2>', \$prove_err);
	ok($ok, "pgTAP $f passes without preloading") or diag($prove_out . $prove_err);
}

done_testing();
