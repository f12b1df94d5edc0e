"""The payout under real crashes (SPEC 5): 100,000 accounts, batches of
1,000; kill -9 of the backend running CALL popug.payout_run mid-way, then
the whole server stopped with pg_ctl -m immediate mid-way; each rerun
finishes the day and pays every account exactly once.  Then a payout while
tasks are created and completed and the accounting worker applies them,
and the invariants of SPEC 4.
POPUG_PAYOUT_ACCOUNTS sets the number of accounts."""
import datetime
import os
import signal
import sys
import time

import psycopg2

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from conftest import cluster_restart  # noqa: E402
from helpers import Background, calls_as, connect, ensure_roles, q, q1, wait_for, wait_workers  # noqa: E402

N = int(os.environ.get("POPUG_PAYOUT_ACCOUNTS", "100000"))
BATCH = 1000


def up():
    try:
        return q1("SELECT 1") == 1
    except psycopg2.Error:
        return False


def add_day(day):
    """One payment per account on day: 70% earn, 20% owe, 10% net zero."""
    q("""WITH a AS (SELECT id, row_number() OVER (ORDER BY login) AS i FROM popug.account WHERE login LIKE 'pc\\_%%'),
          p AS (SELECT id, CASE WHEN i %% 10 < 7 THEN (i %% 50) + 1.25 ELSE 0 END AS credit,
                           CASE WHEN i %% 10 IN (7, 8) THEN (i %% 30) + 0.5 ELSE 0 END AS debit FROM a),
          ins AS (INSERT INTO popug.payment (id, account_id, kind, debit, credit, description, occurred_at, billing_day)
                  SELECT gen_random_uuid(), id, 'complete_reward', debit, credit, 'test', now(), %s FROM p)
       INSERT INTO popug.balance AS b (account_id, amount) SELECT id, credit - debit FROM p
       ON CONFLICT (account_id) DO UPDATE SET amount = b.amount + excluded.amount""", (day,))


def run_and_crash(day, crash):
    """Starts CALL payout_run(day) and crashes it once a few batches are paid."""
    c = connect()
    c.cursor().execute("SET popug.payout_batch_size = %s", (BATCH,))
    with c.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]

    def call():
        c.cursor().execute("CALL popug.payout_run(%s)", (day,))

    t = Background(call)
    assert wait_for(lambda: q1("SELECT count(*) FROM popug.payout WHERE billing_day = %s", (day,)) >= 5 * BATCH,
                    120, 0.01), \
        "the payout of %s is under way in batches" % day
    crash(pid)
    t.join()
    assert t.error is not None, \
        "and the crash cut it short"
    assert wait_for(up, 60, 0.2), \
        "the server is back"
    wait_workers()
    paid = q1("SELECT count(*) FROM popug.payout WHERE billing_day = %s", (day,))
    print("%d accounts paid before the crash" % paid)
    assert 0 < paid < expected(day)[0], \
        "part of the day was paid"
    upto = "(SELECT paid_upto FROM popug.billing_day WHERE day = %s)"
    assert q1("SELECT count(*) FROM popug.balance WHERE account_id <= " + upto, (day,)) % BATCH == 0, \
        "in whole committed batches of accounts"
    assert q1("SELECT count(*) FROM (SELECT account_id FROM popug.payment WHERE billing_day <= %s"
              " AND NOT (kind = 'payout' AND billing_day = %s) GROUP BY 1 HAVING sum(credit - debit) > 0) x"
              " WHERE account_id <= " + upto, (day, day, day)) == paid, \
        "every account owed up to where the batches got was paid, and nobody after"


def expected(day):
    """Accounts owed for day and the total, as of before its payout."""
    return q("SELECT count(*), sum(s) FROM (SELECT account_id, sum(credit - debit) AS s FROM popug.payment "
             "WHERE billing_day <= %s GROUP BY 1) x WHERE s > 0", (day,))[0]


