-- Task tracker (SPEC 2): create, complete, shuffle; validation, SQLSTATEs,
-- permissions, events, prices, uniform assignment, views.
SELECT plan(68);
\ir setup.psql

\ir cast.psql
SELECT popug.account_create('t_former', 'former@example.com', 'worker');
SELECT popug.account_deactivate((SELECT id FROM popug.account WHERE login = 't_former'));
CREATE TEMP TABLE acc AS SELECT login, id FROM popug.account;
GRANT SELECT ON acc TO PUBLIC;

-- ---- create ----
SET ROLE t_manager;
SELECT popug.task_create('  Fix the login page  ', 'Long passwords fail', 'POPUG-101') AS t1 \gset
RESET ROLE;
SELECT is((SELECT title FROM popug.task WHERE id = :'t1'), 'Fix the login page', 'the title is stored trimmed');
SELECT is((SELECT row(status, jira_id, description, created_by)::text FROM popug.task WHERE id = :'t1'),
		  row('open', 'POPUG-101', 'Long passwords fail', (SELECT id FROM acc WHERE login = 't_manager'))::text,
		  'an open task with its Jira id, description and creator');
SELECT ok((SELECT assignee_id IN (SELECT id FROM acc WHERE login IN ('t_worker1', 't_worker2')) FROM popug.task WHERE id = :'t1'),
		  'assigned to an active worker (never the inactive one or the manager)');
SELECT is((SELECT array_agg(event_name || ' v' || event_version ORDER BY id) FROM popug.event WHERE aggregate_id = :'t1'),
		  ARRAY['TaskCreated v2', 'TaskAssigned v1'], 'TaskCreated v2 then TaskAssigned v1, in the same transaction');
SELECT is((SELECT payload FROM popug.event WHERE aggregate_id = :'t1' AND event_name = 'TaskCreated'),
		  (SELECT jsonb_build_object('task_id', id, 'jira_id', jira_id, 'title', title, 'description', description,
									 'assign_fee', assign_fee, 'complete_reward', complete_reward, 'created_by', created_by)
			 FROM popug.task WHERE id = :'t1'), 'TaskCreated carries the task and its prices');
SELECT is((SELECT payload FROM popug.event WHERE aggregate_id = :'t1' AND event_name = 'TaskAssigned'),
		  (SELECT jsonb_build_object('task_id', id, 'assignee_id', assignee_id, 'previous_assignee_id', NULL,
									 'assign_fee', assign_fee, 'reason', 'create')
			 FROM popug.task WHERE id = :'t1'), 'TaskAssigned (reason create) carries the assignee and the fee');
SELECT is((SELECT producer FROM popug.event WHERE aggregate_id = :'t1' LIMIT 1), 'tasks', 'producer tasks');

SET ROLE t_worker1;
SELECT lives_ok($$ SELECT popug.task_create('A worker files a task') $$, 'a worker may create tasks');
SET ROLE t_accountant;
SELECT lives_ok($$ SELECT popug.task_create('An accountant files a task', NULL) $$, 'so may an accountant (NULL description is empty)');
SET ROLE t_admin;
SELECT lives_ok($$ SELECT popug.task_create(repeat('é', 255)) $$, 'a title of 255 characters (not bytes) is fine');
RESET ROLE;

-- ---- validation: 22023 with a hint, and nothing written ----
CREATE TEMP TABLE before AS SELECT (SELECT count(*) FROM popug.task) AS tasks, (SELECT count(*) FROM popug.event) AS events;
SET ROLE t_manager;
SELECT throws_ok($$ SELECT popug.task_create('[POPUG-1] Fix it') $$, '22023',
	'task title must not contain "[" or "]"', 'brackets in the title are refused');
SELECT throws_ok($$ SELECT popug.task_create('Fix ] it') $$, '22023', NULL, 'even one bracket');
SELECT throws_ok($$ SELECT popug.task_create('   ') $$, '22023', NULL, 'a blank title is refused');
SELECT throws_ok($$ SELECT popug.task_create('') $$, '22023', NULL, 'an empty title is refused');
SELECT throws_ok($$ SELECT popug.task_create(repeat('x', 256)) $$, '22023', NULL, 'a title of 256 characters is refused');
SELECT throws_ok($$ SELECT popug.task_create(NULL) $$, '22004', NULL, 'a NULL title is refused');
SELECT throws_ok($$ SELECT popug.task_create('Fix it', '', 'popug-1') $$, '22023', 'malformed Jira id "popug-1"', 'a lower-case Jira id is refused');
SELECT throws_ok($$ SELECT popug.task_create('Fix it', '', 'POPUG1') $$, '22023', NULL, 'a Jira id without a dash');
SELECT throws_ok($$ SELECT popug.task_create('Fix it', '', 'POPUG-') $$, '22023', NULL, 'a Jira id without a number');
SELECT throws_ok($$ SELECT popug.task_create('Fix it', '', '1POPUG-2') $$, '22023', NULL, 'a Jira id starting with a digit');
SELECT throws_ok($$ SELECT popug.task_create('Fix it', '', 'POPUG-2 ') $$, '22023', NULL, 'a Jira id with trailing junk');
SELECT throws_ok($$ SELECT popug.task_create('Fix it', repeat('x', 10001)) $$, '22023', NULL, 'a description over 10000 characters');
SELECT lives_ok($$ SELECT popug.task_create('Fix it', '', 'A1-0') $$, 'the shortest Jira id is fine');
SET ROLE t_nobody;
SELECT throws_ok($$ SELECT popug.task_create('Fix it') $$, '42501', 'role "t_nobody" has no active popug account',
	'a role without an account cannot create tasks');
