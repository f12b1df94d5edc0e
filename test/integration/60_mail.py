"""Payout mail against a real SMTP server on 127.0.0.1 (SPEC 6): delivery
with proper headers, retries while the server is down, 5xx and 4xx
handling, header injection, settings, a mailer killed mid-send, leases
against a concurrent mail_dispatch() in a long pass, and a failed mail
resent by an admin."""
import collections
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from tap import done, ensure_roles, free_port, is_, note, ok, q, q1, reset_popug, wait_for, wait_workers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.environ.get("POPUG_WORK", "/tmp")
RECORD = os.path.join(WORK, "mail-test.jsonl")


PORT = free_port()


def smtp_start(*args):
    p = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "..", "smtp_server.py"),
                          "--port", str(PORT), "--record", RECORD, *args],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", PORT)) == 0, 10, 0.05)
    return p


def smtp_stop(p):
    p.kill()
    p.wait()


def received(rcpt=None):
    if not os.path.exists(RECORD):
        return []
    with open(RECORD) as f:
        msgs = [json.loads(line) for line in f if line.strip()]
    return [m for m in msgs if rcpt is None or rcpt in m["rcpt_tos"]]


def settings(**kv):
    for k, v in kv.items():
        q("ALTER SYSTEM SET popug.%s = %%s" % k, (str(v),))
    q("SELECT pg_reload_conf()")
    time.sleep(0.3)


def payout(email, amount="12.50", day="2026-11-23"):
    acc = q1("SELECT id FROM popug.account WHERE login = 't_mail'")
    eid = q1("SELECT popug.event_append('PayoutMade', 1, 'payout', %s, "
             "jsonb_build_object('account_id', %s::uuid, 'email', %s::text, 'billing_day', %s::date, 'amount', %s::numeric))",
             (acc, acc, email, day, amount))
    return q1("SELECT event_id::text FROM popug.event WHERE id = %s", (eid,))


def mail(event_id):
    rows = q("SELECT status, attempts, last_error, next_attempt_at - now() FROM popug.mail WHERE event_id = %s",
             (event_id,))
    return rows[0] if rows else None


def status(event_id):
    try:
        m = mail(event_id)
    except Exception:  # the server restarting after a crash
        return None
    return m and m[0]


reset_popug()
wait_workers()
ensure_roles("t_mail", "t_plain", "t_mail_admin")
q("SELECT popug.account_create('t_mail', 'mail@example.com', 'worker')")
q("SELECT popug.account_create('t_mail_admin', 'mail-admin@example.com', 'admin')")
settings(smtp_url="smtp://127.0.0.1:%d" % PORT, smtp_from="popug@example.com", mail_retry_base=1,
         mail_max_attempts=3, smtp_timeout=2000)
server = smtp_start()

# ---- delivery ----
ev = payout("alice@example.com", "123.45", "2026-11-20")
ok(wait_for(lambda: status(ev) == "sent", 10), "the mailer delivers a payout mail soon after the payout commits")
msgs = received("alice@example.com")
is_(len(msgs), 1, "exactly one message arrived for the recipient")
data = msgs[0]["data"] if msgs else ""
head, _, body = data.partition("\r\n\r\n")
ok(msgs and msgs[0]["mail_from"] == "popug@example.com", "MAIL FROM is popug.smtp_from")
for h in ("Date: ", "Message-ID: <%s@popug>" % ev, "From: <popug@example.com>", "To: <alice@example.com>",
          "Subject: popug payout for 2026-11-20", "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"):
    ok(("\r\n" + head).find("\r\n" + h) >= 0, "header %s" % h.strip(), head)
ok("123.45" in body and "2026-11-20" in body, "the body says the amount and the day", body)
ok("\n" not in data.replace("\r\n", ""), "every line ends in CRLF")

# ---- 5xx: failed at once; 4xx: retried, then failed; others still sent ----
e5 = payout("fail5xx@example.com")
e4 = payout("fail4xx@example.com")
ok(wait_for(lambda: status(e5) == "failed", 10), "a 5xx reply fails the mail at once")
m5 = mail(e5)
ok(m5 and m5[1] == 1 and "550" in (m5[2] or ""), "after one attempt, keeping the server's reply", m5)
ok(wait_for(lambda: (mail(e4) or [None, 0])[1] >= 1, 10), "a 4xx reply is retried")
m4 = mail(e4)
ok(m4 and m4[0] == "pending" and "451" in (m4[2] or ""), "the mail stays pending with the reply", m4)
eb = payout("bob@example.com")
ok(wait_for(lambda: status(eb) == "sent", 10), "other mail is sent meanwhile")
ok(status(e4) == "pending", "while the 4xx mail still waits for its retry")
ok(wait_for(lambda: status(e4) == "failed", 20), "after popug.mail_max_attempts (3) the 4xx mail is failed")
is_(mail(e4)[1], 3, "after exactly 3 attempts")

# ---- header injection ----
ei = payout("evil@example.com\r\nBcc: victim@example.com")
ok(wait_for(lambda: status(ei) == "failed", 10), "an address with CR/LF is a failed mail, not a sent one")
ok("invalid recipient" in (mail(ei)[2] or ""), "with a clear error", mail(ei))
is_(len(received("victim@example.com")), 0, "nothing reached the injected recipient")
ok(q1("SELECT count(*) FROM popug.worker_status WHERE worker = 'mailer' AND pid IS NOT NULL") == 1,
   "the mailer is still running")

# ---- settings ----
try:
    q("SET popug.smtp_url = 'http://127.0.0.1/'")
    ok(False, "a non-smtp URL is refused")
except Exception as e:
    ok("smtp://" in str(e), "a non-smtp URL is refused: %s" % str(e).splitlines()[0])
