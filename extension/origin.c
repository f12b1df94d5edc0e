/*-------------------------------------------------------------------------
 *
 * origin.c
 *		What a call checks about the database before it runs: that the
 *		installed SQL is the version this library serves, that the
 *		transaction ids stored with events belong to this cluster, and
 *		that the publication popug_events belongs to the extension.
 *
 * Version.  After a package upgrade the new library can meet a database
 * still at an older version (until ALTER EXTENSION popug UPDATE).  Calls
 * then fail with a hint to update instead of running statements written
 * for tables the database does not have yet, and the workers wait.
 *
 * Origin.  Each event row keeps the id of the transaction that wrote it,
 * and a consumer's position is a snapshot of those ids (see events.c).
 * Transaction ids belong to a cluster: a logical dump restored into
 * another cluster brings ids that mean nothing there, possibly ahead of
 * the ids its new transactions get, so new events would look consumed
 * already (never delivered) and old ones pending (delivered again).
 * popug.origin records the cluster (system identifier) and database the
 * ids come from.  The first call in a database whose origin row names
 * another one (a restored dump), or that has none (a fresh install, one
 * upgraded from 0.1, a dump of either), carries the ids over if they need
 * it before anything else runs, and stamps the row.
 *
 * Carrying over: if every stored id is older than any transaction that
 * can still write an event here (a dump restored into the same cluster,
 * or into an older one), they mean the same here and nothing changes.
 * Otherwise ids are renumbered.  All that matters about an event's id is
 * which consumers have consumed it, so each event gets a small id saying
 * exactly that: one per set of consumers it is pending for, and one shared
 * by the events every consumer has consumed.  Each consumer's position
 * becomes a snapshot over those ids that holds just the events it had
 * consumed, and an open window is closed at its acknowledged position (a
 * batch read but not acknowledged is handed out again, as after a crash).
 *
 * Publication.  popug_events is a member of the extension: the install
 * script records the membership as ALTER EXTENSION ADD would (it knows no
 * publications), so that pg_dump leaves it out and DROP EXTENSION drops
 * it.  pg_upgrade's dump recreates each member on its own and makes it a
 * member again with ALTER EXTENSION ADD, which the publication does not
 * get: it arrives as an ordinary publication.  The first call that finds
 * it so records the membership again, under the publication's lock.
 *
 * Locking: the origin row FOR UPDATE, then popug.event in SHARE mode (no
 * event is written meanwhile) and the consumer rows FOR UPDATE.  Every
 * call that can write an event passes here first, so no event written in
 * the restored database precedes the renumbering.  A backend that has
 * seen a matching row it did not write itself checks no more.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "origin.h"

#include "plan.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_publication.h"
#include "commands/extension.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"

/* The first transaction id a renumbering gives out (FirstNormalTransactionId). */
#define RENUMBER_BASE 3

static bool version_ok = false;
static bool origin_ok = false;
static bool publication_ok = false;

/* The transaction that last made popug_events a member, in this backend. */
static LocalTransactionId publication_made = InvalidLocalTransactionId;

/*
 * The installed version of extension popug (palloc'd), or NULL when it is
 * not installed in this database.
 */
char *
popug_installed_version(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	char	   *version = NULL;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("popug"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			version = TextDatumGetCString(d);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return version;
}

/*
 * Refuses to run against installed SQL of another version than this
 * library's, with a hint to update it.
 */
static void
check_version(void)
{
	char	   *installed;

	if (version_ok)
		return;
	installed = popug_installed_version();
	if (installed != NULL && strcmp(installed, POPUG_VERSION) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension popug is at version %s, but its library is version %s",
						installed, POPUG_VERSION),
				 errhint("Run ALTER EXTENSION popug UPDATE.")));
	version_ok = installed != NULL;
}