def check_day(day, owed):
    assert q1("SELECT closed_at IS NOT NULL FROM popug.billing_day WHERE day = %s", (day,)) is True, \
        "%s is closed" % day
    assert list(q("SELECT count(*), sum(amount) FROM popug.payout WHERE billing_day = %s",
                  (day,))[0]) == list(owed), \
        "every account owed was paid, the total matches (%d accounts)" % owed[0]
    assert q1("SELECT count(*) FROM popug.payment WHERE kind = 'payout' AND billing_day = %s", (day,)) == owed[0], \
        "one payout payment each: nobody paid twice"
    assert list(q("SELECT accounts_paid, total_paid FROM popug.billing_day WHERE day = %s",
                  (day,))[0]) == list(owed), \
        "billing_day records the totals"
    assert q1("SELECT count(*) FROM (SELECT account_id FROM popug.payment WHERE billing_day <= %s "
              "GROUP BY 1 HAVING sum(credit - debit) > 0) x", (day,)) == 0, \
        "every account's payments up to %s sum to zero or less" % day
    assert q1("SELECT count(*) FROM popug.balance b WHERE amount <> (SELECT sum(credit - debit) FROM popug.payment p "
              "WHERE p.account_id = b.account_id)") == 0, \
        "each balance is the sum of its payments"


def test_payout_under_crashes_and_load(popug):
    q("ALTER SYSTEM SET popug.payout_at = ''")
    q("SELECT pg_reload_conf()")
    q("INSERT INTO popug.account (login, email, role) SELECT 'pc_' || i, 'pc' || i || '@example.com', 'worker' "
      "FROM generate_series(1, %s) i", (N,))
    today = q1("SELECT (now() AT TIME ZONE 'UTC')::date")
    d1, d2, d3 = (today - datetime.timedelta(days=k) for k in (2, 1, 0))
    add_day(d1)
    owed1 = expected(d1)
    print("%d accounts, %d owed %s on %s" % (N, owed1[0], owed1[1], d1))

    # ---- kill -9 of the backend running the payout ----
    run_and_crash(d1, lambda pid: os.kill(pid, signal.SIGKILL))
    q("CALL popug.payout_run(%s)", (d1,))
    check_day(d1, owed1)
    before = q1("SELECT count(*) FROM popug.event")
    q("CALL popug.payout_run(%s)", (d1,))
    assert q1("SELECT count(*) FROM popug.event") == before, \
        "a rerun after completion does nothing"

    # ---- the whole server stopped with -m immediate ----
    add_day(d2)
    owed2 = expected(d2)
    run_and_crash(d2, lambda pid: cluster_restart(popug, "immediate"))
    q("CALL popug.payout_run(%s)", (d2,))
    check_day(d2, owed2)

    # ---- a payout while tasks come and go and the accounting worker runs ----
    ensure_roles("t_pm", "t_pw1", "t_pw2")
    q("SELECT popug.account_create('t_pm', 'pm@example.com', 'manager')")
    for w in ("t_pw1", "t_pw2"):
        q("SELECT popug.account_create(%s, %s, 'worker')", (w, w + "@example.com"))
    add_day(d3)
    stop = time.time() + 600

    def stopped():
        return time.time() >= stop

    refused = ("42501", "55000")
    makers = [Background(calls_as, "t_pm", "SELECT popug.task_create('During the payout')", stopped, refused)] + \
        [Background(calls_as, w, "SELECT popug.task_complete(id) FROM popug.my_tasks WHERE status = 'open' LIMIT 1",
                    stopped, refused)
         for w in ("t_pw1", "t_pw2")]
    time.sleep(1)
    c = connect()
    c.cursor().execute("SET popug.payout_batch_size = 2000")
    c.cursor().execute("CALL popug.payout_run(%s)", (d3,))
    stop = time.time() + 1
    for t in makers:
        t.join()
    assert all(t.error is None for t in makers), \
        "tasks were created and completed throughout"
    assert wait_for(lambda: q1("SELECT pending FROM popug.consumer_lag WHERE consumer = 'accounting'") == 0,
                    60, 0.2), \
        "the accounting worker caught up"
    assert q1("SELECT count(*) FROM (SELECT account_id FROM popug.payment p "
              "JOIN popug.billing_day d ON p.billing_day <= d.day "
              "GROUP BY account_id, d.day HAVING sum(credit - debit) > 0) x") == 0, \
        "for every closed day D, each account's payments up to D sum to zero or less"
    assert q1("SELECT count(*) FROM popug.balance b WHERE amount <> (SELECT sum(credit - debit) FROM popug.payment p "
              "WHERE p.account_id = b.account_id)") == 0, \
        "each balance is still the sum of its payments"
    assert q1("SELECT count(*) FROM popug.payment WHERE billing_day > %s", (d2,)) > 0, \
        "payments applied after the payout started count on the next day"
    assert q1("SELECT count(*) FROM popug.billing_day WHERE closed_at IS NOT NULL") == 3, \
        "three days closed"
