# Shared set-up for popug's TAP tests on PostgreSQL::Test::Cluster: a node
# that preloads popug (its workers serve database popug), and a database
# with the extension.  test/run.sh runs test/tap/*.pl as the postgres user
# with this directory and PostgreSQL's test modules on @INC.
package PopugTest;

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Exporter 'import';

our @EXPORT = qw(popug_node popug_create popug_wait_workers popug_settle popug_outrun popug_fingerprint popug_invariants_hold);

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

# popug_settle(NODE, DB = 'popug'): waits until popug's own consumers
# (accounting, mailer) have read every committed event.
sub popug_settle
{
	my ($node, $db) = @_;
	$db //= 'popug';
	$node->poll_query_until($db,
		"SELECT count(*) = 2 FROM popug.consumer_lag WHERE consumer IN ('accounting', 'mailer') AND pending = 0")
	  or die "popug's consumers did not catch up";
	return;
}

# popug_outrun(NODE, DB, N): moves the event ids past every partition of
# popug.event and appends N Probe events there, into event_default, as a
# burst that outruns the maintenance does.  The transaction holds
# popug.event meanwhile, so that no maintenance moves the ids on first.
sub popug_outrun
{
	my ($node, $db, $n) = @_;
	$node->safe_psql($db, qq{
		BEGIN;
		LOCK TABLE popug.event IN ROW EXCLUSIVE MODE;
		SELECT setval('popug.event_id_seq', GREATEST(s.last_value, p.top))
		  FROM popug.event_id_seq s,
			   (SELECT COALESCE(max((regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''?([0-9]+)'))[1]::bigint), 0) AS top
				  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
				 WHERE i.inhparent = 'popug.event'::regclass) p;
		SELECT count(popug.event_append('Probe', 1, 'outrun', NULL, '{}')) FROM generate_series(1, $n);
		COMMIT;});
	return;
}

# popug_fingerprint(NODE, DB, SKIP...): a count and an md5 of the rows of
# every popug table (a partitioned one's through its root) and the position
# of each sequence, by name.  SKIP
# leaves out columns ('table.column') or whole tables ('table.*').
sub popug_fingerprint
{
	my ($node, $db, @skip) = @_;
	my %skip = map { $_ => 1 } @skip;
	my %fp;
	for my $t (split /\n/, $node->safe_psql($db,
			"SELECT relname FROM pg_class WHERE relnamespace = 'popug'::regnamespace AND relkind IN ('r', 'p') AND NOT relispartition ORDER BY 1"))
	{
		next if $skip{"$t.*"};
		my $cols = join ', ', grep { !$skip{"$t.$_"} } split /\n/, $node->safe_psql($db,
			"SELECT quote_ident(attname) FROM pg_attribute"
			  . " WHERE attrelid = 'popug.$t'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum");
		$fp{$t} = $node->safe_psql($db,
			"SELECT count(*) || ' ' || md5(COALESCE(string_agg(r::text, '|' ORDER BY r::text), '')) FROM (SELECT $cols FROM popug.$t) r");
	}
	for my $s (split /\n/, $node->safe_psql($db,
			"SELECT relname FROM pg_class WHERE relnamespace = 'popug'::regnamespace AND relkind = 'S' ORDER BY 1"))
	{
		$fp{$s} = $node->safe_psql($db, "SELECT last_value || ' ' || is_called FROM popug.$s");
	}
	return \%fp;
}

# SPEC 4's invariants, each a query that returns 0 when it holds.
my %invariants = (
	'balances equal the sum of their payments' =>
	  "SELECT count(*) FROM popug.balance b WHERE amount <> (SELECT COALESCE(sum(credit - debit), 0) FROM popug.payment p WHERE p.account_id = b.account_id)",
	'no event applied twice' =>
	  "SELECT count(*) FROM (SELECT event_id, kind, account_id FROM popug.payment WHERE event_id IS NOT NULL GROUP BY 1, 2, 3 HAVING count(*) > 1) d",
	'nobody paid twice a day' =>
	  "SELECT count(*) FROM (SELECT account_id, billing_day FROM popug.payment WHERE kind = 'payout' GROUP BY 1, 2 HAVING count(*) > 1) d",
	'closed days owe nothing' =>
	  "SELECT count(*) FROM popug.billing_day d, LATERAL (SELECT account_id FROM popug.payment p WHERE p.billing_day <= d.day GROUP BY account_id HAVING sum(credit - debit) > 0) o WHERE d.closed_at IS NOT NULL",
	'one mail per payout' =>
	  "SELECT (SELECT count(*) FROM popug.payout) - (SELECT count(*) FROM popug.mail)");

# popug_invariants_hold(NODE, DB, WHAT, NAMES...): one test per invariant
# named (all of them by default), each prefixed with WHAT.
sub popug_invariants_hold
{
	my ($node, $db, $what, @names) = @_;
	@names = sort keys %invariants unless @names;
	for my $name (@names)
	{
		die "no invariant '$name'" unless $invariants{$name};
		is($node->safe_psql($db, $invariants{$name}), '0', "$what: $name");
	}
	return;
}

1;
