"""Model-based randomized run of the whole system with crashes (issue 15).

A seeded generator drives random operations over several real connections,
one per account's role (each connects as its own login), against the test
cluster and its workers: account creation, role changes, deactivations,
task creation with and without a Jira id, imported TaskCreated v1 events
(well-formed, and malformed ones that must become dead letters),
completions by the right and the wrong account, shuffles, payments_apply,
payout_run of any day, mail dispatch against test/smtp_server.py in
ok/4xx/5xx/down modes, events_read/events_ack by an external consumer,
dead_letter_retry, and refused calls of every kind SPEC names.  Faults are
injected at random points: kill -9 of a client backend in the middle of a
call, of each popug worker, of the postmaster (the cluster is then started
again, as run.sh expects it), a payout stopped at a batch (a balance row
it must update is held locked, then its backend or the postmaster is
killed), the SMTP server stopped and started.

The driver is sequential, so its model predicts every call's outcome
exactly: the SQLSTATE of a refused call (which must write nothing), or the
events a committed call writes (read back by its transaction id).  A call
cut short by a crash has an unknown outcome: its transaction id, taken
first, is looked up with pg_xact_status() and the model follows what the
database says.  After every step the step's own checks run; every
POPUG_SIM_CHECK_EVERY steps, after every crash and at the end, the full
checks compare the whole database with the model (see full_check()).

  POPUG_SIM_SEED=N      replay run N (the seed is printed first)
  POPUG_SIM_SECONDS=S   run for S seconds (default 100)
  POPUG_SIM_STEPS=N     stop after N steps (with no SECONDS: no time limit)
  POPUG_SIM_CRASH=P     probability of a fault per step (default 0.006)

Each line of test/sim/seeds is a seed and a step count: runs that found a
defect, replayed first.  The workers' timing is not replayed, so a replay
repeats the operations, not every interleaving.
"""
import collections
import datetime
import hashlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from decimal import Decimal

import psycopg2
import psycopg2.errors

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from helpers import connect, wait_for, wait_workers  # noqa: E402
from tap import done, note, ok, reset_popug  # noqa: E402

PG_BIN = os.environ["PG_BIN"]
PGDATA = os.environ["PGDATA"]
WORK = os.environ.get("POPUG_WORK", "/tmp")
RECORD = os.path.join(WORK, "sim-mail.jsonl")
CHECK_EVERY = int(os.environ.get("POPUG_SIM_CHECK_EVERY", "400"))
CRASH_P = float(os.environ.get("POPUG_SIM_CRASH", "0.006"))
MAX_ACCOUNTS = 40
MAX_OPEN = 60
LOST = ("08000", "08003", "08006", "57P01", "57P02", "57P03")
PRODUCED = ("AccountCreated", "AccountRoleChanged", "AccountDeactivated",
            "TaskCreated", "TaskAssigned", "TaskCompleted")
ROLES = ("admin", "manager", "accountant", "worker")
PAYOUT_TZ = "<+167>-167"    # a week ahead: days to pay out (see payout_setup)
EPOCH = int(os.environ.get("POPUG_SIM_EPOCH", "1500"))
CENT = Decimal("0.01")


class Failure(Exception):
    """A check failed: the run stops and prints its seed."""


def check(cond, what, diag=None):
    if not cond:
        raise Failure("%s%s" % (what, "" if diag is None else "\n%s" % (diag,)))


def pay_id(*parts):
    """A payment's id: md5 of its parts joined by '|', as a uuid (SPEC 4)."""
    return uuid.UUID(hashlib.md5("|".join(str(p) for p in parts).encode()).hexdigest())


_su = [None]


def q(sql, args=None):
    """One statement on the driver's own superuser connection; all rows."""
    if _su[0] is None or _su[0].closed:
        _su[0] = connect()
    try:
        with _su[0].cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else None
    except (psycopg2.OperationalError, psycopg2.InterfaceError):
        _su[0].close()
        raise


def q1(sql, args=None):
    rows = q(sql, args)
    return rows[0][0] if rows else None


def as_postgres(*cmd):
    if os.geteuid() == 0:
        cmd = ("runuser", "-u", "postgres", "--") + cmd
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


# ---- the cluster and its faults ----

def server_up():
    try:
        return q1("SELECT 1") == 1
    except psycopg2.Error:
        return False


def postmaster_pid():
    with open(os.path.join(PGDATA, "postmaster.pid")) as f:
        return int(f.readline())


def children(pid):
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def kill_backend(pid):
    """kill -9 of one of the postmaster's children; returns once the
    postmaster has ended all the others (its crash restart has begun)."""
    kids = children(postmaster_pid())
    os.kill(pid, signal.SIGKILL)
    check(wait_for(lambda: not any(alive(k) for k in kids), 60, 0.02),
          "the postmaster ends every backend after a kill -9")


def kill_postmaster():
    """kill -9 of the postmaster; its children exit on their own (postmaster
    death), then the cluster is started again."""
    pid = postmaster_pid()
    kids = children(pid)
    os.kill(pid, signal.SIGKILL)
    check(wait_for(lambda: not any(alive(k) for k in kids + [pid]), 60, 0.05),
          "the postmaster's children exit after its kill -9")
    for _ in range(20):
        if as_postgres(os.path.join(PG_BIN, "pg_ctl"), "-D", PGDATA, "-l",
                       os.path.join(os.environ["PGHOST"], "server.log"), "-w", "-t", "60", "start") == 0:
            break
        time.sleep(0.5)