try:
    q("ALTER SYSTEM SET popug.smtp_url = 'file:///etc/passwd'")
    ok(False, "also in ALTER SYSTEM")
except Exception:
    ok(True, "also in ALTER SYSTEM")
q("ALTER SYSTEM SET popug.smtp_password = 's3cret'")
q("SELECT pg_reload_conf()")
try:
    q("SET ROLE t_plain; SHOW popug.smtp_password")
    ok(False, "an ordinary role cannot read the SMTP password")
except Exception as e:
    ok("must be superuser" in str(e) or "permission" in str(e), "an ordinary role cannot read the SMTP password")
try:
    q("SET ROLE t_plain; SELECT current_setting('popug.smtp_password')")
    ok(False, "nor through current_setting()")
except Exception:
    ok(True, "nor through current_setting()")
is_(q1("SELECT current_setting('popug.smtp_password')"), "s3cret", "(a superuser can)")
q("ALTER SYSTEM RESET popug.smtp_password")

# ---- server down: retries with growing delays, then delivered once ----
smtp_stop(server)
settings(mail_max_attempts=10)
ed = payout("carol@example.com")
waits = {}
end = time.time() + 30
while time.time() < end and len(waits) < 3:
    m = mail(ed)
    if m and m[1] >= 1 and m[1] not in waits:
        waits[m[1]] = m[3].total_seconds()
    time.sleep(0.02)
ok(len(waits) == 3, "with the server down the mail is retried (attempts %s)" % sorted(waits))
md = mail(ed)
ok(md[0] == "pending" and md[2], "still pending, with the connection error: %s" % (md[2] or "")[:60], md)
ok(len(waits) == 3 and waits[3] > waits[1], "the delays grow: %s" % {k: round(v, 2) for k, v in waits.items()})
server = smtp_start()
ok(wait_for(lambda: status(ed) == "sent", 20), "delivered once the server is back")
is_(len(received("carol@example.com")), 1, "exactly once")

# ---- the mailer killed mid-send ----
smtp_stop(server)
server = smtp_start("--slow", "1.5")
ek = payout("slow@example.com")
ok(wait_for(lambda: (mail(ek) or [None, 0])[1] >= 1, 10), "a slow send is under way")
time.sleep(0.3)
pid = q1("SELECT pid FROM popug.worker_status WHERE worker = 'mailer'")
os.kill(pid, signal.SIGKILL)
note("killed mailer pid %d mid-send (the postmaster restarts every backend after that)" % pid)
ok(wait_for(lambda: status(ek) == "sent", 40, 0.2), "the mail is delivered after the mailer comes back")
n = len(received("slow@example.com"))
ok(1 <= n <= 2, "at most once more than the unconfirmed attempt (%d received)" % n)
is_(len(received("alice@example.com")), 1, "and no other mail was sent again")
is_(q1("SELECT count(*) FROM popug.mail WHERE status = 'pending'"), 0, "no mail is left behind")

# ---- the mailer's clock: a lease runs from the real time ----
# A pass sends one mail after another, each claimed with a lease of the
# SMTP timeout plus a second.  Were the lease counted from the pass's start
# (now()), the mail claimed 6 s into the pass would get a lease that ran
# out 2 s before, and a mail_dispatch() then would send it a second time
# while the mailer is still sending it.
smtp_stop(server)
server = smtp_start("--slow", "2")
settings(smtp_timeout=3000)
q("SELECT popug.event_append('PayoutMade', 1, 'payout', a.id, jsonb_build_object('account_id', a.id, "
  "'email', 'slowlease' || i || '@example.com', 'billing_day', '2026-11-22'::date, 'amount', 10)) "
  "FROM popug.account a, generate_series(1, 5) i WHERE a.login = 't_mail'")
LEASED = "FROM popug.mail WHERE to_addr LIKE 'slowlease%'"
ok(wait_for(lambda: q1("SELECT count(*) " + LEASED + " AND attempts >= 1") >= 4, 30, 0.05),
   "in one pass the mailer claims the fourth mail, 6 s after the first")
left = q1("SELECT min(next_attempt_at - clock_timestamp()) " + LEASED + " AND status = 'pending' AND attempts >= 1")
q1("SELECT popug.mail_dispatch(100)")
ok(wait_for(lambda: q1("SELECT count(*) " + LEASED + " AND status = 'sent'") == 5, 30), "all five are sent")
ok(left is not None and left.total_seconds() > 0,
   "the lease of the mail being sent had not run out when mail_dispatch() ran (%.1f s left)"
   % (left.total_seconds() if left is not None else float("nan")))
ids = [re.search(r"Message-ID: <([^>]*)>", m["data"]).group(1)
       for m in received() if m["rcpt_tos"][0].startswith("slowlease")]
is_(sorted(collections.Counter(ids).values()), [1] * 5,
    "each reached the server once: a concurrent mail_dispatch() sent none of them again")

# ---- a failed mail, resent by an admin ----
smtp_stop(server)
settings(mail_max_attempts=1)
ef = payout("dave@example.com")
ok(wait_for(lambda: status(ef) == "failed", 10), "with the server down and one attempt allowed, a mail fails")
server = smtp_start()
q("SET ROLE t_mail_admin; SELECT popug.mail_resend(id) FROM popug.mails WHERE status = 'failed' AND to_addr = 'dave@example.com'")
ok(wait_for(lambda: status(ef) == "sent", 10), "resent by an admin, the mailer delivers it")
is_(len(received("dave@example.com")), 1, "once")

smtp_stop(server)
for k in ("smtp_url", "smtp_from", "mail_retry_base", "mail_max_attempts", "smtp_timeout"):
    q("ALTER SYSTEM RESET popug.%s" % k)
q("SELECT pg_reload_conf()")
done()
