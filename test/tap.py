"""TAP output for test/sim/sim.py, which prove runs on test/run.sh's
cluster: the randomized run kills and restarts that cluster itself, and
starts each epoch from a fresh popug in it (reset_popug).
"""
import sys
import time

import psycopg2.errors

from helpers import DB, q

_n = 0
_failed = 0


def ok(cond, name, diag=None):
    """One TAP assertion."""
    global _n, _failed
    _n += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (_n, name), flush=True)
    if not cond:
        _failed += 1
        if diag is not None:
            print("#   %s" % str(diag).replace("\n", "\n#   "), flush=True)
    return cond


def note(msg):
    print("# " + str(msg), flush=True)


def done():
    print("1..%d" % _n, flush=True)
    sys.exit(1 if _failed else 0)


def reset_popug(db=DB):
    """A fresh popug in db without dropping the database the workers use.
    DROP EXTENSION takes its locks one table at a time, so it can deadlock
    with a worker's pass still draining the previous test's events; the
    deadlock detector then cancels the DROP, and it is tried again."""
    for attempt in range(10):
        try:
            q("DROP EXTENSION IF EXISTS popug CASCADE", db=db)
            break
        except psycopg2.errors.DeadlockDetected:
            time.sleep(0.5)
    q("CREATE EXTENSION popug", db=db)
