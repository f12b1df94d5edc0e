-- Backups: pg_dump keeps the rows of an extension's tables only
-- when the extension marks them.  Every popug table is marked whole, and
-- so are the identity sequences, so that a restore carries on with new ids
-- after the old ones.  No install script seeds a row of any of these
-- tables (a restore would then collide with its own copy); sql/00_install
-- checks that every table and sequence is listed here.
SELECT pg_catalog.pg_extension_config_dump('popug.account', '');
SELECT pg_catalog.pg_extension_config_dump('popug.worker_pool', '');
SELECT pg_catalog.pg_extension_config_dump('popug.worker_slot', '');
SELECT pg_catalog.pg_extension_config_dump('popug.event', '');
SELECT pg_catalog.pg_extension_config_dump('popug.event_default', '');
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