SET ROLE t_former;
SELECT throws_ok($$ SELECT popug.task_create('Fix it') $$, '42501', NULL, 'nor can an inactive account');
RESET ROLE;
SELECT is((SELECT count(*) FROM popug.task), (SELECT tasks FROM before) + 1, 'refused creations wrote no task');
SELECT is((SELECT count(*) FROM popug.event), (SELECT events FROM before) + 2, 'and no event');

-- ---- no active worker: 55000; the pool is current inside the transaction ----
CREATE FUNCTION pg_temp.create_as(login name, title text) RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
	id uuid;
BEGIN
	EXECUTE format('SET LOCAL ROLE %I', login);
	id := popug.task_create(title);
	RESET ROLE;
	RETURN id;
END $$;
CREATE FUNCTION pg_temp.without_workers() RETURNS uuid LANGUAGE plpgsql AS $$
BEGIN
	PERFORM popug.account_deactivate(id) FROM acc WHERE login IN ('t_worker1', 't_worker2');
	RETURN pg_temp.create_as('t_manager', 'Nobody to do it');
END $$;
SELECT throws_ok($$ SELECT pg_temp.without_workers() $$, '55000', 'no active worker to assign the task to',
	'no active worker: 55000');
CREATE FUNCTION pg_temp.only_new_worker() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	w uuid := popug.account_create('t_fresh', 'fresh@example.com', 'worker');
	got text := '';
	ids uuid[];
BEGIN
	PERFORM popug.account_deactivate(id) FROM acc WHERE login IN ('t_worker1', 't_worker2');
	SELECT array_agg(pg_temp.create_as('t_manager', 'For the new one ' || i)) INTO ids FROM generate_series(1, 20) i;
	SELECT string_agg(DISTINCT (assignee_id = w)::text, ',') INTO got FROM popug.task WHERE id = ANY (ids);
	PERFORM popug.account_set_role(w, 'manager');
	BEGIN
		PERFORM pg_temp.create_as('t_manager', 'Nobody now');
	EXCEPTION WHEN object_not_in_prerequisite_state THEN
		got := got || ',none after role change';
	END;
	RAISE EXCEPTION USING ERRCODE = 'PX000', MESSAGE = got;	-- undo it all
END $$;
SELECT throws_ok($$ SELECT pg_temp.only_new_worker() $$, 'PX000', 'true,none after role change',
	'workers created, deactivated or changed role in the same transaction count at once');

-- ---- complete ----
SELECT login AS t1_owner FROM acc WHERE id = (SELECT assignee_id FROM popug.task WHERE id = :'t1') \gset
SELECT CASE WHEN :'t1_owner' = 't_worker1' THEN 't_worker2' ELSE 't_worker1' END AS t1_other \gset
TRUNCATE before;
INSERT INTO before SELECT (SELECT count(*) FROM popug.task WHERE status = 'done'), (SELECT count(*) FROM popug.event);
SET ROLE :t1_other;
SELECT throws_ok(format('SELECT popug.task_complete(%L)', :'t1'), '42501', NULL, 'another worker cannot complete it');
SET ROLE t_manager;
SELECT throws_ok(format('SELECT popug.task_complete(%L)', :'t1'), '42501', NULL, 'nor can its manager');
SET ROLE t_nobody;
SELECT throws_ok(format('SELECT popug.task_complete(%L)', :'t1'), '42501', NULL, 'nor a role without an account');
SET ROLE :t1_owner;
SELECT throws_ok($$ SELECT popug.task_complete('00000000-0000-4000-8000-000000000000') $$, 'P0002', NULL, 'an unknown task: P0002');
SELECT throws_ok($$ SELECT popug.task_complete(NULL) $$, '22004', NULL, 'a NULL task: 22004');
RESET ROLE;
SELECT is((SELECT row(count(*) FILTER (WHERE status = 'done'), (SELECT count(*) FROM popug.event))::text FROM popug.task),
		  (SELECT row(tasks, events)::text FROM before), 'refused completions wrote nothing');
