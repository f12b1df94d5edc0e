"""Errors reach the caller; only bad data is set aside (SPEC 9), and a
payment never lands on a day whose payout has started (SPEC 4), whatever
the isolation level.

payments_apply in a database no worker serves, against a second session:
a statement timeout, a lock timeout, a pg_cancel_backend, a deadlock and a
serialization failure each fail the call with their own SQLSTATE and leave
no dead letter; the events are applied once the obstacle is gone.  Then
the accounting worker under a cluster-wide default_transaction_isolation
of repeatable read keeps applying events while a payout closes the day.
READ COMMITTED, REPEATABLE READ and SERIALIZABLE transactions racing a
payout's start are played step by step in specs/payout_start_apply.spec."""
import os
import sys
import time

import psycopg2
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import Background, calls_as, connect, ensure_roles, q, q1, wait_for  # noqa: E402

DB = "popug_errors"
BILLING_LOCK = "SELECT pg_advisory_xact_lock(1886351207, 1)"  # popug.xact_lock(1, true)


@pytest.fixture
def errors_db(popug):
    """A database no worker serves with popug, an admin, a manager, an
    accountant and two workers, and one task applied."""
    ensure_roles("t_ee_admin", "t_ee_mgr", "t_ee_acc", "t_ee_w1", "t_ee_w2")
    q("CREATE DATABASE %s" % DB, db="postgres")
    q("CREATE EXTENSION popug", db=DB)
    for login, role in (("t_ee_admin", "admin"), ("t_ee_mgr", "manager"), ("t_ee_acc", "accountant"),
                        ("t_ee_w1", "worker"), ("t_ee_w2", "worker")):
        q("SELECT popug.account_create(%s, %s, %s)", (login, login + "@example.com", role), db=DB)
    tasks(1)
    q("SELECT popug.payments_apply()", db=DB)


def tasks(n):
    """n new tasks: their events wait for accounting."""
    c = connect(DB)
    with c.cursor() as cur:
        cur.execute("SET ROLE t_ee_mgr")
        for i in range(n):
            cur.execute("SELECT popug.task_create(%s)", ("Task %d" % i,))
    c.close()


def session(role="t_ee_acc"):
    c = connect(DB)
    c.cursor().execute("SET ROLE %s" % role)
    return c


