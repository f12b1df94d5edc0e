"""Metrics through Prometheus' own exporter (issue 18): Debian's
prometheus-postgres-exporter with monitoring/queries.yaml, connected as a
pg_monitor member without a popug account, scraped over HTTP on 127.0.0.1
after a scripted day: tasks, a worker in debt, a dead letter, a consumer
that reads nothing, a payout interrupted half-way on a day that is over,
its mail against a stopped SMTP server (one failed, one pending) and a
mailer pass that failed.  Each popug series is checked against what the
tables hold; monitoring/alerts.yaml passes promtool, and its rules fire on
the scraped values as they should.  The exporter is stopped whatever
happens (and dies with this script)."""
import atexit
import ctypes
import datetime
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import ensure_roles, free_port, q, q1, wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
EXPORTER = "/usr/bin/prometheus-postgres-exporter"
PROMTOOL = "/usr/bin/promtool"


def settings(**kv):
    for k, v in kv.items():
        q("ALTER SYSTEM SET popug.%s = %%s" % k, (str(v),))
    q("SELECT pg_reload_conf()")
    time.sleep(0.3)


def as_role(role, sql, args=None):
    return q("SET ROLE %s; %s" % (role, sql), args)


# ---- the exporter's process: killed at exit, and by the kernel if we die ----
children = []


def stop_children():
    for p in children:
        if p.poll() is None:
            p.kill()
            p.wait()


def die_with_parent():
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)	# PR_SET_PDEATHSIG


atexit.register(stop_children)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))


def exporter_start(port, log, user="pm_prom"):
    env = dict(os.environ,
               DATA_SOURCE_NAME="postgresql://%s@127.0.0.1:%s/popug?sslmode=disable" % (user, os.environ["PGPORT"]))
    p = subprocess.Popen([EXPORTER, "--extend.query-path=" + os.path.join(ROOT, "monitoring", "queries.yaml"),
                          "--web.listen-address=127.0.0.1:%d" % port, "--disable-settings-metrics",
                          "--no-collector.database", "--no-collector.bgwriter"],
                         env=env, stdout=log, stderr=log, preexec_fn=die_with_parent)
    children.append(p)
    return p


