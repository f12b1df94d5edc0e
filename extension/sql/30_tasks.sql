-- Task tracker.

CREATE TABLE popug.task (
	id				uuid PRIMARY KEY,
	title			text NOT NULL,
	description		text NOT NULL DEFAULT '',
	jira_id			text,
	assign_fee		numeric(12,2) NOT NULL CHECK (assign_fee BETWEEN 10.00 AND 20.00),
	complete_reward	numeric(12,2) NOT NULL CHECK (complete_reward BETWEEN 20.00 AND 40.00),
	status			text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done')),
	assignee_id		uuid NOT NULL,	-- from popug.worker_slot (see below)
	created_by		uuid NOT NULL REFERENCES popug.account (id),
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	completed_at	timestamptz
);
-- a worker's tasks, and its open ones without walking the done ones
-- (popug.my_tasks WHERE status = 'open', the call that finds what to
-- complete next)
CREATE INDEX task_assignee_idx ON popug.task (assignee_id, status);
CREATE INDEX task_open_idx ON popug.task (id) WHERE status = 'open';
COMMENT ON TABLE popug.task IS 'Tasks; prices are fixed at creation';
-- assignee_id has no foreign key on purpose: assignees are only ever taken
-- from popug.worker_slot, whose own foreign key vouches for them, and
-- accounts are never deleted.  A foreign key would lock a random account
-- row (a page write and WAL) on every assignment, making task_create
-- slower with more workers and a shuffle of a million tasks lock a million
-- rows.

CREATE FUNCTION popug.task_create(title text, description text DEFAULT '', jira_id text DEFAULT NULL)
RETURNS uuid
AS 'MODULE_PATHNAME', 'popug_task_create'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.task_create(text, text, text) IS
	'Creates an open task for a uniformly random active worker; prices are drawn once (any active account)';

CREATE FUNCTION popug.task_complete(task_id uuid)
RETURNS void
AS 'MODULE_PATHNAME', 'popug_task_complete'
LANGUAGE C CALLED ON NULL INPUT VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.task_complete(uuid) IS 'Marks a task done (its current assignee only)';

CREATE FUNCTION popug.tasks_shuffle()
RETURNS bigint
AS 'MODULE_PATHNAME', 'popug_tasks_shuffle'
LANGUAGE C VOLATILE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION popug.tasks_shuffle() IS
	'Reassigns every open task to a uniformly random active worker; returns how many (admins, managers)';

CREATE VIEW popug.my_tasks WITH (security_barrier) AS
	SELECT t.id, t.jira_id, t.title, t.description, t.status, t.assign_fee,
		   t.complete_reward, t.created_at, t.completed_at
	  FROM popug.task t
	 WHERE t.assignee_id OPERATOR(pg_catalog.=) (SELECT popug.caller_account_id());
COMMENT ON VIEW popug.my_tasks IS 'The caller''s tasks, open and done';
GRANT SELECT ON popug.my_tasks TO PUBLIC;

CREATE VIEW popug.tasks WITH (security_barrier) AS
	SELECT t.id, t.jira_id, t.title, t.description, t.status, t.assign_fee,
		   t.complete_reward, t.assignee_id, t.created_by, t.created_at, t.completed_at,
		   assignee.login AS assignee_login, creator.login AS created_by_login
	  FROM popug.task t
	  LEFT JOIN popug.account assignee ON assignee.id OPERATOR(pg_catalog.=) t.assignee_id
	  LEFT JOIN popug.account creator ON creator.id OPERATOR(pg_catalog.=) t.created_by
	 WHERE (SELECT popug.caller_role()) OPERATOR(pg_catalog.=) ANY ('{admin,manager}'::popug.role[]);
COMMENT ON VIEW popug.tasks IS 'Every task (admins and managers; no rows for anyone else)';
GRANT SELECT ON popug.tasks TO PUBLIC;
