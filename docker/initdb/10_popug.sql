-- First start of the docker image: popug and pg_cron in database popug, the
-- nightly payout scheduled with pg_cron (popug's scheduler worker runs too;
-- the two together pay nobody twice), and mail going to the compose SMTP
-- catcher when one is configured.
CREATE EXTENSION IF NOT EXISTS popug;
CREATE EXTENSION IF NOT EXISTS pg_cron;
SELECT cron.schedule('popug-payout', '0 0 * * *', 'CALL popug.payout_run()');
