"""Events across real connections (SPEC 3): many producers committing in
random order while a consumer reads (none skipped, none twice, per
aggregate order), coalesced LISTEN/NOTIFY, and producers that never take
the NOTIFY lock.  A late-committing producer against a consumer's read
and acknowledgement, and redelivery of an unacknowledged batch, are
played step by step in specs/events_late_commit.spec."""
import os
import random
import select
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import Background, connect, q, q1, wait_for  # noqa: E402


def append(cur, name, n=0, agg=None):
    cur.execute("SELECT popug.event_append(%s, 1, 'itest', %s, jsonb_build_object('n', %s::int))",
                (name, agg, n))
    return cur.fetchone()[0]


def read(conn, consumer="itest", max_events=1000):
    with conn.cursor() as cur:
        cur.execute("SELECT id, event_name, aggregate_id::text, (payload->>'n')::int "
                    "FROM popug.events_read(%s, %s) ORDER BY id", (consumer, max_events))
        return cur.fetchall()


def ack(conn, consumer="itest"):
    with conn.cursor() as cur:
        cur.execute("SELECT popug.events_ack(%s)", (consumer,))
        return cur.fetchone()[0]


def test_many_producers_with_random_commit_delays_and_a_consumer(popug):
    q("SELECT popug.consumer_create('itest')")
    producers, per = 8, 40
    aggs = [str(uuid.uuid4()) for _ in range(producers)]

    def produce(i):
        conn = connect(autocommit=False)
        cur = conn.cursor()
        for n in range(per):
            append(cur, "Load", n, aggs[i])
            if random.random() < 0.5:
                time.sleep(random.random() * 0.01)   # hold the transaction open a little
            conn.commit()
        conn.close()

    threads = [Background(produce, i) for i in range(producers)]
    consumed = []
    c = connect()
    while any(t.is_alive() for t in threads):
        consumed += read(c, max_events=7)
        ack(c)
    for t in threads:
        t.join()
    while True:
        batch = read(c, max_events=7)
        if not batch:
            break
        consumed += batch
        ack(c)
    assert [t.error for t in threads if t.error] == [], "producers ran without errors"
    load = [x for x in consumed if x[1] == "Load"]
    assert len(load) == producers * per, "every committed event was consumed"
    assert len(set(x[0] for x in load)) == len(load), "none twice after acknowledgement"
    assert all([x[3] for x in load if x[2] == g] == list(range(per)) for g in aggs), \
        "events of each aggregate arrived in order"


def drain_notifies(listener, timeout):
    """Notifications listener receives within timeout seconds."""
    got = 0
    end = time.time() + timeout
    while time.time() < end:
        if select.select([listener], [], [], max(0, end - time.time())) != ([], [], []):
            listener.poll()
            got += len(listener.notifies)
            listener.notifies.clear()
    return got


def test_listen_popug_events_notified_soon_after_a_commit_and_coalesced(popug):
    listener = connect()
    listener.cursor().execute("LISTEN popug_events")
    drain_notifies(listener, 0.3)
    t0 = time.time()
    append(connect().cursor(), "Ping")
    arrived = None
    while time.time() - t0 < 5:
        if select.select([listener], [], [], 0.05) != ([], [], []):
            listener.poll()
            if listener.notifies:
                arrived = time.time() - t0
                listener.notifies.clear()
                break
    assert arrived is not None, "a LISTENing client is notified after a commit"
    print("notification arrived after %.1f ms" % (arrived * 1000))
    drain_notifies(listener, 0.2)

    commits = 200

    def burst(k):
        conn = connect()
        cur = conn.cursor()
        for n in range(commits // 4):
            append(cur, "Burst", n)
        conn.close()

    bursts = [Background(burst, k) for k in range(4)]
    got = drain_notifies(listener, 2.0)
    for t in bursts:
        t.join()
    got += drain_notifies(listener, 0.3)
    assert 1 <= got < commits // 2, "%d commits caused %d notifications: coalesced" % (commits, got)


def test_events_of_another_database_wake_nothing_here(popug):
    # popug's workers serve popug.database; an extension installed in a
    # second database is served by no worker, and its commits must neither
    # notify this database's listeners nor run this database's workers
    q("CREATE DATABASE other", db="postgres")
    q("CREATE EXTENSION popug", db="other")
    listener = connect()
    listener.cursor().execute("LISTEN popug_events")
    drain_notifies(listener, 0.3)
    passes = q1("SELECT sum(processed) FROM popug.worker_status WHERE worker = 'notifier'")
    other = connect(db="other")
    for n in range(20):
        append(other.cursor(), "Elsewhere", n)
    assert drain_notifies(listener, 1.0) == 0, "events in database other notify no listener in popug"
    assert q1("SELECT sum(processed) FROM popug.worker_status WHERE worker = 'notifier'") == passes, \
        "nor wake popug's notifier"
    append(connect().cursor(), "Here")
    assert wait_for(lambda: drain_notifies(listener, 0.1) > 0, 5), "an event in popug still notifies (the control)"
    other.close()


def test_producers_do_not_take_the_notify_lock(popug):
    # A transaction that NOTIFYs holds PostgreSQL's notify lock from
    # pre-commit until its commit completes.  With synchronous_standby_names
    # naming a standby that never comes, such a commit waits forever,
    # holding the lock.
    q("CREATE DATABASE popug_scratch", db="postgres")
    q("ALTER SYSTEM SET synchronous_commit = 'local'")
    q("ALTER SYSTEM SET synchronous_standby_names = 'popug_phantom'")
    q("SELECT pg_reload_conf()")
    time.sleep(0.3)
    holder = connect()
    holder_pid = holder.get_backend_pid()

    def hold_notify_lock():
        cur = holder.cursor()
        cur.execute("SET synchronous_commit = on")
        cur.execute("BEGIN")
        cur.execute("CREATE TEMP TABLE hold (x int)")  # WAL, so its commit waits
        cur.execute("NOTIFY popug_block")
        cur.execute("COMMIT")                      # waits for the phantom standby

    def produce_once():
        conn = connect()
        append(conn.cursor(), "WhileLocked")
        conn.close()

    def notify_once():
        conn = connect()
        conn.cursor().execute("NOTIFY popug_other")
        conn.close()

    def drop_scratch():
        q("DROP DATABASE popug_scratch", db="postgres")

    h = Background(hold_notify_lock)
    assert wait_for(lambda: q1("SELECT wait_event FROM pg_stat_activity WHERE pid = %s",
                               (holder_pid,)) == "SyncRep", 10), \
        "a notifying commit is stuck holding the notify lock"
    p = Background(produce_once)
    p.join(5)
    assert not p.is_alive() and p.error is None, "a producer commits while the notify lock is held"
    # The notifier's own commit now waits for the lock; DROP DATABASE's
    # ProcSignalBarrier arrives meanwhile and must be absorbed once it is free.
    assert wait_for(lambda: q1("SELECT wait_event_type FROM pg_stat_activity "
                               "WHERE backend_type = 'popug notifier'") == "Lock", 5), \
        "the notifier's commit waits for the notify lock"
    d = Background(drop_scratch)
    n = Background(notify_once)
    n.join(1.5)
    assert n.is_alive(), "while a transaction that NOTIFYs itself waits for the lock (the control)"
    q("SELECT pg_cancel_backend(%s)", (holder_pid,))
    h.join(10)
    n.join(10)
    assert not n.is_alive(), "the control commits once the lock is released"
    d.join(10)
    assert not d.is_alive() and d.error is None, "DROP DATABASE completes once the notifier's lock wait is over"
