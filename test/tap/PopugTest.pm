# Shared set-up for popug's TAP tests on PostgreSQL::Test::Cluster: a node
# that preloads popug (its workers serve database popug), and a database
# with the extension.  test/run.sh runs test/tap/*.pl as the postgres user
# with this directory and PostgreSQL's test modules on @INC.
package PopugTest;

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Exporter 'import';

our @EXPORT = qw(popug_node popug_create popug_wait_workers);

# popug_node(NAME, install_path => DIR, init => {...}, conf => "lines"):
# an initialized, not yet started node with popug preloaded.
sub popug_node
{
	my ($name, %p) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name,
		$p{install_path} ? (install_path => $p{install_path}) : ());
	$node->init(%{ $p{init} || {} });
	$node->append_conf('postgresql.conf', <<"EOC" . ($p{conf} || ''));
shared_preload_libraries = 'popug'
popug.database = 'popug'
max_worker_processes = 16
log_line_prefix = '%m [%p] %b '
EOC
	return $node;
}

# popug_create(NODE, DB = 'popug'): a new database with the extension.
sub popug_create
{
	my ($node, $db) = @_;
	$db //= 'popug';
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION popug');
	return;
}

# popug_wait_workers(NODE, DB = 'popug'): waits until every popug worker
# serves DB (they retry every few seconds until it has the extension).
sub popug_wait_workers
{
	my ($node, $db) = @_;
	$db //= 'popug';
	$node->poll_query_until($db,
		"SELECT count(*) = 4 FROM popug.worker_status WHERE pid IS NOT NULL AND state NOT LIKE 'waiting%' AND state <> 'starting'")
	  or die 'popug workers did not start: ' . $node->safe_psql($db, 'SELECT * FROM popug.worker_status');
	return;
}

1;
