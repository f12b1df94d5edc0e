-- Payout mail.  See extension/mail.c.

CREATE TABLE popug.mail (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account_id		uuid NOT NULL,
	event_id		uuid NOT NULL UNIQUE,
	to_addr			text NOT NULL,
	subject			text NOT NULL,
	body			text NOT NULL,
	status			text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
	attempts		integer NOT NULL DEFAULT 0,
	next_attempt_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	last_error		text,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	sent_at			timestamptz
);
CREATE INDEX mail_due_idx ON popug.mail (next_attempt_at) WHERE status = 'pending';
CREATE INDEX mail_sent_idx ON popug.mail (sent_at) WHERE status = 'sent';
CREATE INDEX mail_failed_idx ON popug.mail (id) WHERE status = 'failed';	-- counted by popug.metrics
COMMENT ON TABLE popug.mail IS 'Payout mail: one per PayoutMade event, sent by the mailer worker';

CREATE FUNCTION popug.mail_dispatch(max_mails integer DEFAULT 100)
RETURNS integer
AS 'MODULE_PATHNAME', 'popug_mail_dispatch'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.mail_dispatch(integer) IS
	'Queues new payout mail and sends up to max_mails due mails now; returns how many were delivered (admins)';

CREATE VIEW popug.mails WITH (security_barrier) AS
	SELECT m.id, m.account_id, m.to_addr, m.subject, m.status, m.attempts, m.next_attempt_at,
		   m.last_error, m.created_at, m.sent_at, a.login
	  FROM popug.mail m LEFT JOIN popug.account a ON a.id OPERATOR(pg_catalog.=) m.account_id
	 WHERE (SELECT popug.caller_role()) OPERATOR(pg_catalog.=) 'admin'::popug.role
		OR m.account_id OPERATOR(pg_catalog.=) (SELECT popug.caller_account_id());
COMMENT ON VIEW popug.mails IS 'Payout mail: all for admins, one''s own for everyone else';
GRANT SELECT ON popug.mails TO PUBLIC;

CREATE FUNCTION popug.mail_resend(mail_id bigint)
RETURNS void
AS 'MODULE_PATHNAME', 'popug_mail_resend'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.mail_resend(bigint) IS
	'Puts a failed mail back to pending with its attempts reset, to be sent again (admins)';