static PopugPlan origin_plan = {
	"SELECT system_identifier = $1 AND database = $2, xmin FROM popug.origin",
	2, {INT8OID, OIDOID}
};
static PopugPlan origin_lock_plan = {
	"SELECT system_identifier = $1 AND database = $2 FROM popug.origin FOR UPDATE",
	2, {INT8OID, OIDOID}
};
static PopugPlan origin_insert_plan = {
	"INSERT INTO popug.origin (system_identifier, database) VALUES ($1, $2)"
	" ON CONFLICT (one) DO NOTHING",
	2, {INT8OID, OIDOID}
};
static PopugPlan origin_stamp_plan = {
	"UPDATE popug.origin SET system_identifier = $1, database = $2, stamped_at = now()",
	2, {INT8OID, OIDOID}
};
static PopugPlan freeze_plan = {
	"LOCK TABLE popug.event IN SHARE MODE", 0, {}
};

/*
 * Whether stored ids reach any transaction that can still write an event:
 * the newest event's, or a position's upper bound, past the oldest
 * transaction running now.
 */
static PopugPlan foreign_ids_plan = {
	"SELECT GREATEST((SELECT max(txid) FROM popug.event)::text::numeric + 1,"
	"                (SELECT max(GREATEST(pg_snapshot_xmax(snap_lo), pg_snapshot_xmax(snap_hi)))"
	"                   FROM (SELECT snap_lo, snap_hi FROM popug.consumer FOR UPDATE) c)::text::numeric)"
	"       > now.xmin, now.xmin"
	"  FROM (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::numeric AS xmin) now",
	0, {}
};

/*
 * Renumbers event ids and consumer positions (see the top of this file);
 * returns how many sets of pending consumers there were.  $1 is the first
 * id given out.
 */
static PopugPlan renumber_plan = {
	"WITH pending AS ("
	"  SELECT e.id, (SELECT array_agg(c.name ORDER BY c.name) FROM popug.consumer c"
	"                 WHERE NOT pg_visible_in_snapshot(e.txid, c.snap_lo)"
	"                   AND (c.snap_hi IS NULL OR e.id > c.last_id"
	"                        OR NOT pg_visible_in_snapshot(e.txid, c.snap_hi))) AS names"
	"    FROM popug.event e),"
	" sets AS ("
	"  SELECT names, $1 + row_number() OVER (ORDER BY names) AS txid"
	"    FROM (SELECT DISTINCT names FROM pending WHERE names IS NOT NULL) s),"
	" top AS (SELECT $1 + count(*) + 1 AS xmax FROM sets),"
	" events AS ("
	"  UPDATE popug.event e SET txid = COALESCE(s.txid, $1)::text::xid8"
	"    FROM pending p LEFT JOIN sets s ON s.names = p.names"
	"   WHERE e.id = p.id),"
	" positions AS ("
	"  SELECT c.name, (COALESCE(min(s.txid), t.xmax)::text || ':' || t.xmax::text || ':'"
	"                  || COALESCE(string_agg(s.txid::text, ',' ORDER BY s.txid), ''))::pg_snapshot AS snap"
	"    FROM popug.consumer c CROSS JOIN top t LEFT JOIN sets s ON c.name = ANY (s.names)"
	"   GROUP BY c.name, t.xmax),"
	" moved AS ("
	"  UPDATE popug.consumer c SET snap_lo = p.snap, snap_hi = NULL, last_id = NULL,"
	"         win_max_id = NULL, batch_last_id = NULL, batch_size = NULL"
	"    FROM positions p WHERE c.name = p.name)"
	"SELECT xmax FROM top",
	1, {INT8OID}
};

/*
 * Carries the stored ids of a restored dump over to this cluster, if they
 * need it (see the top of this file).  Runs under the origin row's lock;
 * true when it renumbered.
 */