SET ROLE :t1_owner;
SELECT lives_ok(format('SELECT popug.task_complete(%L)', :'t1'), 'the assignee completes it');
SELECT throws_ok(format('SELECT popug.task_complete(%L)', :'t1'), '55000', NULL, 'completing a done task: 55000');
RESET ROLE;
SELECT is((SELECT status || ',' || (completed_at IS NOT NULL) FROM popug.task WHERE id = :'t1'), 'done,true', 'the task is done');
SELECT is((SELECT payload FROM popug.event WHERE aggregate_id = :'t1' AND event_name = 'TaskCompleted'),
		  (SELECT jsonb_build_object('task_id', id, 'assignee_id', assignee_id, 'complete_reward', complete_reward)
			 FROM popug.task WHERE id = :'t1'), 'TaskCompleted v1 carries the assignee and the reward');

-- ---- views ----
SELECT coalesce(string_agg(t.id::text, ',' ORDER BY t.id), '') AS w1_tasks FROM popug.task t JOIN acc a ON a.id = t.assignee_id WHERE a.login = 't_worker1' \gset
SET ROLE t_worker1;
SELECT is(coalesce((SELECT string_agg(id::text, ',' ORDER BY id) FROM popug.my_tasks), ''), :'w1_tasks', 'my_tasks shows a worker its own tasks');
SELECT is((SELECT count(*)::int FROM popug.tasks), 0, 'the tasks view shows a worker nothing');
SET ROLE t_accountant;
SELECT is((SELECT count(*)::int FROM popug.tasks), 0, 'nor an accountant');
SET ROLE t_manager;
SELECT is((SELECT count(*) FROM popug.tasks), 5::bigint, 'a manager sees all five tasks');
RESET ROLE;
SELECT is((SELECT count(*) FROM popug.task), 5::bigint, 'there are five');
SET ROLE t_admin;
SELECT is((SELECT count(*) FROM popug.tasks), 5::bigint, 'and an admin sees all five');
SELECT is((SELECT count(*)::int FROM popug.tasks v JOIN popug.accounts a ON a.id = v.assignee_id
			 JOIN popug.accounts c ON c.id = v.created_by
			WHERE v.assignee_login = a.login AND v.created_by_login = c.login), 5,
		  'each with its assignee''s and creator''s login beside their ids');
RESET ROLE;
SET ROLE t_manager;
SELECT throws_ok($$ SELECT * FROM popug.task $$, '42501', NULL, 'the task table itself is not readable');
RESET ROLE;

-- ---- shuffle ----
SET ROLE t_worker1;
SELECT throws_ok($$ SELECT popug.tasks_shuffle() $$, '42501', 'permission denied to shuffle tasks', 'a worker cannot shuffle');
SET ROLE t_accountant;
SELECT throws_ok($$ SELECT popug.tasks_shuffle() $$, '42501', NULL, 'nor an accountant');
SET ROLE t_nobody;
SELECT throws_ok($$ SELECT popug.tasks_shuffle() $$, '42501', NULL, 'nor a role without an account');
RESET ROLE;
CREATE TEMP TABLE pre AS SELECT id, assignee_id, status FROM popug.task;
SELECT max(id) AS last_event FROM popug.event \gset
SET ROLE t_manager;
SELECT is(popug.tasks_shuffle(), 4::bigint, 'a manager shuffles: the four open tasks');
SET ROLE t_admin;
SELECT is(popug.tasks_shuffle(), 4::bigint, 'so does an admin');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM popug.event WHERE id > :last_event AND event_name = 'TaskAssigned' AND payload->>'reason' = 'shuffle'),
		  8, 'one TaskAssigned (reason shuffle) per open task per shuffle');
SELECT is((SELECT count(*)::int FROM popug.event e JOIN pre p ON p.id = e.aggregate_id
			WHERE e.id > :last_event AND p.status = 'done'), 0, 'done tasks are not moved');
SELECT is((SELECT count(*)::int FROM popug.task t
			WHERE status = 'open' AND assignee_id::text = (SELECT payload->>'assignee_id' FROM popug.event e
					WHERE e.aggregate_id = t.id AND event_name = 'TaskAssigned' ORDER BY e.id DESC LIMIT 1)),
		  4, 'each task''s last TaskAssigned names its assignee');
