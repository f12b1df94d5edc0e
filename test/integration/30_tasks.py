"""Task tracker under load (SPEC 2): shuffles, completions, creations and a
deactivation from many connections at once never deadlock, and the
invariants between tasks and their events hold afterwards.  Each race
between two of them, in each order, is an isolation spec
(specs/tasks_shuffle_*.spec, specs/accounts_pool_assign.spec)."""
import os
import sys
import threading
import time

import psycopg2

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import Background, connect, ensure_roles, q, q1  # noqa: E402

WORKERS = ["t_tw%d" % i for i in range(1, 6)]


def as_role(role):
    c = connect()
    c.cursor().execute("SET ROLE %s" % role)
    return c


def race(seconds):
    """Shuffles, creations, completions by every worker and, half-way, the
    deactivation of the last worker, all at once for seconds; returns the
    errors and how many of each ran."""
    stop = time.time() + seconds
    errors = []
    counts = {"shuffled": 0, "created": 0, "completed": 0, "refused": 0}
    lock = threading.Lock()

    def bump(k, n=1):
        with lock:
            counts[k] += n

    def shuffler():
        c = as_role("t_tm")
        while time.time() < stop:
            with c.cursor() as cur:
                cur.execute("SELECT popug.tasks_shuffle()")
                bump("shuffled", cur.fetchone()[0])
            time.sleep(0.05)

    def creator():
        c = as_role("t_tm")
        while time.time() < stop:
            with c.cursor() as cur:
                cur.execute("SELECT popug.task_create('Busy task')")
                bump("created")

    def completer(role):
        c = as_role(role)
        while time.time() < stop:
            with c.cursor() as cur:
                cur.execute("SELECT id FROM popug.my_tasks WHERE status = 'open' LIMIT 3")
                for (tid,) in cur.fetchall():
                    try:
                        cur.execute("SELECT popug.task_complete(%s)", (tid,))
                        bump("completed")
                    except psycopg2.Error as e:
                        if e.pgcode == "42501":  # reassigned by a shuffle meanwhile
                            bump("refused")
                        else:
                            errors.append("%s %s" % (e.pgcode, e))
            time.sleep(0.01)

    def deactivator():
        time.sleep(seconds / 2)
        c = as_role("t_ta")
        c.cursor().execute("SELECT popug.account_deactivate(id) FROM popug.accounts WHERE login = %s",
                           (WORKERS[-1],))

    threads = [Background(shuffler), Background(creator), Background(creator), Background(deactivator)] + \
        [Background(completer, w) for w in WORKERS]
    for t in threads:
        t.join()
    errors += [repr(t.error) for t in threads if t.error is not None]
    return errors, counts


def test_shuffles_racing_completions_and_creations(popug):
    ensure_roles("t_tm", "t_ta", *WORKERS)
    q("SELECT popug.account_create('t_tm', 'tm@example.com', 'manager')")
    q("SELECT popug.account_create('t_ta', 'ta@example.com', 'admin')")
    for w in WORKERS:
        q("SELECT popug.account_create(%s, %s, 'worker')", (w, w + "@example.com"))
    as_role("t_tm").cursor().execute("SELECT count(popug.task_create('Race ' || i)) FROM generate_series(1, 300) i")

    errors, counts = race(6)
    print("shuffled %(shuffled)d assignments, created %(created)d, completed %(completed)d, "
          "%(refused)d completions lost to a shuffle" % counts)
    assert errors == [], "no deadlock or other error while shuffles race completions and creations"
    assert counts["completed"] > 0 and counts["created"] > 0 and counts["shuffled"] > 0, "all three really ran"

    # the invariants between tasks and their events
    assert q1("SELECT count(*) FROM popug.task t JOIN popug.account a ON a.id = t.assignee_id "
              "WHERE t.status = 'open' AND NOT (a.active AND a.role = 'worker')") == 0, \
        "every open task is with an active worker (one was deactivated mid-run)"
    assert q1("SELECT count(*) FROM popug.event e WHERE e.event_name = 'TaskAssigned' "
              "AND e.payload->>'assignee_id' = (SELECT id::text FROM popug.account WHERE login = %s) "
              "AND e.id > (SELECT id FROM popug.event WHERE event_name = 'AccountDeactivated')",
              (WORKERS[-1],)) == 0, \
        "no task was assigned to the deactivated worker after its deactivation"
    assert q1("SELECT count(*) FROM popug.task t WHERE t.assignee_id::text IS DISTINCT FROM "
              "(SELECT payload->>'assignee_id' FROM popug.event e WHERE e.aggregate_id = t.id "
              "AND e.event_name = 'TaskAssigned' ORDER BY e.id DESC LIMIT 1)") == 0, \
        "every task's last TaskAssigned names its assignee"
    assert q1("SELECT count(*) FROM popug.event WHERE event_name = 'TaskAssigned'") == \
        q1("SELECT count(*) FROM popug.task") + counts["shuffled"], \
        "every assignment has exactly one TaskAssigned: creations + shuffled = events"
    assert q1("SELECT count(*) FROM popug.task t WHERE (status = 'done') <> EXISTS "
              "(SELECT FROM popug.event e WHERE e.aggregate_id = t.id AND e.event_name = 'TaskCompleted')") == 0, \
        "a task is done exactly when it has a TaskCompleted"
    assert q1("SELECT count(*) FROM popug.task t WHERE t.status = 'done' AND t.assignee_id::text <> "
              "(SELECT payload->>'assignee_id' FROM popug.event e WHERE e.aggregate_id = t.id "
              "AND e.event_name = 'TaskCompleted')") == 0, "and it was completed by its assignee"
    assert q1("SELECT count(*) FROM popug.event e WHERE e.event_name LIKE 'Task%' "
              "AND NOT EXISTS (SELECT FROM popug.task t WHERE t.id = e.aggregate_id)") == 0, \
        "no task event without its task"
    assert q1("SELECT count(*) FROM popug.task t WHERE NOT EXISTS "
              "(SELECT FROM popug.event e WHERE e.aggregate_id = t.id AND e.event_name = 'TaskCreated')") == 0, \
        "no task without its TaskCreated"
