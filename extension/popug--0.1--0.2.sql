-- popug 0.1 -> 0.2.  Every change to extension/sql/ since 0.1 is made here
-- too, so that an upgraded database has exactly the objects of a fresh 0.2
-- install (test/integration/20_upgrade checks the catalogs).
\echo Use "ALTER EXTENSION popug UPDATE TO '0.2'" to load this file. \quit

-- Where event transaction ids come from (see extension/sql/20_events.sql).
CREATE TABLE popug.origin (
	one					boolean PRIMARY KEY DEFAULT true CHECK (one),
	system_identifier	bigint NOT NULL,
	database			oid NOT NULL,
	stamped_at			timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE popug.origin IS
	'The cluster (system identifier) and database whose transaction ids popug.event and popug.consumer hold';

-- Backups: pg_dump keeps every table's rows and the identity sequences'
-- positions (see extension/sql/90_dump.sql).  worker_pool keeps its row:
-- 0.2 makes it on the first worker's arrival instead of at install.
SELECT pg_catalog.pg_extension_config_dump('popug.account', '');
SELECT pg_catalog.pg_extension_config_dump('popug.worker_pool', '');
SELECT pg_catalog.pg_extension_config_dump('popug.worker_slot', '');
SELECT pg_catalog.pg_extension_config_dump('popug.event', '');
SELECT pg_catalog.pg_extension_config_dump('popug.event_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('popug.consumer', '');
SELECT pg_catalog.pg_extension_config_dump('popug.origin', '');
SELECT pg_catalog.pg_extension_config_dump('popug.dead_letter', '');
SELECT pg_catalog.pg_extension_config_dump('popug.task', '');
SELECT pg_catalog.pg_extension_config_dump('popug.payment', '');
SELECT pg_catalog.pg_extension_config_dump('popug.balance', '');
SELECT pg_catalog.pg_extension_config_dump('popug.ledger_task', '');
SELECT pg_catalog.pg_extension_config_dump('popug.billing_day', '');
SELECT pg_catalog.pg_extension_config_dump('popug.payout', '');
SELECT pg_catalog.pg_extension_config_dump('popug.mail', '');
SELECT pg_catalog.pg_extension_config_dump('popug.mail_id_seq', '');