static bool
carry_over(void)
{
	bool		isnull;
	int64		oldest;
	int64		top;
	Datum		base = Int64GetDatum(RENUMBER_BASE);

	popug_exec(&freeze_plan, NULL, NULL, false, 0);
	popug_exec(&foreign_ids_plan, NULL, NULL, false, 1);
	if (!DatumGetBool(popug_get(0, 1, &isnull)) || isnull)
		return false;
	oldest = DatumGetInt64(DirectFunctionCall1(numeric_int8, popug_get(0, 2, &isnull)));
	popug_exec(&renumber_plan, &base, NULL, false, 1);
	top = DatumGetInt64(popug_get(0, 1, &isnull));
	if (top > oldest)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot carry the restored event positions over to this cluster"),
				 errdetail("They need " INT64_FORMAT " transaction ids below the oldest running one, " INT64_FORMAT ".",
						   top, oldest),
				 errhint("Run that many transactions in this cluster, then call popug again.")));
	ereport(LOG,
			(errmsg("popug: event positions of a restored dump carried over to this cluster (" INT64_FORMAT " sets of pending consumers)",
					top - RENUMBER_BASE - 1)));
	return true;
}

/*
 * Makes sure the stored transaction ids belong here, carrying a restored
 * dump's over first.  Runs inside a call, as the owner; true when it
 * renumbered them.
 */
static bool
check_origin(void)
{
	Datum		args[2];
	bool		isnull;
	bool		renumbered;

	if (origin_ok)
		return false;
	args[0] = Int64GetDatum((int64) GetSystemIdentifier());
	args[1] = ObjectIdGetDatum(MyDatabaseId);
	if (popug_exec(&origin_plan, args, NULL, true, 1) == 1 &&
		DatumGetBool(popug_get(0, 1, &isnull)))
	{
		/* trust a row once it is committed, not while this transaction writes it */
		origin_ok = !TransactionIdIsCurrentTransactionId(DatumGetTransactionId(popug_get(0, 2, &isnull)));
		return false;
	}
	/* no row yet (a fresh install, or one from before origins): make it */
	if (popug_exec(&origin_insert_plan, args, NULL, false, 0) == 0)
	{
		popug_exec(&origin_lock_plan, args, NULL, false, 1);
		if (DatumGetBool(popug_get(0, 1, &isnull)))
			return false;		/* stamped meanwhile by another backend */
	}
	renumbered = carry_over();
	popug_exec(&origin_stamp_plan, args, NULL, false, 0);
	return renumbered;
}

/*
 * Makes popug_events a member of extension popug again where pg_upgrade
 * left it an ordinary publication (see the top of this file).  Checks no
 * more once it has seen the membership outside the transaction that made
 * it.
 */
static void
check_publication(void)
{
	Oid			extoid;
	Oid			puboid;

	if (publication_ok)
		return;
	extoid = get_extension_oid("popug", true);
	puboid = get_publication_oid("popug_events", true);
	if (!OidIsValid(extoid) || !OidIsValid(puboid))
		return;
	if (getExtensionOfObject(PublicationRelationId, puboid) != extoid)
	{
		ObjectAddress publication;
		ObjectAddress extension;

		/* one backend records it; the others then see it */
		LockDatabaseObject(PublicationRelationId, puboid, 0, ShareUpdateExclusiveLock);
		if (getExtensionOfObject(PublicationRelationId, puboid) == extoid)
			return;
		ObjectAddressSet(publication, PublicationRelationId, puboid);
		ObjectAddressSet(extension, ExtensionRelationId, extoid);
		recordDependencyOn(&publication, &extension, DEPENDENCY_EXTENSION);
		publication_made = MyProc->lxid;
		ereport(LOG,
				(errmsg("popug: publication popug_events made a member of extension popug again"),
				 errdetail("pg_upgrade restores it as an ordinary publication.")));
		return;
	}
	publication_ok = publication_made != MyProc->lxid;
}

/*
 * The checks every call makes before it runs (see the top of this file).
 * Read-only transactions and standbys write no event, and do not check
 * the origin or the publication: a standby is a physical copy whose ids
 * are its primary's.
 * Returns true when it renumbered events and positions: the rest of the
 * call must read them through a snapshot taken after that.
 */
bool
popug_check_database(void)
{
	check_version();
	if (RecoveryInProgress() || XactReadOnly)
		return false;
	check_publication();
	return check_origin();
}