def scrape(port):
    """The popug series of /metrics: {(name, ((label, value), ...)): value}."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        text = r.read().decode()
    series = {}
    for line in text.splitlines():
        if not line.startswith("popug_"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        name, _, labels = name_labels.partition("{")
        pairs = tuple(sorted((k, v.strip('"')) for k, v in
                             (kv.split("=", 1) for kv in labels.rstrip("}").split(",") if kv)
                             if k in ("worker", "consumer")))
        series[(name, pairs)] = float(value)
    return series


def get(series, name, **labels):
    return series.get((name, tuple(sorted(labels.items()))))


def near(got, want, tolerance):
    return got is not None and want is not None and abs(got - want) <= tolerance


def test_metrics_through_the_exporter(popug, smtp):
    # ---- the day ----
    roles = ("pm_admin", "pm_manager", "pm_w1", "pm_w2", "pm_w3", "pm_prom")
    ensure_roles(*roles)
    q("GRANT pg_monitor TO pm_prom")
    smtp.stop()
    smtp_port = smtp.port
    # the day is played in Etc/GMT+12; the scheduler never pays out (payout_at
    # empty); a mail fails at its first failed attempt, for now
    settings(timezone="Etc/GMT+12", payout_at="", smtp_url="smtp://127.0.0.1:%d" % smtp_port,
             mail_max_attempts=1, mail_retry_base=3600, smtp_timeout=2000)

    q("SELECT popug.account_create('pm_admin', 'pm_admin@example.com', 'admin')")
    as_role("pm_admin", "SELECT popug.account_create('pm_manager', 'pm_manager@example.com', 'manager'),"
            " popug.account_create('pm_w1', 'pm_w1@example.com', 'worker'),"
            " popug.account_create('pm_w2', 'pm_w2@example.com', 'worker'),"
            " popug.account_create('pm_w3', 'pm_w3@example.com', 'worker')")
    before_app = q1("SELECT max(id) FROM popug.event")
    as_role("pm_admin", "SELECT popug.consumer_create('pm_app')")
    time.sleep(3)	# so that its first pending event is 3 s younger than the events before it
    for i in range(200):
        as_role("pm_manager", "SELECT popug.task_create('Metric task %d')" % i)
        if q1("SELECT count(DISTINCT t.assignee_id) = 3 FROM popug.task t"):
            break
    for w in ("pm_w1", "pm_w2"):	# they complete everything; pm_w3 nothing, so stays in debt
        as_role(w, "SELECT popug.task_complete(id) FROM popug.my_tasks")
    # a producer's bad event: accounting sets it aside
    q("SELECT popug.event_append('TaskAssigned', 1, 'test', NULL, jsonb_build_object('task_id', gen_random_uuid(),"
      " 'assignee_id', (SELECT id FROM popug.account WHERE login = 'pm_w3'), 'assign_fee', 'NaN', 'reason', 'create'))")
    assert wait_for(lambda: q1("SELECT pending FROM popug.consumer_lag WHERE consumer = 'accounting'") == 0
                and q1("SELECT count(*) FROM popug.dead_letter") == 1, 15, 0.1), \
        "accounting applied the day and set the bad event aside"
    day = q1("SELECT min(billing_day) FROM popug.payment")

    # midnight passes: in Etc/GMT-14 the day is over, and its payout stops half-way
    settings(timezone="Etc/GMT-14")


    def pay_until(n):
        for _ in range(20):
            if q1("SELECT count(*) FROM popug.payout") >= n:
                return True
            if as_role("pm_admin", "SELECT popug.payout_step(%s, 1)", (day,))[0][0]:
                return False	# the day closed
        return False


    assert pay_until(1), \
        "the payout of %s pays its first worker" % day
    assert wait_for(lambda: q1("SELECT status FROM popug.mail") == "failed", 15, 0.1), \
        "that worker's mail fails: the SMTP server is down and popug.mail_max_attempts is 1"
    # a mailer pass fails (a trigger refuses new mail), then mail is retried for an hour
    q("CREATE FUNCTION public.refuse_mail() RETURNS trigger LANGUAGE plpgsql AS "
      "$$BEGIN RAISE EXCEPTION 'mail refused by a test trigger'; END$$")
    q("CREATE TRIGGER refuse BEFORE INSERT ON popug.mail FOR EACH STATEMENT EXECUTE FUNCTION public.refuse_mail()")
    errors_before = q1("SELECT errors FROM popug.worker_status WHERE worker = 'mailer'")
    assert pay_until(2), \
        "the payout pays its second worker"
    assert wait_for(lambda: q1("SELECT errors FROM popug.worker_status WHERE worker = 'mailer'") > errors_before,
                    15, 0.1), \
        "the mailer's pass fails on the trigger: worker_status counts it"
    q("DROP TRIGGER refuse ON popug.mail")
    q("DROP FUNCTION public.refuse_mail()")
    settings(mail_max_attempts=5)
    assert wait_for(lambda: q1("SELECT count(*) FROM popug.mail WHERE status = 'pending' AND attempts = 1") == 1,
                    20, 0.1), \
        "the second mail is tried, fails to connect and waits for its retry"
    assert q1("SELECT count(*) FROM popug.billing_day WHERE closed_at IS NULL") == 1, \
        "the day is still open"
    assert wait_for(lambda: q1("SELECT count(*) FROM popug.consumer_lag WHERE consumer IN ('accounting', 'mailer')"
                               " AND pending > 0") == 0, 15, 0.1), \
        "popug's own consumers have caught up"

    # ---- the exporter ----
    port = free_port()
    log_path = os.path.join(popug, "exporter.log")
    with open(log_path, "w") as log:
        exporter = exporter_start(port, log)
    assert wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 20, 0.1), \
        "prometheus-postgres-exporter listens on 127.0.0.1:%d" % port
    s = wait_for(lambda: (lambda m: m if get(m, "popug_events_total") is not None else None)(scrape(port)),
                 20, 0.5) or {}
    now = float(q1("SELECT extract(epoch FROM now())"))
    assert len(s) > 0, \
        "/metrics has popug series (%d)" % len(s)

    for w in ("notifier", "accounting", "mailer", "scheduler"):
        assert get(s, "popug_worker_up", worker=w) == 1.0, \
            "popug_worker_up{worker=%s} is 1" % w
    status = {r[0]: r[1:] for r in q("SELECT worker, processed, errors FROM popug.worker_status")}
    errs = get(s, "popug_worker_errors_total", worker="mailer")
    assert errs is not None and errors_before < errs <= status["mailer"][1], \
        "popug_worker_errors_total{worker=mailer} counts the failed pass (%s)" % errs
    processed = get(s, "popug_worker_processed_total", worker="accounting")
    assert processed is not None and 0 < processed <= status["accounting"][0], \
        "popug_worker_processed_total{worker=accounting}: %s" % processed
    age = get(s, "popug_worker_last_run_age_seconds", worker="accounting")
    assert age is not None and 0 <= age < 5, \
        "the accounting worker ran %s s ago (it polls every second)" % age

    app = q("SELECT count(*), extract(epoch FROM min(occurred_at)) FROM popug.event WHERE id > %s", (before_app,))[0]
    assert get(s, "popug_consumer_pending_events", consumer="pm_app") == float(app[0]), \
        "popug_consumer_pending_events{consumer=pm_app}: every event since it was created"
    app_age = get(s, "popug_consumer_oldest_pending_age_seconds", consumer="pm_app")
    assert near(app_age, now - float(app[1]), 2), \
        "popug_consumer_oldest_pending_age_seconds{consumer=pm_app}: since its first event (%s s)" % app_age
    assert get(s, "popug_consumer_pending_events", consumer="accounting") == 0.0, \
        "accounting has nothing pending"
    assert get(s, "popug_consumer_oldest_pending_age_seconds", consumer="accounting") == 0.0, \
        "so no age"
    assert get(s, "popug_consumer_dead_letters", consumer="accounting") == 1.0, \
        "popug_consumer_dead_letters{consumer=accounting} is 1"

    assert get(s, "popug_events_total") == float(q1("SELECT max(id) FROM popug.event")), \
        "popug_events_total is the last event id"
    assert get(s, "popug_mails_failed") == 1.0, \
        "popug_mails_failed is 1"
    assert get(s, "popug_mails_pending") == 1.0, \
        "popug_mails_pending is 1"
    mail_age = get(s, "popug_mail_oldest_pending_age_seconds")
    assert near(mail_age, now - float(q1("SELECT extract(epoch FROM created_at) FROM popug.mail "
                                         "WHERE status = 'pending'")), 3), \
        "popug_mail_oldest_pending_age_seconds: since the pending mail was queued (%s s)" % mail_age
    assert get(s, "popug_tasks_open") == float(q1("SELECT count(*) FROM popug.task WHERE status = 'open'")), \
        "popug_tasks_open is the open tasks"
    assert (get(s, "popug_tasks_open") or 0) > 0, \
        "some are open (pm_w3's)"
    debt = get(s, "popug_accounts_in_debt")
    assert debt == float(q1("SELECT count(*) FROM popug.balance WHERE amount < 0")) and debt >= 1, \
        "popug_accounts_in_debt: pm_w3 and whoever else is below zero (%s)" % debt
    # the open day began at midnight of `day` in Etc/GMT-14 (UTC+14)
    began = datetime.datetime.combine(day, datetime.time(0), datetime.timezone(datetime.timedelta(hours=14)))
    today14 = datetime.datetime.fromtimestamp(now, datetime.timezone(datetime.timedelta(hours=14))).date()
    assert get(s, "popug_billing_days_open") == float((today14 - day).days + 1), \
        "popug_billing_days_open: %s to %s in popug.timezone" % (day, today14)
    day_age = get(s, "popug_billing_oldest_open_day_age_seconds")
    assert near(day_age, now - began.timestamp(), 3) and day_age > 86400, \
        "popug_billing_oldest_open_day_age_seconds: since %s began (%s s): it is over, unpaid" % (day, day_age)

    with open(log_path) as f:
        log_text = f.read()
    assert "level=error" not in log_text, \
        "the exporter logged no error"

    # ---- alert rules: valid, and firing on what was scraped ----
    r = subprocess.run([PROMTOOL, "check", "rules", os.path.join(ROOT, "monitoring", "alerts.yaml")],
                       capture_output=True, text=True)
    assert r.returncode == 0, \
        "promtool check rules monitoring/alerts.yaml: " + r.stdout + r.stderr


    def series_line(name, labels, values):
        sel = ",".join('%s="%s"' % kv for kv in labels)
        return "      - series: '%s{%s}'\n        values: '%s'\n" % (name, sel, values)


    def history(name, v):
        """30 minutes of a series that ends as scraped: an age grows by 60 s a
        minute (nothing moves), mails_failed went from 0 to its value, the rest
        stay as they are."""
        if name.endswith("_age_seconds") and v > 0:
            return "%s+60x30" % v
        if name == "popug_mails_failed":
            return "0 %sx30" % v
        return "%sx30" % v


    inputs = "".join(series_line(n, l, history(n, v)) for (n, l), v in sorted(s.items()) if v == v)	# not NaN


    def alerts_test(name, labels):
        exp = "".join("          - exp_labels: {%s}\n" % ", ".join(["severity: %s" % sev] + ["%s: %s" % kv for kv in l])
                      for sev, l in labels)
        return ("      - eval_time: 30m\n        alertname: %s\n        exp_alerts:\n%s" % (name, exp) if exp else
                "      - eval_time: 30m\n        alertname: %s\n        exp_alerts: []\n" % name)


    def without_annotations(path):
        """The rules file without its annotations (promtool would compare their
        rendered text too): each annotations: block is dropped."""
        out, skip = [], None
        with open(path) as f:
            for line in f:
                indent = len(line) - len(line.lstrip())
                if skip is not None and (indent > skip or not line.strip()):
                    continue
                skip = indent if line.strip() == "annotations:" else None
                if skip is None:
                    out.append(line)
        rules = os.path.join(popug, "alerts-without-annotations.yaml")
        with open(rules, "w") as f:
            f.writelines(out)
        return rules


    test_yaml = ("rule_files: [%s]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n%s"
                 "    alert_rule_test:\n%s" % (
                     without_annotations(os.path.join(ROOT, "monitoring", "alerts.yaml")), inputs,
                     alerts_test("PopugWorkerDown", []) +
                     alerts_test("PopugMetricsMissing", []) +
                     alerts_test("PopugPayoutOverdue", [("critical", [])]) +
                     alerts_test("PopugDeadLetters", [("warning", [("consumer", "accounting")])]) +
                     alerts_test("PopugMailFailing", [("warning", [])]) +
                     alerts_test("PopugConsumerLag", [("warning", [("consumer", "pm_app")])])))
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=popug, delete=False) as f:
        f.write(test_yaml)
    r = subprocess.run([PROMTOOL, "test", "rules", f.name], capture_output=True, text=True)
    assert r.returncode == 0, \
        "on these values the alerts fire: payout overdue, dead letters, mail failing, pm_app's lag;" \
        " no worker is down, no metric missing: " + r.stdout + r.stderr

    # ---- stopped; connected as a worker, it reads nothing of popug ----
    exporter.terminate()
    exporter.wait(10)
    assert exporter.poll() is not None, \
        "the exporter is stopped"
    port = free_port()
    with open(os.path.join(popug, "exporter-worker.log"), "w") as log:
        exporter = exporter_start(port, log, user="pm_w1")
    assert wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 20, 0.1), \
        "the exporter as pm_w1, a worker"
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        metrics_text = r.read().decode()
    assert "pg_up 1" in metrics_text and scrape(port) == {}, \
        "it is connected (pg_up 1) and gets no popug series"
    exporter.terminate()
    exporter.wait(10)
