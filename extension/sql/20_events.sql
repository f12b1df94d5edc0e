-- Events: the transactional outbox and its durable consumers.
--
-- Each event row records the id of the transaction that wrote it (txid).
-- A consumer's position is a snapshot: everything visible in snap_lo is
-- consumed.  Reading opens a window up to a newer snapshot snap_hi and hands
-- out the events visible in snap_hi but not in snap_lo in id order, in
-- batches, so an event whose transaction commits after a later-numbered one
-- is still delivered (the skytools PgQ idea).  No row of this table is ever
-- locked or updated.
--
-- Retention: the table is partitioned by id range, and old
-- partitions are dropped whole, as PgQ rotates its tables (no DELETE, no
-- vacuum).  The partitions are made and dropped by
-- popug.event_maintenance() (extension/retention.c), not by this script,
-- so they are not members of the extension and pg_dump keeps them, rows and
-- all, as ordinary tables attached to popug.event.  event_default takes
-- the ids no partition covers (a fresh install's first events, those of a
-- database upgraded from 0.1, and any that outrun the maintenance).  Each
-- partition has its own primary key on id (their id ranges are disjoint,
-- so ids are unique) and index on txid, and popug.event none: pg_dump
-- restores a partition by attaching it before its indexes, and a
-- partitioned index on popug.event (made by CREATE EXTENSION) would make
-- them at the attach, colliding with the dump's own.

CREATE TABLE popug.event (
	id				bigint GENERATED ALWAYS AS IDENTITY,
	event_id		uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
	event_name		text NOT NULL,
	event_version	integer NOT NULL,
	producer		text NOT NULL,
	aggregate_id	uuid,
	occurred_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	payload			jsonb NOT NULL,
	txid			xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id()
) PARTITION BY RANGE (id);
CREATE TABLE popug.event_default PARTITION OF popug.event (PRIMARY KEY (id)) DEFAULT;
CREATE INDEX event_default_txid_idx ON popug.event_default (txid);
COMMENT ON TABLE popug.event_default IS 'Events of ids no partition of popug.event covers';
COMMENT ON TABLE popug.event IS 'Transactional outbox: every change writes its events in its own transaction';
COMMENT ON COLUMN popug.event.txid IS 'Writing transaction; consumers cut batches by snapshot on it';

CREATE TABLE popug.consumer (
	name			text PRIMARY KEY,
	snap_lo			pg_snapshot NOT NULL,
	snap_hi			pg_snapshot,
	last_id			bigint,
	win_max_id		bigint,
	batch_last_id	bigint,
	batch_size		integer,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	acked_at		timestamptz
);
COMMENT ON TABLE popug.consumer IS 'Durable event consumers and their positions';

-- Events a consumer could not process; the stream moves on without them.
-- Each keeps a copy of its event (but its txid, which only consumer
-- positions need), so that dead_letter_retry replays it after retention
-- has dropped the event from popug.event.
CREATE TABLE popug.dead_letter (
	consumer		text NOT NULL REFERENCES popug.consumer (name) ON DELETE CASCADE,
	event_id		uuid NOT NULL,
	event			bigint NOT NULL,
	error			text NOT NULL,
	failed_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	retried_at		timestamptz,
	event_name		text NOT NULL,
	event_version	integer NOT NULL,
	producer		text NOT NULL,
	aggregate_id	uuid,
	occurred_at		timestamptz NOT NULL,
	payload			jsonb NOT NULL,
	PRIMARY KEY (consumer, event_id)
);
COMMENT ON TABLE popug.dead_letter IS 'Events popug''s own consumers could not process';

CREATE FUNCTION popug.consumer_create(name text, from_start boolean DEFAULT false)
RETURNS void
AS 'MODULE_PATHNAME', 'popug_consumer_create'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.consumer_create(text, boolean) IS
	'Registers a durable consumer at the current end of the stream, or at its start (admins; not popug''s own accounting and mailer)';

CREATE FUNCTION popug.events_read(consumer text, max_events integer DEFAULT 1000)
RETURNS SETOF popug.event
AS 'MODULE_PATHNAME', 'popug_events_read'
LANGUAGE C CALLED ON NULL INPUT VOLATILE ROWS 1000 SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.events_read(text, integer) IS
	'The consumer''s next batch; the same batch again until events_ack (admins; not popug''s own accounting and mailer)';

