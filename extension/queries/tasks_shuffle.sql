-- Every open task to a random slot's worker ($1 slots), and one
-- TaskAssigned event per task.  random() is volatile, so it is drawn per
-- row.
WITH pick AS (
  SELECT t.id, t.assignee_id AS old, (1 + floor(random() * $1))::int AS slot
    FROM popug.task t WHERE t.status = 'open'),
 moved AS (
  UPDATE popug.task t SET assignee_id = s.account_id
    FROM pick p JOIN popug.worker_slot s ON s.slot = p.slot
   WHERE t.id = p.id
  RETURNING t.id, p.old, t.assignee_id, t.assign_fee)
:event_insert
SELECT 'TaskAssigned', 1, 'tasks', m.id, popug.payload(
  'task_id', m.id, 'assignee_id', m.assignee_id, 'previous_assignee_id', m.old,
  'assign_fee', m.assign_fee, 'reason', 'shuffle')
  FROM moved m