SELECT ok((SELECT bool_and((e.payload->>'previous_assignee_id')::uuid = p.assignee_id
						   AND (e.payload->>'assign_fee')::numeric = t.assign_fee)
			 FROM popug.event e JOIN pre p ON p.id = e.aggregate_id JOIN popug.task t ON t.id = p.id
			WHERE e.id > :last_event AND e.id = (SELECT min(id) FROM popug.event x WHERE x.aggregate_id = p.id AND x.id > :last_event)),
		  'the first shuffle''s events name the previous assignee and the fee');
SELECT ok((SELECT bool_and(a.active AND a.role = 'worker') FROM popug.task t JOIN popug.account a ON a.id = t.assignee_id WHERE t.status = 'open'),
		  'every open task is with an active worker');
CREATE FUNCTION pg_temp.shuffle_without_workers() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
	PERFORM popug.account_deactivate(id) FROM acc WHERE login IN ('t_worker1', 't_worker2');
	SET LOCAL ROLE t_manager;
	RETURN popug.tasks_shuffle();
END $$;
SELECT throws_ok($$ SELECT pg_temp.shuffle_without_workers() $$, '55000', NULL, 'open tasks and no active worker: 55000');

-- ---- prices and uniformity over 10,000 creations among 10 workers ----
SELECT popug.account_deactivate(id) FROM acc WHERE login IN ('t_worker1', 't_worker2');
SELECT popug.account_create('t_chi' || i, 'chi' || i || '@example.com', 'worker') FROM generate_series(1, 10) i;
SELECT max(id) AS before_chi FROM popug.event \gset
SET ROLE t_manager;
SELECT count(popug.task_create('Chi task ' || i)) FROM generate_series(1, 10000) i;
RESET ROLE;
CREATE TEMP TABLE chi AS SELECT t.* FROM popug.task t JOIN popug.event e ON e.aggregate_id = t.id
	WHERE e.id > :before_chi AND e.event_name = 'TaskCreated';
SELECT is((SELECT count(*)::int FROM chi), 10000, '10,000 tasks created');
SELECT ok((SELECT min(assign_fee) >= 10 AND max(assign_fee) <= 20 AND min(complete_reward) >= 20 AND max(complete_reward) <= 40 FROM chi),
		  'fees within [10.00, 20.00], rewards within [20.00, 40.00]');
SELECT ok((SELECT bool_and(assign_fee = round(assign_fee, 2) AND complete_reward = round(complete_reward, 2)) FROM chi),
		  'prices have two decimals');
SELECT cmp_ok((SELECT count(DISTINCT assign_fee)::int FROM chi), '>', 990, 'fees are drawn over every cent of the range (1001 values; about 1001 expected)');
SELECT cmp_ok((SELECT count(DISTINCT complete_reward)::int FROM chi), '>', 1960, 'rewards too (2001 values; about 1988 expected)');
-- Chi-square with 9 degrees of freedom; 27.88 is the 0.001 critical value.
SELECT cmp_ok((SELECT sum((n - 1000.0) ^ 2 / 1000.0) FROM (SELECT count(*) AS n FROM chi GROUP BY assignee_id) c)::numeric,
			  '<', 27.88, 'assignment at creation is uniform over the 10 workers (chi-square, p = 0.001)');
SELECT is((SELECT count(DISTINCT assignee_id)::int FROM chi), 10, 'every worker got tasks');
SET ROLE t_manager;
SELECT cmp_ok(popug.tasks_shuffle(), '>=', 10000::bigint, 'shuffle the 10,000');
RESET ROLE;
SELECT cmp_ok((SELECT sum((n - 1000.0) ^ 2 / 1000.0) FROM (SELECT count(*) AS n FROM popug.task WHERE id IN (SELECT id FROM chi) GROUP BY assignee_id) c)::numeric,
			  '<', 27.88, 'assignment by shuffle is uniform too: random per task, not once per statement');

-- ---- a worker's open tasks, whatever its history ----
-- as in a tracker in use for a while: most tasks done, a worker's whole
-- history behind it
UPDATE popug.task SET status = 'done', completed_at = now() WHERE id IN (SELECT id FROM chi);
INSERT INTO popug.task (id, title, assign_fee, complete_reward, status, assignee_id, created_by)
SELECT gen_random_uuid(), 'Done long ago', 15.00, 30.00, 'done', (SELECT id FROM acc WHERE login = 't_worker1'),
	   (SELECT id FROM acc WHERE login = 't_manager')
  FROM generate_series(1, 50000);
ANALYZE popug.task;
SET ROLE t_worker1;
SELECT matches(pg_temp.plan($$SELECT id FROM popug.my_tasks WHERE status = 'open' LIMIT 1$$),
			   'Index Cond: \(\(assignee_id = \$\d+\) AND \(status = ''open''::text\)\)',
			   'my_tasks WHERE status = ''open'' goes straight to the open tasks, past 50,000 done ones');
RESET ROLE;

SELECT * FROM finish();
