-- Task tracker (SPEC 2).

CREATE TABLE popug.task (
	id				uuid PRIMARY KEY,
	title			text NOT NULL,
	description		text NOT NULL DEFAULT '',
	jira_id			text,
	assign_fee		numeric(12,2) NOT NULL CHECK (assign_fee BETWEEN 10.00 AND 20.00),
	complete_reward	numeric(12,2) NOT NULL CHECK (complete_reward BETWEEN 20.00 AND 40.00),
	status			text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done')),
	assignee_id		uuid NOT NULL REFERENCES popug.account (id),
	created_by		uuid NOT NULL REFERENCES popug.account (id),
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	completed_at	timestamptz
);
CREATE INDEX task_assignee_idx ON popug.task (assignee_id);
CREATE INDEX task_open_idx ON popug.task (id) WHERE status = 'open';
COMMENT ON TABLE popug.task IS 'Tasks; prices are fixed at creation';
