-- The table a subscriber to popug's publication popug_events needs
-- (SPEC 10).  Logical replication carries rows, not table definitions: run
-- this in the subscribing database before CREATE SUBSCRIPTION.  Every
-- column popug publishes is here, with its type; the id is the primary key,
-- so an event delivered twice would stop the subscription with a unique
-- violation instead of being stored twice.  No defaults and no identity:
-- the values come from the publisher.  txid is the publisher's transaction
-- id, meaningful only there.  The subscriber may add columns of its own
-- (with defaults) and indexes; popug never updates or deletes a published
-- row, so the table only grows unless the subscriber prunes it.
--
--   psql -d mydb -f replication/subscriber.sql
--   CREATE SUBSCRIPTION popug_events
--       CONNECTION 'host=popug-host dbname=popug user=replicator'
--       PUBLICATION popug_events;
CREATE SCHEMA IF NOT EXISTS popug;
CREATE TABLE popug.event (
	id				bigint PRIMARY KEY,
	event_id		uuid NOT NULL,
	event_name		text NOT NULL,
	event_version	integer NOT NULL,
	producer		text NOT NULL,
	aggregate_id	uuid,
	occurred_at		timestamptz NOT NULL,
	payload			jsonb NOT NULL,
	txid			xid8 NOT NULL
);
