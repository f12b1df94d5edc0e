-- Settings are checked when they are set, not when a worker first uses
-- them: popug.payout_at (SPEC 5), popug.smtp_url and popug.smtp_password
-- (SPEC 6).  popug.payout_at can only be changed in the configuration
-- (PGC_SIGHUP), so it is set with ALTER SYSTEM, which validates the value
-- and writes nothing when it is refused.
\set SHOW_CONTEXT never
-- popug.payout_at: exactly HH:MM from 00:00 to 23:59, or empty
ALTER SYSTEM SET popug.payout_at = '-0:30';
\echo :LAST_ERROR_SQLSTATE
ALTER SYSTEM SET popug.payout_at = '5: 3';
ALTER SYSTEM SET popug.payout_at = '05:3x';
ALTER SYSTEM SET popug.payout_at = ' 5:30';
ALTER SYSTEM SET popug.payout_at = '05:30 ';
ALTER SYSTEM SET popug.payout_at = '24:00';
ALTER SYSTEM SET popug.payout_at = '23:60';
ALTER SYSTEM SET popug.payout_at = '5:30';
ALTER SYSTEM SET popug.payout_at = '05:5';
ALTER SYSTEM SET popug.payout_at = '+5:30';
ALTER SYSTEM SET popug.payout_at = '05.30';
ALTER SYSTEM SET popug.payout_at = '05:30:00';
ALTER SYSTEM SET popug.payout_at = '０５:３０';
ALTER SYSTEM SET popug.payout_at = 'noon';
\echo :LAST_ERROR_SQLSTATE
ALTER SYSTEM SET popug.payout_at = '00:00';
ALTER SYSTEM SET popug.payout_at = '23:59';
ALTER SYSTEM SET popug.payout_at = '';
ALTER SYSTEM RESET popug.payout_at;
-- it is not a session setting
SET popug.payout_at = '01:00';
\echo :LAST_ERROR_SQLSTATE
-- popug.smtp_url: smtp:// or smtps://, and no credentials, which every
-- role could read in pg_settings
SET popug.smtp_url = 'smtp://user:secret@mail.example.com:25';
\echo :LAST_ERROR_SQLSTATE
SET popug.smtp_url = 'smtps://user@mail.example.com';
SET popug.smtp_url = 'smtp://user;AUTH=PLAIN:secret@mail.example.com';
SET popug.smtp_url = 'smtp://mail.example.com:25/@';
ALTER SYSTEM SET popug.smtp_url = 'smtp://user:secret@mail.example.com:25';
\echo :LAST_ERROR_SQLSTATE
SET popug.smtp_url = 'http://mail.example.com/';
SET popug.smtp_url = E'smtp://mail.example.com\r\nRCPT TO:<x@example.com>';
SET popug.smtp_url = 'smtp://mail.example.com:587';
SET popug.smtp_url = 'smtps://[2001:db8::1]:465/client.example.com';
RESET popug.smtp_url;
SET popug.smtp_from = 'popug@localhost';
SET popug.smtp_from = E'popug@example.com\r\nBcc: x@example.com';
SET popug.smtp_from = 'jörg@example.com';
RESET popug.smtp_from;
-- popug.smtp_password: a superuser sets it, nobody else reads it
SET popug.smtp_password = 's3cret';
CREATE ROLE regress_plain;
SET ROLE regress_plain;
SHOW popug.smtp_password;
\echo :LAST_ERROR_SQLSTATE
SELECT current_setting('popug.smtp_password');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS visible FROM pg_settings WHERE name = 'popug.smtp_password' OR setting LIKE '%s3cret%';
SELECT count(*) AS shown FROM (SELECT set_config('popug.smtp_password', 'mine', false)) s;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT current_setting('popug.smtp_password') AS superuser_reads;
-- nor stored where every role can read it: pg_db_role_setting, pg_proc
ALTER ROLE regress_plain SET popug.smtp_password = 's3cret';
\echo :LAST_ERROR_SQLSTATE
ALTER DATABASE :"DBNAME" SET popug.smtp_password = 's3cret';
CREATE FUNCTION regress_pw() RETURNS int LANGUAGE sql SET popug.smtp_password = 's3cret' AS 'SELECT 1';
SELECT count(*) AS stored FROM pg_db_role_setting WHERE array_to_string(setconfig, ',') LIKE '%smtp_password%';
ALTER ROLE regress_plain RESET popug.smtp_password;
RESET popug.smtp_password;
DROP ROLE regress_plain;
SELECT count(*) AS settings_written FROM pg_file_settings
 WHERE sourcefile LIKE '%postgresql.auto.conf' AND name LIKE 'popug.%';
