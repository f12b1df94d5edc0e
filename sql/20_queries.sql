-- The statements of extension/queries/ as the C code prepares them: each
-- parses with its parameters typed.  One psql variable per file holds its
-- text, so a :NAME in a file expands here as embed.awk expands it.
\set event_insert `cat extension/queries/event_insert.sql`
\set day_money `cat extension/queries/day_money.sql`
\set payout_unwalked `cat extension/queries/payout_unwalked.sql`
\set accounting_apply `cat extension/queries/accounting_apply.sql`
\set event_append `cat extension/queries/event_append.sql`
\set payout_batch `cat extension/queries/payout_batch.sql`
\set payout_close `cat extension/queries/payout_close.sql`
\set payout_left `cat extension/queries/payout_left.sql`
\set stats_days `cat extension/queries/stats_days.sql`
\set tasks_shuffle `cat extension/queries/tasks_shuffle.sql`

PREPARE accounting_apply(popug.event[], date, boolean) AS :accounting_apply;
PREPARE event_append(text, integer, text, uuid, jsonb) AS :event_append;
PREPARE payout_batch(date, integer) AS :payout_batch;
PREPARE payout_close(date) AS :payout_close;
PREPARE payout_left(date) AS :payout_left;
PREPARE stats_days(date, date, date) AS :stats_days;
PREPARE tasks_shuffle(integer) AS :tasks_shuffle;
SELECT name, parameter_types FROM pg_prepared_statements ORDER BY name;

-- The plans the C code keeps are generic.  Applying events inserts the
-- payments by one of two inserts, chosen by $3 before either reads a row.
SET plan_cache_mode = force_generic_plan;
EXPLAIN (COSTS OFF) EXECUTE accounting_apply('{}', '2026-01-01', true);

-- A payout batch walks the balances in account order from paid_upto, and
-- reads each account's later payments and its account row by index: no
-- scan of every row.
EXPLAIN (COSTS OFF) EXECUTE payout_batch('2026-01-01', 5000);
