-- Metrics: popug's health and business gauges in one row, one
-- column per metric, as prometheus-postgres-exporter maps a query's
-- columns to metrics (monitoring/queries.yaml reads this view,
-- popug.worker_status and popug.consumer_lag).  Each figure is read
-- through an index or from a small table: the highest event id rather
-- than a count of events (the last one handed out once retention has
-- dropped every event), the partial indexes of pending and failed mail
-- and of open tasks; only popug.balance, one row per account, is read
-- whole.  Nothing is written, so it works on a hot standby.

CREATE VIEW popug.metrics WITH (security_barrier) AS
	SELECT (SELECT COALESCE(pg_catalog.max(e.id), (SELECT s.last_value FROM popug.event_id_seq s WHERE s.is_called), 0)
			  FROM popug.event e) AS events_total,
		   (SELECT pg_catalog.count(*) FROM popug.mail m
			 WHERE m.status OPERATOR(pg_catalog.=) 'pending') AS mails_pending,
		   (SELECT pg_catalog.count(*) FROM popug.mail m
			 WHERE m.status OPERATOR(pg_catalog.=) 'failed') AS mails_failed,
		   (SELECT COALESCE(EXTRACT(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.min(m.created_at)), 0)
			  FROM popug.mail m
			 WHERE m.status OPERATOR(pg_catalog.=) 'pending') AS mail_oldest_pending_age_seconds,
		   GREATEST(d.today OPERATOR(pg_catalog.-) d.first_open OPERATOR(pg_catalog.+) 1, 0) AS billing_days_open,
		   GREATEST(EXTRACT(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-)
							pg_catalog.timezone(d.tz, d.first_open::timestamp)), 0) AS billing_oldest_open_day_age_seconds,
		   (SELECT pg_catalog.count(*) FROM popug.task t
			 WHERE t.status OPERATOR(pg_catalog.=) 'open') AS tasks_open,
		   (SELECT pg_catalog.count(*) FROM popug.balance b
			 WHERE b.amount OPERATOR(pg_catalog.<) 0) AS accounts_in_debt
	  FROM (SELECT z.tz, pg_catalog.timezone(z.tz, pg_catalog.now())::date AS today,
				   COALESCE((SELECT pg_catalog.max(b.day) OPERATOR(pg_catalog.+) 1 FROM popug.billing_day b
							  WHERE b.closed_at IS NOT NULL),
							(SELECT pg_catalog.min(p.billing_day) FROM popug.payment p)) AS first_open
			  FROM (SELECT COALESCE(pg_catalog.current_setting('popug.timezone', true), 'UTC') AS tz) z) d
	 WHERE popug.caller_role() OPERATOR(pg_catalog.=) 'admin'::popug.role
		OR pg_catalog.pg_has_role('pg_monitor', 'USAGE');
COMMENT ON VIEW popug.metrics IS
	'popug''s gauges for monitoring, one row (admins, pg_monitor): events, mail, billing days not closed, open tasks, accounts in debt';
GRANT SELECT ON popug.metrics TO PUBLIC;