def sqlstate(conn, sql):
    """Runs sql; returns 'ok' or the SQLSTATE it failed with."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
        return "ok"
    except psycopg2.Error as e:
        return e.pgcode


def waiting(pid):
    return q1("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,), db="postgres") == "Lock"


def balances():
    """A balance row for every worker, so that applying any fee updates one."""
    q("INSERT INTO popug.balance (account_id, amount) SELECT id, 0 FROM popug.account WHERE role = 'worker' "
      "ON CONFLICT DO NOTHING", db=DB)


def dead_letters():
    return q1("SELECT count(*) FROM popug.dead_letter", db=DB)


def payments():
    return q1("SELECT count(*) FROM popug.payment", db=DB)


@pytest.mark.parametrize("setup, want, cancel", [
    (["SET statement_timeout = '300ms'"], "57014", False),
    (["SET lock_timeout = '300ms'"], "55P03", False),
    ([], "57014", True),
], ids=["statement_timeout", "lock_timeout", "pg_cancel_backend"])
def test_blocked_apply(errors_db, setup, want, cancel):
    """payments_apply, blocked by another session's obstacle: fails with want,
    sets nothing aside, writes nothing; applies everything once it is gone."""
    tasks(3)
    before = payments()
    holder = connect(DB, autocommit=False)
    holder.cursor().execute(BILLING_LOCK)
    a = session()
    for s in setup:
        a.cursor().execute(s)
    t = Background(sqlstate, a, "SELECT popug.payments_apply()")
    if cancel:
        assert wait_for(lambda: waiting(a.get_backend_pid()), 10, 0.02), "payments_apply waits for the billing lock"
        q("SELECT pg_cancel_backend(%s)", (a.get_backend_pid(),), db="postgres")
    t.join(30)
    assert t.result == want, "payments_apply fails with its own SQLSTATE"
    assert dead_letters() == 0, "no event was set aside as a dead letter"
    assert payments() == before, "no payment was written"
    holder.rollback()
    holder.close()
    a.cursor().execute("RESET ALL")
    assert sqlstate(a, "SELECT popug.payments_apply()") == "ok", "once the obstacle is gone, it runs"
    assert payments() == before + 3, "and applies the three fees"
    a.close()


def test_deadlock_between_a_balance_row_and_the_billing_lock(errors_db):
    tasks(2)
    balances()
    before = payments()
    holder = connect(DB, autocommit=False)
    holder.cursor().execute("SET deadlock_timeout = '60s'")
    holder.cursor().execute("SELECT * FROM popug.balance FOR UPDATE")
    a = session()
    a.cursor().execute("RESET ROLE")
    a.cursor().execute("SET deadlock_timeout = '2s'")
    a.cursor().execute("SET ROLE t_ee_acc")
    t = Background(sqlstate, a, "SELECT popug.payments_apply()")
    assert wait_for(lambda: waiting(a.get_backend_pid()), 10, 0.02), \
        "deadlock: payments_apply, holding the billing lock shared, waits for a balance row"
    h = Background(sqlstate, holder, BILLING_LOCK)
    t.join(30)
    assert t.result == "40P01", "deadlock: payments_apply fails with 40P01"
    h.join(30)
    assert h.result == "ok", "deadlock: the other session then gets the billing lock"
    assert dead_letters() == 0, "deadlock: no event was set aside"
    assert payments() == before, "deadlock: no payment was written"
    holder.rollback()
    holder.close()
    assert (sqlstate(a, "SELECT popug.payments_apply()")) == ("ok"), "deadlock: then it runs"
    assert payments() == before + 2, "deadlock: and applies both fees"
    a.close()


def test_serialization_failure_over_a_balance_changed_after_the_snapshot(errors_db):
    tasks(2)
    balances()
    before = payments()
    a = session()
    a.autocommit = False
    a.cursor().execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    a.cursor().execute("SELECT count(*) FROM popug.my_balance")
    q("UPDATE popug.balance SET updated_at = now()", db=DB)
    assert sqlstate(a, "SELECT popug.payments_apply()") == "40001", \
        "serialization failure: payments_apply in REPEATABLE READ over a balance changed since its snapshot " \
        "fails with 40001"
    a.rollback()
    assert dead_letters() == 0, "serialization failure: no event was set aside"
    assert payments() == before, "serialization failure: no payment was written"
    a.autocommit = True
    assert sqlstate(a, "SELECT popug.payments_apply()") == "ok", "serialization failure: retried, it runs"
    assert payments() == before + 2, "serialization failure: and applies both fees"
    a.close()


def test_the_worker_under_cluster_wide_repeatable_read(popug):
    ensure_roles("t_ee_m", "t_ee_w")
    q("SELECT popug.account_create('t_ee_m', 'm@example.com', 'manager')")
    q("SELECT popug.account_create('t_ee_w', 'w@example.com', 'worker')")
    q("ALTER SYSTEM SET default_transaction_isolation = 'repeatable read'", db="postgres")
    q("SELECT pg_reload_conf()", db="postgres")
    time.sleep(0.5)
    stop = time.time() + 4

    def stopped():
        return time.time() >= stop

    threads = [Background(calls_as, "t_ee_m", "SELECT popug.task_create('Steady work')", stopped, (), 0.005),
               Background(calls_as, "t_ee_w", "SELECT popug.task_complete(id) FROM "
                          "(SELECT id FROM popug.my_tasks WHERE status = 'open' LIMIT 1) t", stopped, (), 0.005)]
    assert wait_for(lambda: q1("SELECT count(*) FROM popug.payment WHERE kind = 'complete_reward'") > 0, 10, 0.05), \
        "under default_transaction_isolation = 'repeatable read' the worker applies fees and rewards"
    # under repeatable read a payout step whose balances the worker changed
    # meanwhile fails with 40001 (it reaches the caller); the caller
    # runs it again, as a pg_cron job or the scheduler would, and it goes on
    # from the last committed step
    payout = connect()
    for attempt in range(50):
        state = sqlstate(payout, "CALL popug.payout_run(current_date)")
        if state != "40001":
            break
        payout.rollback()
        time.sleep(0.1)
    assert state == "ok", "the payout finishes under repeatable read, retried on serialization failures only"
    for t in threads:
        t.join()
    assert all(t.error is None for t in threads), \
        "tasks were created and completed under repeatable read throughout: %s" % [t.error for t in threads]
    print("%d tasks created, %d completed while the payout ran" % (threads[0].result, threads[1].result))
    assert wait_for(lambda: q1("SELECT pending FROM popug.consumer_lag WHERE consumer = 'accounting'") == 0,
                    30, 0.1), "the worker drains the stream"
    assert q1("SELECT count(*) FROM popug.event e WHERE e.event_name IN ('TaskAssigned', 'TaskCompleted') "
              "AND NOT EXISTS (SELECT FROM popug.payment p WHERE p.event_id = e.event_id)") == 0, \
        "every fee and reward was applied"
    assert q1("SELECT count(*) FROM popug.payout") > 0, "the payout paid someone"
    assert q1("SELECT count(*) FROM popug.payment p, popug.billing_day d WHERE p.kind <> 'payout' "
              "AND p.billing_day <= d.day AND p.applied_at > (SELECT min(paid_at) FROM popug.payout)") == 0, \
        "no payment applied after the payout began paying counts on the day it closed"
    assert q1("SELECT count(*) FROM popug.billing_day d, popug.account a "
              "WHERE (SELECT sum(credit - debit) FROM popug.payment p "
              "       WHERE p.account_id = a.id AND p.billing_day <= d.day) > 0") == 0, \
        "no account is owed anything for the closed day"
    assert q1("SELECT count(*) FROM popug.dead_letter") == 0, "no dead letters"