class Smtp:
    """test/smtp_server.py in mode ok or 4xx, or stopped (down)."""

    def __init__(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.proc, self.mode = None, "down"

    def set(self, mode):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        if mode != "down":
            self.proc = subprocess.Popen(
                ["/usr/bin/python3", os.path.join(HERE, "..", "smtp_server.py"), "--port", str(self.port),
                 "--record", RECORD, "--mode", mode], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            check(wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", self.port)) == 0, 10, 0.05),
                  "the SMTP server starts")
        self.mode = mode

    def received(self):
        if not os.path.exists(RECORD):
            return []
        with open(RECORD) as f:
            return [json.loads(line) for line in f if line.strip()]


# ---- connections ----

class Conns:
    """One autocommit connection per login, as that login; a few kept."""

    def __init__(self):
        self.conns = collections.OrderedDict()

    def get(self, login):
        c = self.conns.pop(login, None)
        if c is None or c.closed:
            c = connect(user=login)
        self.conns[login] = c
        while len(self.conns) > 40:
            self.conns.popitem(last=False)[1].close()
        return c

    def drop(self):
        for c in self.conns.values():
            c.close()
        self.conns.clear()


class Outcome:
    """What a call did: ok (rows), err (sqlstate, message) or lost."""

    def __init__(self, kind, rows=None, code=None, msg=None, xid=None):
        self.kind, self.rows, self.code, self.msg, self.xid = kind, rows, code, msg, xid

    def __repr__(self):
        return "<%s %s %s>" % (self.kind, self.code or "", (self.msg or "").strip()[:200])


# ---- the model ----

class Account:
    def __init__(self, id, login, email, role):
        self.id, self.login, self.email, self.role, self.active = id, login, email, role, True


class Task:
    def __init__(self, id, fee, reward, created_at, imported=False):
        self.id, self.fee, self.reward, self.created_at, self.imported = id, fee, reward, created_at, imported
        self.status, self.assignee = "open", None


class Sim:
    def __init__(self, seed):
        self.seed = seed
        self.rnd = random.Random(seed)
        self.conns = Conns()
        self.smtp = Smtp()
        self.steps = 0
        self.epochs = 0
        self.token = 0
        self.crashes = collections.Counter()
        self.refused = 0
        self.ops = collections.Counter()

    def new_epoch(self):
        """A fresh model, for a fresh popug (see run())."""
        self.accounts = {}              # id -> Account
        self.tasks = {}                 # id -> Task
        self.produced = collections.Counter()   # event name -> count (auth and tasks)
        self.imported = 0               # events imported with producer 'legacy'
        self.payments = {}              # expected non-payout payment id -> (account, task, kind, debit, credit, event)
        self.dead = set()               # event ids accounting must set aside
        self.walks = collections.defaultdict(list)  # day -> [(walked after account, {account: role})]
        self.closed_upto = None         # every day up to it is closed (by a committed payout_run)
        self.delivered = []             # events the external consumer acknowledged, in order
        self.batch = None               # its batch read but not acknowledged
        self.ack_unknown = False
        self.n = 0                      # logins are sim_<n>: roles are kept from epoch to epoch
        self.crashes_before = sum(self.crashes.values())

    # -- helpers --

    def uniq(self):
        self.n += 1
        return self.n

    def active(self, *roles):
        return [a for a in self.accounts.values() if a.active and (not roles or a.role in roles)]

    def workers(self):
        return {a.id for a in self.active("worker")}

    def pick(self, seq):
        seq = list(seq)
        return self.rnd.choice(seq) if seq else None

    def call(self, login, sql, args=None, tx=True, crash=None, setup=()):
        """Runs sql as login; with tx, inside BEGIN/COMMIT after inserting
        the transaction's marker row (see setup()).  crash: a function run
        in its middle that kills; setup: statements run first."""
        try:
            c = self.conns.get(login)
        except psycopg2.OperationalError as e:
            raise Failure("cannot connect as %s: %s" % (login, e))
        res = {}
        self.token += 1
        token = self.token

        def body():
            try:
                with c.cursor() as cur:
                    for s in setup:
                        cur.execute(s)
                    if tx:
                        cur.execute("BEGIN")
                        cur.execute("INSERT INTO public.sim_marker VALUES (%s, pg_current_xact_id())"
                                    " RETURNING xid::text", (token,))
                        res["xid"] = cur.fetchone()[0]
                    cur.execute(sql, args)
                    rows = cur.fetchall() if cur.description else None
                    if tx:
                        cur.execute("COMMIT")
                    res["out"] = Outcome("ok", rows=rows, xid=res.get("xid"))
            except psycopg2.Error as e:
                if e.pgcode is None or e.pgcode in LOST or c.closed:
                    res["out"] = Outcome("lost", code=e.pgcode, msg=str(e), xid=res.get("xid"))
                else:
                    try:
                        c.rollback()
                        if tx:
                            c.cursor().execute("ROLLBACK")
                    except psycopg2.Error:
                        pass
                    res["out"] = Outcome("err", code=e.pgcode, msg=e.pgerror, xid=res.get("xid"))

        if crash is None:
            body()
        else:
            pid = c.get_backend_pid()
            t = threading.Thread(target=body, daemon=True)
            t.start()
            crash(pid)
            t.join(120)
            check(not t.is_alive(), "a call returns after its crash")
            self.recover()
        out = res["out"]
        if setup and not c.closed and out.kind != "lost":
            c.cursor().execute("RESET ROLE; RESET ALL")
        if out.kind == "lost" and crash is None:
            raise Failure("a connection was lost with no fault injected: %r (%s)" % (out, sql))
        if out.kind == "lost" and tx:
            # Committed if its marker row is there.  (Not pg_xact_status: after
            # a crash, an xid that never reached the WAL on disk is handed out
            # again, to a transaction that may commit.)
            out.xid = q1("SELECT xid::text FROM public.sim_marker WHERE token = %s", (token,))
            out.kind, out.code, out.rows = ("ok", None, None) if out.xid else ("err", "crash", None)
        elif out.kind == "lost":
            out.kind, out.code = "err", "crash"     # not known: the database says
        return out

    def recover(self):
        """After a crash: every connection is gone; wait for the restart."""
        self.conns.drop()
        check(wait_for(server_up, 120, 0.1), "the server is back after a crash")
        check(wait_workers(60), "the workers are back after a crash")

    def events_of(self, xid):
        return [(r[0], r[1], r[2], r[3], json.loads(r[4], parse_float=Decimal))
                for r in q("SELECT id, event_id, event_name, event_version, payload::text FROM popug.event"
                           " WHERE txid = %s::xid8 ORDER BY id", (xid,))]

    def expect_events(self, out, want):
        """The call's transaction wrote exactly events want: [(name, {key: value})]."""
        got = self.events_of(out.xid)
        check([e[2] for e in got] == [w[0] for w in want], "a committed call writes exactly its events",
              (got, want))
        for e, (name, fields) in zip(got, want):
            for k, v in fields.items():
                check(k in e[4] and (v is Ellipsis or e[4][k] == v), "%s.%s is %r" % (name, k, v), e)
            self.produced[name] += 1
        return got

    def refused_ok(self, out, code, what):
        """A refused call: its SQLSTATE (None: a data error, class 22 or 23)."""
        check(out.kind == "err" and (out.code == code or code is None and out.code[:2] in ("22", "23")),
              "%s is refused with %s" % (what, code or "a data error"), out)
        self.refused += 1

    def fingerprint(self):
        return q("SELECT (SELECT COALESCE(max(id), 0) FROM popug.event),"
                 " (SELECT count(*) FROM popug.account), (SELECT md5(string_agg(a::text, ',' ORDER BY id)) FROM popug.account a),"
                 " (SELECT count(*) FROM popug.task), (SELECT count(*) FROM popug.task WHERE status = 'done'),"
                 " (SELECT md5(string_agg(id || assignee_id::text, ',' ORDER BY id)) FROM popug.task WHERE status = 'open'),"
                 " (SELECT md5(string_agg(b::text, ',' ORDER BY day)) FROM popug.billing_day b),"
                 " (SELECT count(*) FROM popug.payout),"
                 " (SELECT md5(string_agg(c::text, ',' ORDER BY name)) FROM popug.consumer c WHERE name = 'sim'),"
                 " (SELECT md5(string_agg(d::text, ',' ORDER BY event_id)) FROM popug.dead_letter d"
                 "   WHERE retried_at IS NOT NULL)")[0]

    def refused_call(self, login, sql, args, code, what, setup=()):
        """Runs a call that must be refused with code and write nothing."""
        before = self.fingerprint()
        out = self.call(login, sql, args, tx=False, setup=setup)
        self.refused_ok(out, code, what)
        after = self.fingerprint()
        check(q1("SELECT count(*) FROM popug.event WHERE id > %s AND producer <> 'accounting'", (before[0],)) == 0,
              "a refused call (%s) writes no event" % what)
        check(before[1:] == after[1:], "a refused call (%s) writes nothing" % what, (before, after))

    # -- operations --

    def admin_login(self):
        """An active admin's login, or the superuser (bootstrap) if none."""
        a = self.pick(self.active("admin"))
        return a.login if a else "postgres"

    def op_account_create(self, crash=None, role=None):
        k = self.uniq()
        login = "sim_%d" % k
        q("DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') THEN"
                " CREATE ROLE %s LOGIN; END IF; END$$" % (login, login))
        role = role or self.rnd.choices(ROLES, (2, 2, 1, 8))[0]
        email = ("fail5xx-%d@example.com" if self.rnd.random() < 0.15 else "u%d@example.com") % k
        full = self.pick([None, "Sim %d" % k, "Ünïcode %d" % k])
        out = self.call(self.admin_login(), "SELECT popug.account_create(%s, %s, %s, %s)::text",
                        (login, email, role, full), crash=crash)
        if out.kind == "err":
            check(out.code == "crash", "account_create succeeds", out)
            return
        if out.rows is None:
            got = self.events_of(out.xid)
            check(len(got) == 1, "a committed account_create wrote AccountCreated", got)
            id = got[0][4]["account_id"]
        else:
            id = out.rows[0][0]
        self.expect_events(out, [("AccountCreated", {"account_id": id, "login": login, "email": email,
                                                     "role": role, "full_name": full})])
        self.accounts[id] = Account(id, login, email, role)

    def op_set_role(self, crash=None):
        a = self.pick(self.accounts.values())
        role = self.rnd.choice(ROLES)
        out = self.call(self.admin_login(), "SELECT popug.account_set_role(%s, %s)", (a.id, role), crash=crash)
        if out.kind == "err":
            check(out.code == "crash", "account_set_role succeeds", out)
            return
        self.expect_events(out, [] if role == a.role else
                           [("AccountRoleChanged", {"account_id": a.id, "role": role, "old_role": a.role})])
        a.role = role

    def op_deactivate(self, crash=None):
        a = self.pick(self.accounts.values())
        out = self.call(self.admin_login(), "SELECT popug.account_deactivate(%s)", (a.id,), crash=crash)
        if out.kind == "err":
            check(out.code == "crash", "account_deactivate succeeds", out)
            return
        self.expect_events(out, [("AccountDeactivated", {"account_id": a.id})] if a.active else [])
        a.active = False

    def op_task_create(self, crash=None):
        by = self.pick(self.active())
        k = self.uniq()
        title = self.pick(["Task %d" % k, "Füttere die Papageien %d" % k, "任务 %d" % k])
        jira = self.pick([None, "SIM-%d" % k])
        desc = self.pick(["", "line one\nline two\t%d" % k])
        out = self.call(by.login, "SELECT popug.task_create(%s, %s, %s)::text", (title, desc, jira), crash=crash)
        workers = self.workers()
        if not workers and out.code != "crash":
            self.refused_ok(out, "55000", "task_create with no active worker")
            return
        if out.kind == "err":
            check(out.code == "crash", "task_create succeeds", out)
            return
        got = self.events_of(out.xid)
        check(len(got) == 2, "task_create writes two events", got)
        id = got[0][4]["task_id"]
        check(out.rows is None or out.rows[0][0] == id, "task_create returns its task's id")
        fee, reward = got[0][4]["assign_fee"], got[0][4]["complete_reward"]
        check(Decimal(10) <= fee <= 20 and Decimal(20) <= reward <= 40 and fee == fee.quantize(CENT)
              and reward == reward.quantize(CENT), "prices in range, two decimals", got[0])
        assignee = got[1][4]["assignee_id"]
        check(assignee in workers, "a new task goes to an active worker", (assignee, workers))
        self.expect_events(out, [
            ("TaskCreated", {"task_id": id, "jira_id": jira, "title": title, "description": desc,
                             "created_by": by.id}),
            ("TaskAssigned", {"task_id": id, "previous_assignee_id": None, "assign_fee": fee,
                              "reason": "create"})])
        t = Task(id, fee, reward, q1("SELECT created_at FROM popug.task WHERE id = %s", (id,)))
        self.tasks[id] = t
        self.assign(t, assignee, got[1][1])

    def assign(self, t, assignee, event_id):
        t.assignee = assignee
        self.payments[pay_id(event_id, "assign_fee", assignee)] = (assignee, t.id, "assign_fee", t.fee, 0, event_id)

    def op_task_complete(self, crash=None):
        open_ = [t for t in self.tasks.values() if t.status == "open" and not t.imported]
        r = self.rnd.random()
        if r < 0.75 and open_:      # by its assignee
            t = self.pick(open_)
            by = self.accounts[t.assignee]
        else:                       # by someone, maybe the wrong one, maybe done
            t = self.pick([t for t in self.tasks.values() if not t.imported])
            by = self.pick(self.accounts.values())
            if t is None:
                return
        args = (t.id,)
        if not by.active:
            code = "42501"
        elif t.assignee != by.id:
            code = "42501"
        elif t.status == "done":
            code = "55000"
        else:
            code = None
        if code:
            return self.refused_call(by.login, "SELECT popug.task_complete(%s)", args, code,
                                     "task_complete by the wrong account or of a done task")
        out = self.call(by.login, "SELECT popug.task_complete(%s)", args, crash=crash)
        if out.kind == "err":
            check(out.code == "crash", "task_complete succeeds", out)
            return
        got = self.expect_events(out, [("TaskCompleted", {"task_id": t.id, "assignee_id": by.id,
                                                          "complete_reward": t.reward})])
        t.status = "done"
        self.payments[pay_id(got[0][1], "complete_reward", by.id)] = (by.id, t.id, "complete_reward", 0, t.reward,
                                                                       got[0][1])

    def op_shuffle(self, crash=None):
        by = self.pick(self.active())
        open_ = {t.id: t for t in self.tasks.values() if t.status == "open" and not t.imported}
        workers = self.workers()
        if by.role not in ("admin", "manager"):
            return self.refused_call(by.login, "SELECT popug.tasks_shuffle()", None, "42501", "a shuffle by " + by.role)
        if not workers and open_:
            return self.refused_call(by.login, "SELECT popug.tasks_shuffle()", None, "55000",
                                     "a shuffle with no active worker")
        out = self.call(by.login, "SELECT popug.tasks_shuffle()", crash=crash)
        if out.kind == "err":
            check(out.code == "crash", "tasks_shuffle succeeds", out)
            return
        check(out.rows is None or out.rows[0][0] == len(open_), "a shuffle returns how many open tasks it moved",
              (out.rows, len(open_)))
        got = self.events_of(out.xid)
        check(sorted(e[4]["task_id"] for e in got) == sorted(open_), "a shuffle reassigns each open task once", got)
        want = []
        for e in got:
            t = open_[e[4]["task_id"]]
            check(e[4]["assignee_id"] in workers, "a shuffle assigns active workers only", e)
            want.append(("TaskAssigned", {"task_id": t.id, "previous_assignee_id": t.assignee,
                                          "assign_fee": t.fee, "reason": "shuffle", "assignee_id": ...}))
        self.expect_events(out, want)
        for e in got:
            self.assign(open_[e[4]["task_id"]], e[4]["assignee_id"], e[1])

    def op_import(self, crash=None):
        """TaskCreated v1 (title '[JIRA] text') and its TaskAssigned and
        TaskCompleted from an older producer, or a malformed one."""
        acc = self.pick(self.accounts.values())
        if acc is None:
            return
        k = self.uniq()
        tid = str(uuid.UUID(int=self.rnd.getrandbits(128), version=4))
        fee = Decimal(self.rnd.randint(1000, 2000)) / 100
        reward = Decimal(self.rnd.randint(2000, 4000)) / 100
        bad = None      # the index of the malformed event, if any
        events = [("TaskCreated", 1, {"task_id": tid, "title": "[OLD-%d] legacy %d" % (k, k), "description": "",
                                      "assign_fee": fee, "complete_reward": reward, "created_by": acc.id}),
                  ("TaskAssigned", 1, {"task_id": tid, "assignee_id": acc.id, "previous_assignee_id": None,
                                       "assign_fee": fee, "reason": "create"})]
        if self.rnd.random() < 0.5:
            events.append(("TaskCompleted", 1, {"task_id": tid, "assignee_id": acc.id, "complete_reward": reward}))
        if self.rnd.random() < 0.3:     # one of the money events is malformed
            bad = i = self.rnd.randrange(1, len(events))
            key = "assign_fee" if events[i][0] == "TaskAssigned" else "complete_reward"
            how = self.rnd.choice(["nan", "range", "cents", "unknown", "missing", "version"])
            p = dict(events[i][2])
            ver = events[i][1]
            if how == "nan":
                p[key] = "NaN"
            elif how == "range":
                p[key] = Decimal("99.00")
            elif how == "cents":
                p[key] = Decimal("15.005") if key == "assign_fee" else Decimal("25.005")
            elif how == "unknown":
                p["assignee_id"] = str(uuid.UUID(int=self.rnd.getrandbits(128), version=4))
            elif how == "missing":
                del p[key]
            else:
                ver = 9
            events[i] = (events[i][0], ver, p)
        sql = ";".join("SELECT popug.event_append(%s, %s, 'legacy', %s, %s::jsonb)" for _ in events)
        args = []
        for name, ver, p in events:
            args += [name, ver, tid, jdump(p)]
        out = self.call("postgres", "SELECT 1;" + sql, args, crash=crash)
        if out.kind == "err":
            check(out.code == "crash", "the import succeeds", out)
            return
        got = self.events_of(out.xid)
        check(len(got) == len(events), "an import writes its events", got)
        self.imported += len(got)
        t = Task(tid, fee, reward, None, imported=True)
        t.created_at = q1("SELECT occurred_at FROM popug.event WHERE id = %s", (got[0][0],))
        self.tasks[tid] = t
        for i, (e, (name, ver, p)) in enumerate(zip(got, events)):
            if i == bad:
                self.dead.add(e[1])
            elif name == "TaskAssigned":
                self.assign(t, acc.id, e[1])
            elif name == "TaskCompleted":
                self.payments[pay_id(e[1], "complete_reward", acc.id)] = (acc.id, tid, "complete_reward", 0, reward,
                                                                           e[1])

    def op_payments_apply(self, crash=None):
        by = self.pick(self.active())
        sql = "SELECT popug.payments_apply(%s)"
        n = self.rnd.choice([1, 10, 1000])
        if by.role not in ("admin", "accountant"):
            return self.refused_call(by.login, sql, (n,), "42501", "payments_apply by " + by.role)
        out = self.call(by.login, sql, (n,), tx=False, crash=crash)
        check(out.kind == "ok" or out.code == "crash", "payments_apply runs", out)

    def op_mail_dispatch(self, crash=None):
        by = self.pick(self.active())
        sql = "SELECT popug.mail_dispatch(%s)"
        if by.role != "admin":
            return self.refused_call(by.login, sql, (10,), "42501", "mail_dispatch by " + by.role)
        out = self.call(by.login, sql, (self.rnd.choice([1, 10, 100]),), tx=False, crash=crash)
        check(out.kind == "ok" or out.code == "crash", "mail_dispatch runs", out)

    def next_day(self):
        return q1("SELECT COALESCE((SELECT max(day) + 1 FROM popug.billing_day),"
                  " (SELECT min(billing_day) FROM popug.payment))")

    def op_payout(self, crash=None):
        by = self.pick(self.active())
        nd = self.next_day()
        if nd is None:
            return
        day = self.rnd.choice([nd, nd, nd + datetime.timedelta(days=self.rnd.randint(1, 3)),
                               nd - datetime.timedelta(days=self.rnd.randint(1, 3)), None])
        sql = "CALL popug.payout_run(%s)"
        if by.role not in ("admin", "accountant"):
            return self.refused_call(by.login, sql, (day,), "42501", "payout_run by " + by.role)
        last = q1("SELECT (now() AT TIME ZONE %s)::date", (PAYOUT_TZ,))
        if day is not None and day > last:
            return self.refused_call("postgres", sql, (day,), "22023", "payout_run of a day not begun yet",
                                     setup=self.payout_setup(by, 1))
        self.payout_at(by, day, crash)

    def payout_setup(self, payer, batch):
        """A payout session: the payer's role, a batch size, and a time zone
        where the days up to a week from now have begun (popug.timezone
        is the superuser's to set; the day must have begun to be paid)."""
        return ("SET popug.timezone = '%s'" % PAYOUT_TZ, "SET popug.payout_batch_size = %d" % batch,
                "SET ROLE " + payer.login)

    def payout_at(self, payer, day, crash):
        """CALL payout_run(day) as payer, with a random batch size."""
        # The roles each walk sees (SPEC 7: workers in debt are counted as the
        # batches walk): a segment for every day this call may walk (one too
        # many is harmless: a later call walking on from the same point
        # records its own after it).
        roles = {a.id: a.role for a in self.accounts.values()}
        upto = day or q1("SELECT (now() AT TIME ZONE %s)::date - 1", (PAYOUT_TZ,))
        nd = self.next_day()
        started = dict(q("SELECT day, paid_upto::text FROM popug.billing_day WHERE closed_at IS NULL"))
        for d in set(started) | {nd + datetime.timedelta(days=i) for i in range(max(0, (upto - nd).days + 1))}:
            self.walks[d].append((started.get(d), roles))
        out = self.call("postgres", "CALL popug.payout_run(%s)", (day,), tx=False, crash=crash,
                        setup=self.payout_setup(payer, self.rnd.randint(1, 6)))
        if out.kind == "ok":
            check(q1("SELECT count(*) FROM popug.billing_day WHERE day <= %s AND closed_at IS NULL", (upto,)) == 0,
                  "payout_run(%s) closes every day up to it" % upto)
            if upto >= nd:
                self.closed_upto = max(self.closed_upto or upto, upto)
        else:
            check(out.code == "crash", "payout_run succeeds", out)

    def op_payout_interrupted(self):
        """A payout stopped at a batch: the balance row of an account it must
        pay is held locked; once the payout waits for it, its backend (or
        the postmaster) is killed."""
        nd = self.next_day()
        payer = self.pick(self.active("admin", "accountant"))
        if nd is None or payer is None or nd > q1("SELECT (now() AT TIME ZONE %s)::date", (PAYOUT_TZ,)):
            return False
        owed = q("SELECT account_id FROM popug.balance b WHERE amount - COALESCE((SELECT sum(credit - debit)"
                 " FROM popug.payment p WHERE p.account_id = b.account_id AND p.billing_day > %s), 0) > 0"
                 " AND account_id > COALESCE((SELECT paid_upto FROM popug.billing_day WHERE day = %s),"
                 " '00000000-0000-0000-0000-000000000000')", (nd, nd))
        if not owed:
            return False
        victim = self.pick(owed)[0]
        locker = connect(autocommit=False)
        locker.cursor().execute("SELECT FROM popug.balance WHERE account_id = %s FOR UPDATE", (victim,))
        whole = self.rnd.random() < 0.3

        def crash(pid):
            wait_for(lambda: q1("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pid,)), 10, 0.01)
            if whole:
                kill_postmaster()
            else:
                kill_backend(pid)
        self.crashes["payout stopped at a batch, then kill -9 of " + ("the postmaster" if whole else "its backend")] += 1
        try:
            self.payout_at(payer, nd, crash)
        finally:
            try:
                locker.close()
            except psycopg2.Error:
                pass
        return True

    def op_consume(self, crash=None):
        """The external consumer 'sim' reads a batch (again) or acknowledges it."""
        admin = self.pick(self.active("admin"))
        if self.batch is None or self.ack_unknown or self.rnd.random() < 0.3:
            self.read_batch(admin, self.rnd.choice([1, 7, 50, 500]), crash)
        else:
            self.ack(admin, crash)

    def read_batch(self, admin, n, crash=None):
        out = self.call(admin.login, "SELECT id, event_id::text, aggregate_id::text FROM popug.events_read('sim', %s)",
                        (n,), tx=False, crash=crash)
        if out.kind != "ok":
            check(out.code == "crash", "events_read works", out)
            return
        ids = [r[0] for r in out.rows]
        if self.ack_unknown:        # an ack cut short committed unless the same batch comes again
            if ids != [r[0] for r in self.batch]:
                self.delivered += self.batch
            self.ack_unknown = False
        elif self.batch is not None:
            check(ids == [r[0] for r in self.batch], "events_read hands out the same batch until it is acknowledged",
                  (ids[:5], [r[0] for r in self.batch][:5]))
        self.batch = out.rows or None   # an empty read is no batch: the next read may have events

    def ack(self, admin, crash=None):
        out = self.call(admin.login, "SELECT popug.events_ack('sim')", tx=False, crash=crash)
        if out.kind == "ok":
            check(out.rows[0][0] == len(self.batch), "events_ack returns the batch's size", (out.rows, len(self.batch)))
            self.delivered += self.batch
            self.batch = None
        else:
            check(out.code == "crash", "events_ack works", out)
            self.ack_unknown = True

    def op_dead_letter_retry(self, crash=None):
        admin = self.pick(self.active("admin"))
        if admin is None or not self.dead:
            return
        ev = self.pick(sorted(self.dead))
        if q1("SELECT count(*) FROM popug.dead_letter WHERE event_id = %s", (ev,)) == 0:
            return      # not set aside yet
        self.refused_call(admin.login, "SELECT popug.dead_letter_retry(%s)", (ev,), None,
                          "replaying a dead letter whose cause is not fixed")
        check(q1("SELECT count(*) FROM popug.payment WHERE event_id = %s", (ev,)) == 0, "it pays nothing")

    def op_smtp(self, crash=None):
        self.smtp.set(self.rnd.choice(["ok", "ok", "4xx", "down"]))

    def op_bad(self, crash=None):
        """A refused call of a kind SPEC names, checked to write nothing."""
        admin = self.admin_login()
        anyone = self.pick(self.active()) or self.accounts[self.pick(self.accounts)]
        worker = self.pick(self.active("worker"))
        task = self.pick(self.tasks.values())
        k = self.uniq()
        nobody = "sim_none"
        cases = [
            (anyone.login, "SELECT popug.task_create(%s)", ("",), "22023"),
            (anyone.login, "SELECT popug.task_create(%s)", ("   ",), "22023"),
            (anyone.login, "SELECT popug.task_create(%s)", ("[SIM-1] in the title",), "22023"),
            (anyone.login, "SELECT popug.task_create(%s)", ("x" * 256,), "22023"),
            (anyone.login, "SELECT popug.task_create(%s)", ("bell\x07",), "22023"),
            (anyone.login, "SELECT popug.task_create(%s)", ("evil\u202etxt",), "22023"),
            (anyone.login, "SELECT popug.task_create(%s)", ("\u200b\u3000",), "22023"),
            (anyone.login, "SELECT popug.task_create(%s)", (None,), "22004"),
            (anyone.login, "SELECT popug.task_create(%s, '', %s)", ("ok title", "sim-1"), "22023"),
            (anyone.login, "SELECT popug.task_create(%s, %s)", ("ok title", "nul\x01"), "22023"),
            (admin, "SELECT popug.account_create(%s, %s, 'worker')", ("sim_1", "x@example.com"), "23505"),
            (admin, "SELECT popug.account_create(%s, %s, 'worker')", ("sim_norole_%d" % k, "x@example.com"), "42704"),
            (admin, "SELECT popug.account_create(%s, %s, 'worker')", ("postgres", "not-an-email"), "22023"),
            (admin, "SELECT popug.account_create(%s, %s, 'worker')", ("postgres", "a@b"), "22023"),
            (admin, "SELECT popug.account_create(%s, %s, 'worker')", ("postgres", "a\r\nBcc: x@y.com"), "22023"),
            (admin, "SELECT popug.account_create(%s, %s, 'worker')", (None, "a@example.com"), "22004"),
            (admin, "SELECT popug.account_set_role(%s, 'worker')", (str(uuid.uuid4()),), "P0002"),
            (admin, "SELECT popug.account_set_role(%s, 'worker')", (None,), "22004"),
            (admin, "SELECT popug.account_deactivate(%s)", (str(uuid.uuid4()),), "P0002"),
            (anyone.login, "SELECT popug.task_complete(%s)", (str(uuid.uuid4()),), "P0002"),
            (anyone.login, "SELECT popug.task_complete(%s)", (None,), "22004"),
            (nobody, "SELECT popug.task_create('no account')", None, "42501"),
            (nobody, "SELECT popug.whoami()", None, "42501"),
            (admin, "SELECT popug.dead_letter_retry(%s)", (str(uuid.uuid4()),), "P0002"),
            (admin, "SELECT popug.dead_letter_retry(%s)", (None,), "22004"),
            (admin, "SELECT * FROM popug.events_read('accounting')", None, "42501"),
            (admin, "SELECT * FROM popug.events_read('mailer')", None, "42501"),
            (admin, "SELECT popug.events_ack('accounting')", None, "42501"),
            (admin, "SELECT * FROM popug.events_read('sim', 0)", None, "22023"),
            (admin, "SELECT * FROM popug.events_read('sim_nope')", None, "P0002"),
            (admin, "SELECT popug.consumer_create('sim')", None, "42710"),
            (admin, "SELECT popug.consumer_create('accounting')", None, "42501"),
            (admin, "CALL popug.payout_run('infinity')", None, "22023"),
            (admin, "SELECT * FROM popug.stats_days('2026-01-02', '2026-01-01')", None, "22023"),
            (admin, "SELECT * FROM popug.stats_days('2000-01-01', '2026-01-01')", None, "22023"),
        ]
        if worker is not None:
            cases += [
                (worker.login, "SELECT popug.account_create(%s, %s, 'admin')", ("sim_1", "w@example.com"), "42501"),
                (worker.login, "SELECT popug.account_deactivate(%s)", (worker.id,), "42501"),
                (worker.login, "SELECT popug.tasks_shuffle()", None, "42501"),
                (worker.login, "CALL popug.payout_run()", None, "42501"),
                (worker.login, "SELECT popug.payments_apply()", None, "42501"),
                (worker.login, "SELECT popug.mail_dispatch()", None, "42501"),
                (worker.login, "SELECT * FROM popug.events_read('sim')", None, "42501"),
                (worker.login, "SELECT * FROM popug.stats_day()", None, "42501"),
                (worker.login, "SELECT popug.dead_letter_retry(%s)", (str(uuid.uuid4()),), "42501"),
            ]
        if task is not None and not task.imported:
            cases.append((nobody, "SELECT popug.task_complete(%s)", (task.id,), "42501"))
        login, sql, args, code = self.rnd.choice(cases)
        self.refused_call(login, sql, args, code, "%s as %s" % (sql, login))

    # -- faults --

    def fault(self):
        """One fault at a random point."""
        kind = self.rnd.choice(["client", "client", "worker", "postmaster", "payout"])
        if kind == "payout" and self.op_payout_interrupted():
            return
        if kind == "worker":
            w = self.rnd.choice(["accounting", "mailer", "scheduler", "notifier"])
            pid = q1("SELECT pid FROM popug.worker_status WHERE worker = %s", (w,))
            check(pid is not None, "worker %s runs" % w)
            kill_backend(pid)
            self.crashes["kill -9 of the %s worker" % w] += 1
            self.recover()
            return
        op = self.rnd.choice([self.op_account_create, self.op_set_role, self.op_deactivate, self.op_task_create,
                              self.op_task_complete, self.op_shuffle, self.op_import, self.op_payments_apply,
                              self.op_payout, self.op_mail_dispatch, self.op_consume])
        delay = self.rnd.uniform(0, 0.004)
        whole = kind == "postmaster"

        def crash(pid):     # counted only when the operation makes a call
            time.sleep(delay)
            self.crashes[("kill -9 of the postmaster during " if whole else "kill -9 of the client backend in ")
                         + op.__name__[3:]] += 1
            if whole:
                kill_postmaster()
            else:
                kill_backend(pid)
        op(crash=crash)

    # -- the run --

    def setup(self):
        reset_popug()
        wait_workers()
        self.smtp.set("down")
        if os.path.exists(RECORD):
            os.unlink(RECORD)
        self.smtp.set("ok")
        for k, v in self.settings().items():
            q("ALTER SYSTEM SET popug.%s = %%s" % k, (v,))
        q("SELECT pg_reload_conf()")
        q("DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sim_none') THEN"
          " CREATE ROLE sim_none LOGIN; END IF; END$$")
        # each call's transaction inserts a marker row first, so that the
        # outcome of a call cut short by a crash can be looked up
        q("CREATE TABLE IF NOT EXISTS public.sim_marker (token bigint PRIMARY KEY, xid xid8 NOT NULL)")
        q("TRUNCATE public.sim_marker")
        q("GRANT INSERT, SELECT ON public.sim_marker TO PUBLIC")
        self.op_account_create(role="admin")    # the first admin, by the superuser
        admin = self.active("admin")[0]
        out = self.call(admin.login, "SELECT popug.consumer_create('sim', true)")
        check(out.kind == "ok", "the external consumer is created", out)

    def settings(self):
        """popug's settings for the run: no scheduled payout (the driver
        pays), the SMTP server, quick retries (check_mail knows the 4)."""
        return {"payout_at": "", "smtp_url": "smtp://127.0.0.1:%d" % self.smtp.port, "mail_retry_base": "1",
                "mail_max_attempts": "4", "smtp_timeout": "2000"}

    def teardown(self):
        self.smtp.set("down")
        for k in self.settings():
            q("ALTER SYSTEM RESET popug.%s" % k)
        q("SELECT pg_reload_conf()")
        q("DROP TABLE IF EXISTS public.sim_marker")
        self.conns.drop()

    OPS = (("op_account_create", 3), ("op_set_role", 2), ("op_deactivate", 1), ("op_task_create", 20),
           ("op_task_complete", 18), ("op_shuffle", 2), ("op_import", 4), ("op_payments_apply", 4),
           ("op_payout", 4), ("op_mail_dispatch", 4), ("op_smtp", 1), ("op_consume", 8),
           ("op_dead_letter_retry", 1), ("op_bad", 8))

    def ensure_admin(self):
        """An active admin, made by the superuser as at the start if none is
        left: the steps and the checks act as one."""
        if not self.active("admin"):
            self.op_account_create(role="admin")

    def step(self):
        self.ensure_admin()
        if self.rnd.random() < CRASH_P:
            self.fault()
            self.full_check()
            return
        names = [o for o, _ in self.OPS]
        weights = [w for _, w in self.OPS]
        name = self.rnd.choices(names, weights)[0]
        if name == "op_account_create" and len(self.accounts) >= MAX_ACCOUNTS:
            name = "op_set_role"
        if name == "op_task_create" and sum(t.status == "open" for t in self.tasks.values()) >= MAX_OPEN:
            name = "op_task_complete"
        if name == "op_deactivate" and len(self.active()) < 6:
            name = "op_account_create"
        self.ops[name] += 1
        getattr(self, name)()

    def run(self, steps, seconds):
        """Epochs of EPOCH steps, each on a fresh popug: billing days can
        only be paid out once they have begun, a week ahead at most."""
        end = time.time() + seconds if seconds else None
        try:
            while (not steps or self.steps < steps) and (end is None or time.time() < end):
                self.new_epoch()
                self.setup()
                for _ in range(EPOCH):
                    if (steps and self.steps >= steps) or (end is not None and time.time() >= end):
                        break
                    self.steps += 1
                    self.step()
                    if self.steps % CHECK_EVERY == 0:
                        self.full_check()
                self.full_check(final=True)
                self.epochs += 1
                note("epoch %d: %d steps, %d crashes so far" % (self.epochs, self.steps, sum(self.crashes.values())))
        finally:
            self.teardown()

    # -- the full checks --

    def quiet(self):
        """Waits until accounting and the mailer have read every event."""
        check(wait_for(lambda: q1("SELECT count(*) FROM popug.consumer_lag WHERE consumer IN"
                                  " ('accounting', 'mailer') AND pending > 0") == 0, 120, 0.05),
              "accounting and the mailer catch up")

    def full_check(self, final=False):
        self.ensure_admin()
        self.quiet()
        self.check_state()
        self.check_money()
        self.check_mail()
        self.check_stats()
        self.check_consumer(final)

    def check_state(self):
        """Accounts, tasks and the worker pool equal the model; every change
        has its event and every event its change."""
        db = {r[0]: r[1:] for r in q("SELECT id::text, login, email, role::text, active FROM popug.account")}
        check(db == {a.id: (a.login, a.email, a.role, a.active) for a in self.accounts.values()},
              "accounts equal the model")
        db = {r[0]: r[1:] for r in q("SELECT id::text, status, assignee_id::text, assign_fee, complete_reward"
                                     " FROM popug.task")}
        want = {t.id: (t.status, t.assignee, t.fee, t.reward) for t in self.tasks.values() if not t.imported}
        check(db == want, "tasks equal the model",
              [(k, db.get(k), want.get(k)) for k in set(db) | set(want) if db.get(k) != want.get(k)][:5])
        slots = q("SELECT slot, account_id::text FROM popug.worker_slot ORDER BY slot")
        check([s for s, _ in slots] == list(range(1, len(slots) + 1))
              and q1("SELECT COALESCE((SELECT n FROM popug.worker_pool), 0)") == len(slots),
              "the worker pool is dense")
        check({a for _, a in slots} == self.workers(), "the worker pool holds exactly the active workers")
        db = dict(q("SELECT event_name, count(*) FROM popug.event WHERE producer IN ('auth', 'tasks') GROUP BY 1"))
        check(db == {k: v for k, v in self.produced.items() if v}, "one event per change, and no other",
              (db, self.produced))
        check(q1("SELECT count(*) FROM popug.event WHERE producer = 'legacy'") == self.imported,
              "imported events are all there")
        # replaying the producers' events gives the tables back
        st = {}
        for name, p in q("SELECT event_name, payload FROM popug.event WHERE producer = 'tasks' ORDER BY id"):
            if name == "TaskAssigned":
                st[p["task_id"]] = ("open", p["assignee_id"])
            elif name == "TaskCompleted":
                st[p["task_id"]] = ("done", p["assignee_id"])
        check(st == {t.id: (t.status, t.assignee) for t in self.tasks.values() if not t.imported},
              "the task events replay to the tasks")

    def check_money(self):
        """SPEC 4 and 5: payments, balances, payouts and dead letters."""
        db = {uuid.UUID(r[0]): (r[1], r[2], r[3], r[4], r[5], r[6])
              for r in q("SELECT id::text, account_id::text, task_id::text, kind, debit, credit, event_id::text"
                         " FROM popug.payment WHERE kind <> 'payout'")}
        want = {k: (v[0], v[1], v[2], Decimal(v[3]).quantize(CENT), Decimal(v[4]).quantize(CENT), v[5])
                for k, v in self.payments.items()}
        check(db == want, "the payments are exactly one per money event, with ids derived from it",
              [(k, db.get(k), want.get(k)) for k in set(db) | set(want) if db.get(k) != want.get(k)][:5])
        dl = {r[0] for r in q("SELECT event_id::text FROM popug.dead_letter WHERE consumer = 'accounting'")}
        check(dl == self.dead, "exactly the malformed events are dead letters", (dl ^ self.dead))
        check(q1("SELECT count(*) FROM popug.dead_letter WHERE consumer <> 'accounting'") == 0,
              "the mailer sets nothing aside")
        ta = q("SELECT payload->>'payment_id' FROM popug.event WHERE event_name = 'TransactionApplied'")
        check(len(ta) == len(db) and {uuid.UUID(r[0]) for r in ta} == set(db),
              "one TransactionApplied per payment")
        # sums per account and billing day, payouts apart
        sums = collections.defaultdict(lambda: collections.defaultdict(Decimal))
        payouts = {}
        for acc, day, kind, net, pid in q("SELECT account_id::text, billing_day, kind, credit - debit, id::text"
                                          " FROM popug.payment"):
            if kind == "payout":
                payouts[(acc, day)] = -net
                check(uuid.UUID(pid) == pay_id("payout", acc, day), "a payout payment's id derives from its day")
            else:
                sums[acc][day] += net
        for acc, d in payouts:
            sums[acc]  # every account paid has payments
        bal = dict(q("SELECT account_id::text, amount FROM popug.balance"))
        for acc in set(bal) | set(sums):
            total = sum(sums[acc].values(), Decimal(0)) - sum(v for (a, _), v in payouts.items() if a == acc)
            check(bal.get(acc, Decimal(0)) == total, "the balance of %s is the sum of its payments" % acc,
                  (bal.get(acc), total))
        rows = {r[0]: r[1:] for r in q("SELECT day, closed_at IS NOT NULL, accounts_paid, total_paid,"
                                       " paid_upto::text, negative_workers FROM popug.billing_day")}
        made = collections.Counter()
        made_amount = {}
        for acc, day, amount, email in q("SELECT payload->>'account_id', (payload->>'billing_day')::date,"
                                         " (payload->>'amount')::numeric, payload->>'email'"
                                         " FROM popug.event WHERE event_name = 'PayoutMade'"):
            made[(acc, day)] += 1
            made_amount[(acc, day)] = (amount, email)
        db_payout = {(r[0], r[1]): r[2] for r in q("SELECT account_id::text, billing_day, amount FROM popug.payout")}
        check(db_payout == payouts, "one payout payment per payout row")
        check(all(n == 1 for n in made.values()) and set(made) == set(payouts), "one PayoutMade per payout")
        if rows:
            days = sorted(rows)
            check(days == [days[0] + datetime.timedelta(days=i) for i in range(len(days))],
                  "the started days follow each other")
            check(all(rows[d][0] for d in days[:-1]), "only the last started day may still be open")
            first = min((d for s in sums.values() for d in s), default=None)
            check(first is None or first >= days[0], "no payment lands before the first day paid out")
            if self.closed_upto:
                check(days[-1] >= self.closed_upto and (rows[self.closed_upto][0]),
                      "every day a committed payout_run closed is closed")
        for d in sorted(rows):
            closed, npaid, total, upto, negw = rows[d]
            owed = {}
            for acc in sums:
                s = sum((v for day, v in sums[acc].items() if day <= d), Decimal(0)) - \
                    sum((v for (a, day), v in payouts.items() if a == acc and day < d), Decimal(0))
                owed[acc] = s
            paid = {a: v for (a, day), v in payouts.items() if day == d}
            for a, v in paid.items():
                check(owed.get(a) == v, "the payout of %s on %s is what it was owed" % (a, d), (v, owed.get(a)))
                check(made_amount[(a, d)] == (v, self.accounts[a].email), "PayoutMade says what was paid")
            if closed:
                check(set(paid) == {a for a, s in owed.items() if s > 0},
                      "on closed %s every account owed was paid, once" % d)
                check((npaid, total) == (len(paid), sum(paid.values(), Decimal(0))),
                      "billing_day %s records its totals" % d)
                check(negw == self.negative_at_walk(d, owed), "the workers in debt on %s" % d,
                      (negw, self.negative_at_walk(d, owed)))
            else:
                check(all(upto is not None and uuid.UUID(a) <= uuid.UUID(upto) for a in paid),
                      "a payout under way pays no account after paid_upto")
                check(all(a in paid for a, s in owed.items() if s > 0 and upto and uuid.UUID(a) <= uuid.UUID(upto)),
                      "a payout under way paid every account owed up to paid_upto")

    def negative_at_walk(self, d, owed):
        """Workers in debt for day d, with the roles of the payout_run call
        whose batches walked each account."""
        walks = self.walks.get(d, [])
        n = 0
        for acc, s in owed.items():
            if s >= 0:
                continue
            role = None
            for after, roles in walks:
                if after is None or uuid.UUID(acc) > uuid.UUID(after):
                    role = roles.get(acc)
            n += role == "worker"
        return n

    def check_mail(self):
        """SPEC 6: one mail per PayoutMade; sent mail reached the server (a
        crash while sending may repeat it); 5xx addresses are never sent."""
        made = {r[0]: r[1] for r in q("SELECT event_id::text, payload->>'email' FROM popug.event"
                                      " WHERE event_name = 'PayoutMade'")}
        mails = q("SELECT event_id::text, to_addr, status, attempts, subject FROM popug.mail")
        check({m[0]: m[1] for m in mails} == made, "one mail per PayoutMade, to its address")
        got = collections.Counter()
        for m in self.smtp.received():
            for r in m["rcpt_tos"]:
                subj = [line for line in m["data"].splitlines() if line.startswith("Subject: ")]
                got[(r, subj[0][9:] if subj else None)] += 1
        extra = 0
        for eid, to, status, attempts, subject in mails:
            n = got[(to, subject)]
            if status == "sent":
                check(n >= 1, "a sent mail reached the server", (to, subject))
                check(not to.startswith("fail5xx"), "a 5xx address is never sent")
            if status == "failed":
                check(to.startswith("fail5xx") or attempts >= 4, "a mail fails on 5xx or after its last attempt",
                      (to, attempts))
            extra += max(0, n - 1)
        crashes = sum(self.crashes.values()) - self.crashes_before
        check(extra <= crashes, "a mail is sent twice only when a crash cut its sending", (extra, crashes))

    def check_stats(self):
        """SPEC 7: statistics equal what the model and the payments say."""
        admin = self.pick(self.active("admin", "accountant"))
        nd = self.next_day()
        if admin is None or nd is None:
            return
        lo = max(nd - datetime.timedelta(days=20), q1("SELECT COALESCE(min(billing_day), %s) FROM popug.payment", (nd,)))
        today = q1("SELECT (now() AT TIME ZONE 'UTC')::date")   # popug.timezone, as the harness leaves it
        lo = min(lo, today)
        hi = max(nd, today)
        out = self.call(admin.login, "SELECT * FROM popug.stats_days(%s, %s)", (lo, hi), tx=False)
        check(out.kind == "ok", "stats_days works", out)
        money = collections.defaultdict(lambda: [Decimal(0), Decimal(0), Decimal(0), 0])
        per = collections.defaultdict(lambda: collections.defaultdict(Decimal))
        for day, kind, debit, credit, acc in q("SELECT billing_day, kind, debit, credit, account_id::text"
                                               " FROM popug.payment"):
            m = money[day]
            if kind == "assign_fee":
                m[0] += debit
            elif kind == "complete_reward":
                m[1] += credit
                m[3] += 1
            else:
                m[2] += debit
            per[acc][day] += credit - debit
        rows = dict((r[0], r) for r in q("SELECT day, closed_at IS NOT NULL, negative_workers FROM popug.billing_day"))
        # tasks_created counts a task on the billing day accounting learned
        # of it (popug.ledger_task), the day its creation fee counts on:
        # which day that is depends on the workers' timing, so the model
        # checks that accounting knows exactly its tasks, each on the day of
        # its creation fee, and counts them by that day
        ledger = dict(q("SELECT task_id::text, billing_day FROM popug.ledger_task"))
        check(set(ledger) == set(self.tasks), "accounting knows exactly the model's tasks",
              (sorted(set(ledger) ^ set(self.tasks))[:5]))
        fee_day = dict(q("SELECT DISTINCT ON (task_id) task_id::text, billing_day FROM popug.payment"
                         " WHERE kind = 'assign_fee' ORDER BY task_id, occurred_at, billing_day"))
        wrong = [(t, ledger[t], fee_day[t]) for t in ledger
                 if t in fee_day and not self.tasks[t].imported and ledger[t] != fee_day[t]]
        check(not wrong, "a task counts on the day of its creation fee", wrong[:5])
        created = collections.Counter(ledger.values())
        for r in out.rows:
            d = r[0]
            fees, rewards, payouts, completed = money[d]
            if d in rows and rows[d][1]:
                negw = rows[d][2]       # checked against the model in check_money
            else:
                negw = sum(1 for a in self.accounts.values() if a.role == "worker" and a.id in per
                           and sum((v for day, v in per[a.id].items() if day <= d), Decimal(0)) < 0)
            want = (d, fees - rewards, negw, fees, rewards, payouts, created[d], completed)
            check(tuple(r) == want, "stats of %s" % d, (tuple(r), want))
        # the most expensive task: the highest reward credited in the range
        # (ties: the first credited, then the lowest task id)
        admin = self.pick(self.active("admin"))
        out = self.call(admin.login, "SELECT task_id::text, complete_reward FROM popug.stats_most_expensive_task(%s, %s)",
                        (lo, hi), tx=False)
        check(out.kind == "ok", "stats_most_expensive_task works", out)
        paid = [(-credit, at, task) for task, credit, at in q(
            "SELECT task_id::text, credit, occurred_at FROM popug.payment"
            " WHERE kind = 'complete_reward' AND billing_day BETWEEN %s AND %s", (lo, hi))]
        got = [tuple(r) for r in out.rows if r != (None, None)]
        want = [(min(paid)[2], -min(paid)[0])] if paid else []
        check(got == want, "the most expensive task of %s..%s" % (lo, hi), (got, want))

    def check_consumer(self, final):
        """SPEC 3: the external consumer never skips or repeats an event
        (once acknowledged), and sees each aggregate's events in order."""
        ids = [r[0] for r in self.delivered]
        check(len(ids) == len(set(ids)), "no event acknowledged twice")
        last = {}
        for id, _, agg in self.delivered:
            if agg is not None:
                check(last.get(agg, 0) < id, "an aggregate's events arrive in order")
                last[agg] = id
        if not final:
            return
        admin = self.active("admin")[0]
        while True:
            self.read_batch(admin, 1000)
            if not self.batch:
                break
            self.ack(admin)
        ids = [r[0] for r in self.delivered]
        allids = [r[0] for r in q("SELECT id FROM popug.event ORDER BY id")]
        check(sorted(ids) == allids, "the external consumer got every event exactly once",
              (len(ids), len(allids), sorted(set(allids) - set(ids))[:5]))


def jdump(p):
    """JSON with each Decimal written as a JSON number with its own digits."""
    text = json.dumps(p, default=lambda o: "\0%s\0" % o if isinstance(o, Decimal) else None)
    return re.sub(r'"\\u0000([^"\\]*)\\u0000"', r"\1", text)


def main():
    runs = []
    seeds = os.path.join(HERE, "seeds")
    if os.environ.get("POPUG_SIM_SEED"):
        runs.append((int(os.environ["POPUG_SIM_SEED"]), int(os.environ.get("POPUG_SIM_STEPS") or 0),
                     float(os.environ.get("POPUG_SIM_SECONDS") or (0 if os.environ.get("POPUG_SIM_STEPS") else 100))))
    else:
        with open(seeds) as f:
            for line in f:
                parts = line.split("#")[0].split()
                if parts:
                    runs.append((int(parts[0]), int(parts[1]), 0))
        runs.append((random.SystemRandom().randrange(1 << 31), int(os.environ.get("POPUG_SIM_STEPS") or 0),
                     float(os.environ.get("POPUG_SIM_SECONDS") or (0 if os.environ.get("POPUG_SIM_STEPS") else 100))))
    for seed, steps, seconds in runs:
        note("seed %d (replay: POPUG_SIM_SEED=%d POPUG_SIM_STEPS=%s)" % (seed, seed, steps or "N"))
        sim = Sim(seed)
        t0 = time.time()
        try:
            sim.run(steps, seconds)
            failure = None
        except Failure as e:
            failure = e
        except Exception as e:     # the driver's own fault: still a failed run, with its seed
            failure = "%s\n%s" % (e, traceback.format_exc())
        note("seed %d: %d steps, %d crashes, %d refused calls, %.0f s" %
             (seed, sim.steps, sum(sim.crashes.values()), sim.refused, time.time() - t0))
        for k, v in sorted(sim.crashes.items()):
            note("  %5d  %s" % (v, k))
        ok(failure is None, "seed %d: %d steps, %d crashes, every check held" %
           (seed, sim.steps, sum(sim.crashes.values())),
           "step %d: %s\nreplay: POPUG_SIM_SEED=%d POPUG_SIM_STEPS=%d" % (sim.steps, failure, seed, sim.steps))
        if failure is not None:
            break
    done()


if __name__ == "__main__":
    main()