CREATE FUNCTION popug.events_ack(consumer text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'popug_events_ack'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.events_ack(text) IS
	'Acknowledges the batch last read; returns its size (admins; not popug''s own accounting and mailer)';

-- jsonb_build_object() for event payloads built row by row in one
-- statement: argument types are resolved once per statement, not per value.
CREATE FUNCTION popug.payload(VARIADIC "any")
RETURNS jsonb
AS 'MODULE_PATHNAME', 'popug_payload'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION popug.payload("any") IS
	'jsonb_build_object() of scalar key/value pairs, as event payloads use it';

-- The append path other C code uses, callable from SQL for benchmarks and
-- imports by the extension owner only: nobody else may forge events.
CREATE FUNCTION popug.event_append(event_name text, event_version integer,
								   producer text, aggregate_id uuid, payload jsonb)
RETURNS bigint
AS 'MODULE_PATHNAME', 'popug_event_append_sql'
LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION popug.event_append(text, integer, text, uuid, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION popug.event_append(text, integer, text, uuid, jsonb) IS
	'Appends one event in the current transaction (extension owner only)';

-- A consumer's pending events are the ones its next reads hand out: found
-- through event_txid_idx from its position on, so the cost is that of the
-- lag, not of the table.
CREATE VIEW popug.consumer_lag WITH (security_barrier) AS
	SELECT c.name AS consumer, p.pending, p.oldest_pending_at,
		   (SELECT pg_catalog.count(*)
			  FROM popug.dead_letter d
			 WHERE d.consumer OPERATOR(pg_catalog.=) c.name AND d.retried_at IS NULL) AS dead_letters
	  FROM popug.consumer c,
		   LATERAL (SELECT pg_catalog.count(*) AS pending, pg_catalog.min(e.occurred_at) AS oldest_pending_at
					  FROM popug.event e
					 WHERE e.txid OPERATOR(pg_catalog.>=) pg_catalog.pg_snapshot_xmin(c.snap_lo)
					   AND NOT pg_catalog.pg_visible_in_snapshot(e.txid, c.snap_lo)
					   AND (c.snap_hi IS NULL
							OR e.id OPERATOR(pg_catalog.>) c.last_id
							OR NOT pg_catalog.pg_visible_in_snapshot(e.txid, c.snap_hi))) p
	 WHERE popug.caller_role() OPERATOR(pg_catalog.=) 'admin'::popug.role
		OR pg_catalog.pg_has_role('pg_monitor', 'USAGE');
COMMENT ON VIEW popug.consumer_lag IS
	'Events each consumer has not acknowledged yet, when the oldest of them happened, and its dead letters not replayed (admins, pg_monitor)';
GRANT SELECT ON popug.consumer_lag TO PUBLIC;

CREATE FUNCTION popug.worker_status_rows(OUT worker text, OUT pid integer, OUT state text,
										 OUT last_run timestamptz, OUT processed bigint,
										 OUT last_error text, OUT errors bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'popug_worker_status_rows'
LANGUAGE C STRICT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.worker_status_rows() IS
	'Background workers as seen in shared memory (rows for admins, superusers and pg_monitor only)';

CREATE VIEW popug.worker_status WITH (security_barrier) AS
	SELECT w.* FROM popug.worker_status_rows() w;
COMMENT ON VIEW popug.worker_status IS
	'popug background workers: pid, state, last run, work done, last error, failed passes (admins, pg_monitor)';
GRANT SELECT ON popug.worker_status TO PUBLIC;

CREATE FUNCTION popug.dead_letter_retry(event_id uuid)
RETURNS integer
AS 'MODULE_PATHNAME', 'popug_dead_letter_retry'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.dead_letter_retry(uuid) IS
	'Replays a dead-lettered event to the consumers that set it aside, once its cause is fixed; returns how many (admins)';

CREATE FUNCTION popug.event_maintenance(OUT created integer, OUT dropped integer)
RETURNS record
AS 'MODULE_PATHNAME', 'popug_event_maintenance'
LANGUAGE C STRICT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.event_maintenance() IS
	'Makes the next partition of popug.event and drops those past popug.event_retention that every consumer has acknowledged, as the scheduler worker does every minute; returns how many (admins)';

CREATE VIEW popug.dead_letters WITH (security_barrier) AS
	SELECT d.consumer, d.event_id, d.event_name, d.event_version, d.producer, d.aggregate_id,
		   d.occurred_at, d.payload, d.error, d.failed_at, d.retried_at
	  FROM popug.dead_letter d
	 WHERE (SELECT popug.caller_role()) OPERATOR(pg_catalog.=) 'admin'::popug.role;
COMMENT ON VIEW popug.dead_letters IS
	'Events popug''s own consumers set aside, with the event and the error; retried_at is set once dead_letter_retry replayed it (admins; no rows for anyone else)';
GRANT SELECT ON popug.dead_letters TO PUBLIC;

-- Where the transaction ids in popug.event and popug.consumer come from:
-- the cluster and database that wrote them.  A restored dump names another
-- one, and the first call carries its positions over (extension/origin.c).
CREATE TABLE popug.origin (
	one					boolean PRIMARY KEY DEFAULT true CHECK (one),
	system_identifier	bigint NOT NULL,
	database			oid NOT NULL,
	stamped_at			timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE popug.origin IS
	'The cluster (system identifier) and database whose transaction ids popug.event and popug.consumer hold';

-- Events out by logical replication: any logical client
-- (CREATE SUBSCRIPTION, Debezium with pgoutput) streams the new events in
-- commit order.  Inserts only: no event is ever updated, and rows a
-- retention drops are not "deleted" for subscribers.  Through the root, so
-- that a subscriber sees one table however popug.event is stored.
-- No warning, to the client or the log, where wal_level is below logical.
SET client_min_messages = error;
SET log_min_messages = error;
DROP PUBLICATION IF EXISTS popug_events;
CREATE PUBLICATION popug_events FOR TABLE popug.event
	WITH (publish = 'insert', publish_via_partition_root = true);
-- pg_dump leaves out what belongs to an extension, which CREATE EXTENSION
-- makes again.  ALTER EXTENSION ADD knows no publications, so the
-- membership is recorded as PostgreSQL records it for the objects it
-- knows: pg_dump then leaves the publication out (a restore makes it with
-- the extension instead of clashing with it), and DROP EXTENSION drops it.
INSERT INTO pg_catalog.pg_depend (classid, objid, objsubid, refclassid, refobjid, refobjsubid, deptype)
SELECT 'pg_catalog.pg_publication'::pg_catalog.regclass, p.oid, 0,
	   'pg_catalog.pg_extension'::pg_catalog.regclass, e.oid, 0, 'e'
  FROM pg_catalog.pg_publication p, pg_catalog.pg_extension e
 WHERE p.pubname OPERATOR(pg_catalog.=) 'popug_events' AND e.extname OPERATOR(pg_catalog.=) 'popug';
RESET log_min_messages;
SET client_min_messages = warning;
