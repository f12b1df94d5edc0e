-- Failed payout mail, for an admin (SPEC 6): listed with its reason in
-- popug.mails, and sent again with mail_resend().  The SMTP server here is
-- none at all (nothing listens on port 1); test/integration/60_mail.py
-- sends a resent mail to a real one.
SELECT plan(14);
\ir setup.psql
\ir cast.psql
\set QUIET 1

CREATE FUNCTION pg_temp.payout(login name, email text) RETURNS bigint LANGUAGE sql AS $$
	SELECT popug.event_append('PayoutMade', 1, 'payout', a.id,
		jsonb_build_object('account_id', a.id, 'email', payout.email, 'billing_day', DATE '2026-11-20', 'amount', 12.50))
	  FROM popug.account a WHERE a.login = payout.login
$$;
SELECT pg_temp.payout('t_worker1', 'w1@example.com'), pg_temp.payout('t_worker2', E'w2@example.com\r\nBcc: x@example.com');
SET popug.smtp_url = 'smtp://127.0.0.1:1';
SET popug.mail_max_attempts = 1;
SELECT is(popug.mail_dispatch(10), 0, 'nothing is delivered: no server listens on port 1');
RESET popug.smtp_url;
RESET popug.mail_max_attempts;
SELECT id AS good FROM popug.mail WHERE account_id = :'w1' \gset
SELECT id AS bad FROM popug.mail WHERE account_id = :'w2' \gset

SET ROLE t_admin;
SELECT is((SELECT array_agg(row(login, status, attempts)::text ORDER BY id) FROM popug.mails WHERE status = 'failed'),
		  ARRAY[row('t_worker1', 'failed', 1)::text, row('t_worker2', 'failed', 0)::text],
		  'an admin lists failed mail in popug.mails, with each recipient''s login');
SELECT matches((SELECT last_error FROM popug.mails WHERE id = :good), 'connect', 'with the reason: the connection failed');
SELECT matches((SELECT last_error FROM popug.mails WHERE id = :bad), '^invalid recipient address', 'or the address was refused');

SELECT throws_ok(format('SELECT popug.mail_resend(%s)', :bad), '22023', NULL,
	'a mail whose address cannot be sent to cannot be resent: 22023');
SELECT throws_ok('SELECT popug.mail_resend(0)', 'P0002', NULL, 'an unknown mail: P0002');
SELECT throws_ok('SELECT popug.mail_resend(NULL)', '22004', NULL, 'a NULL id: 22004');
SET ROLE t_accountant;
SELECT throws_ok(format('SELECT popug.mail_resend(%s)', :good), '42501', NULL, 'an accountant cannot resend mail');
SET ROLE t_worker1;
SELECT throws_ok(format('SELECT popug.mail_resend(%s)', :good), '42501', NULL, 'nor can its recipient');

SET ROLE t_admin;
SELECT lives_ok(format('SELECT popug.mail_resend(%s)', :good), 'an admin resends the failed mail');
SELECT is((SELECT row(status, attempts, next_attempt_at <= clock_timestamp())::text FROM popug.mails WHERE id = :good),
		  row('pending', 0, true)::text, 'it is pending again, its attempts reset, due now');
SELECT throws_ok(format('SELECT popug.mail_resend(%s)', :good), '55000', NULL, 'a mail that is not failed: 55000');
RESET ROLE;
SELECT is((SELECT row(status, attempts)::text FROM popug.mail WHERE id = :bad), row('failed', 0)::text,
		  'the refused resend left the other mail as it was');
SELECT is((SELECT count(*)::int FROM popug.mail), 2, 'and queued nothing new');

SELECT * FROM finish();
