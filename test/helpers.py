"""Connection helpers for popug's Python tests: connections, one-statement
queries, roles, ports, polling and threads.  PGHOST and PGPORT say which
cluster: the one conftest.py started for the test (or, for test/sim, the
one test/run.sh started).  Tests use the database popug, where the
background workers run.
"""
import os
import socket
import threading
import time

import psycopg2

DB = "popug"


def connect(db=DB, autocommit=True, user=None, **kw):
    conn = psycopg2.connect(dbname=db, user=user or "postgres",
                            host=os.environ["PGHOST"], port=os.environ["PGPORT"], **kw)
    conn.autocommit = autocommit
    return conn


def q(sql, args=None, db=DB):
    """Runs one statement in a new autocommit connection; returns all rows."""
    conn = connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def q1(sql, args=None, db=DB):
    rows = q(sql, args, db)
    return rows[0][0] if rows else None


def wait_workers(timeout=30):
    """Waits until every registered popug worker is attached and past start-up."""
    return wait_for(lambda: q1("SELECT count(*) = 0 FROM popug.worker_status "
                               "WHERE pid IS NULL OR state = 'starting'"), timeout, 0.1)


def ensure_roles(*names):
    for r in names:
        q("DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s) "
          "THEN EXECUTE format('CREATE ROLE %%I LOGIN', %s); END IF; END$$", (r, r))


def free_port():
    """A TCP port free on 127.0.0.1 now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout=10.0, step=0.02):
    """Polls pred() until it is true or timeout seconds pass; returns its last value."""
    end = time.time() + timeout
    while True:
        v = pred()
        if v or time.time() > end:
            return v
        time.sleep(step)


class Background(threading.Thread):
    """Runs fn(*args) in a thread and keeps its result or exception."""

    def __init__(self, fn, *args):
        super().__init__(daemon=True)
        self.fn, self.args, self.result, self.error = fn, args, None, None
        self.start()

    def run(self):
        try:
            self.result = self.fn(*self.args)
        except Exception as e:  # reported by the test
            self.error = e


def calls_as(role, sql, until, refused=(), pause=0.0):
    """Runs sql as role (SET ROLE on a connection of its own) again and
    again until until() is true, pausing pause seconds between calls;
    returns how many rows the calls returned.  A call refused with a
    SQLSTATE in refused counts nothing; any other error is raised."""
    c = connect()
    c.cursor().execute("SET ROLE %s" % role)
    n = 0
    while not until():
        try:
            with c.cursor() as cur:
                cur.execute(sql)
                n += cur.rowcount
        except psycopg2.Error as e:
            if e.pgcode not in refused:
                raise
        time.sleep(pause)
    c.close()
    return n
