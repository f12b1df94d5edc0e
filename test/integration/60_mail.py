"""Payout mail against a real SMTP server on 127.0.0.1 (SPEC 6): delivery
with proper headers, retries while the server is down, 5xx and 4xx
handling, header injection, settings, a mailer killed mid-send, leases
against a concurrent mail_dispatch() in a long pass, and a failed mail
resent by an admin."""
import collections
import os
import re
import signal
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import ensure_roles, q, q1, wait_for  # noqa: E402


def settings(**kv):
    for k, v in kv.items():
        q("ALTER SYSTEM SET popug.%s = %%s" % k, (str(v),))
    q("SELECT pg_reload_conf()")
    time.sleep(0.3)


def payout(email, amount="12.50", day="2026-11-23"):
    acc = q1("SELECT id FROM popug.account WHERE login = 't_mail'")
    eid = q1("SELECT popug.event_append('PayoutMade', 1, 'payout', %s, "
             "jsonb_build_object('account_id', %s::uuid, 'email', %s::text, 'billing_day', %s::date, "
             "'amount', %s::numeric))", (acc, acc, email, day, amount))
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


@pytest.fixture
def mailer(popug, smtp):
    """An account to pay, an admin, and the mailer sending to the test SMTP
    server: retries from 1 s, 3 attempts, a 2 s timeout."""
    ensure_roles("t_mail", "t_plain", "t_mail_admin")
    q("SELECT popug.account_create('t_mail', 'mail@example.com', 'worker')")
    q("SELECT popug.account_create('t_mail_admin', 'mail-admin@example.com', 'admin')")
    settings(smtp_url="smtp://127.0.0.1:%d" % smtp.port, smtp_from="popug@example.com", mail_retry_base=1,
             mail_max_attempts=3, smtp_timeout=2000)
    return smtp


def test_delivery(mailer):
    ev = payout("alice@example.com", "123.45", "2026-11-20")
    assert wait_for(lambda: status(ev) == "sent", 10), "the mailer delivers a payout mail soon after the payout commits"
    msgs = mailer.received("alice@example.com")
    assert len(msgs) == 1, "exactly one message arrived for the recipient"
    data = msgs[0]["data"]
    head, _, body = data.partition("\r\n\r\n")
    assert msgs[0]["mail_from"] == "popug@example.com", "MAIL FROM is popug.smtp_from"
    for h in ("Date: ", "Message-ID: <%s@popug>" % ev, "From: <popug@example.com>", "To: <alice@example.com>",
              "Subject: popug payout for 2026-11-20", "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"):
        assert ("\r\n" + head).find("\r\n" + h) >= 0, "header %s" % h.strip()
    assert "123.45" in body and "2026-11-20" in body, "the body says the amount and the day"
    assert "\n" not in data.replace("\r\n", ""), "every line ends in CRLF"


def test_5xx_fails_at_once_4xx_is_retried_then_failed(mailer):
    e5 = payout("fail5xx@example.com")
    e4 = payout("fail4xx@example.com")
    assert wait_for(lambda: status(e5) == "failed", 10), "a 5xx reply fails the mail at once"
    m5 = mail(e5)
    assert m5[1] == 1 and "550" in (m5[2] or ""), "after one attempt, keeping the server's reply"
    assert wait_for(lambda: (mail(e4) or [None, 0])[1] >= 1, 10), "a 4xx reply is retried"
    m4 = mail(e4)
    assert m4[0] == "pending" and "451" in (m4[2] or ""), "the mail stays pending with the reply"
    eb = payout("bob@example.com")
    assert wait_for(lambda: status(eb) == "sent", 10), "other mail is sent meanwhile"
    assert status(e4) == "pending", "while the 4xx mail still waits for its retry"
    assert wait_for(lambda: status(e4) == "failed", 20), "after popug.mail_max_attempts (3) the 4xx mail is failed"
    assert mail(e4)[1] == 3, "after exactly 3 attempts"


def test_header_injection(mailer):
    ei = payout("evil@example.com\r\nBcc: victim@example.com")
    assert wait_for(lambda: status(ei) == "failed", 10), "an address with CR/LF is a failed mail, not a sent one"
    assert "invalid recipient" in (mail(ei)[2] or ""), "with a clear error"
    assert len(mailer.received("victim@example.com")) == 0, "nothing reached the injected recipient"
    assert q1("SELECT count(*) FROM popug.worker_status WHERE worker = 'mailer' AND pid IS NOT NULL") == 1, \
        "the mailer is still running"


def test_settings(mailer):
    with pytest.raises(Exception, match="smtp://"):
        q("SET popug.smtp_url = 'http://127.0.0.1/'")   # a non-smtp URL is refused
    with pytest.raises(Exception):
        q("ALTER SYSTEM SET popug.smtp_url = 'file:///etc/passwd'")   # also in ALTER SYSTEM
    q("ALTER SYSTEM SET popug.smtp_password = 's3cret'")
    q("SELECT pg_reload_conf()")
    with pytest.raises(Exception, match="must be superuser|permission"):
        q("SET ROLE t_plain; SHOW popug.smtp_password")   # an ordinary role cannot read the SMTP password
    with pytest.raises(Exception):
        q("SET ROLE t_plain; SELECT current_setting('popug.smtp_password')")   # nor through current_setting()
    assert q1("SELECT current_setting('popug.smtp_password')") == "s3cret", "(a superuser can)"


def test_server_down_retries_with_growing_delays_then_delivered_once(mailer):
    mailer.stop()
    settings(mail_max_attempts=10)
    ed = payout("carol@example.com")
    waits = {}
    end = time.time() + 30
    while time.time() < end and len(waits) < 3:
        m = mail(ed)
        if m and m[1] >= 1 and m[1] not in waits:
            waits[m[1]] = m[3].total_seconds()
        time.sleep(0.02)
    assert len(waits) == 3, "with the server down the mail is retried (attempts %s)" % sorted(waits)
    md = mail(ed)
    assert md[0] == "pending" and md[2], "still pending, with the connection error"
    assert waits[3] > waits[1], "the delays grow: %s" % {k: round(v, 2) for k, v in waits.items()}
    mailer.start()
    assert wait_for(lambda: status(ed) == "sent", 20), "delivered once the server is back"
    assert len(mailer.received("carol@example.com")) == 1, "exactly once"


def test_the_mailer_killed_mid_send(mailer):
    ea = payout("alice@example.com")
    assert wait_for(lambda: status(ea) == "sent", 10), "a mail sent before"
    mailer.start("--slow", "1.5")
    ek = payout("slow@example.com")
    assert wait_for(lambda: (mail(ek) or [None, 0])[1] >= 1, 10), "a slow send is under way"
    time.sleep(0.3)
    pid = q1("SELECT pid FROM popug.worker_status WHERE worker = 'mailer'")
    os.kill(pid, signal.SIGKILL)   # the postmaster restarts every backend after that
    assert wait_for(lambda: status(ek) == "sent", 40, 0.2), "the mail is delivered after the mailer comes back"
    n = len(mailer.received("slow@example.com"))
    assert 1 <= n <= 2, "at most once more than the unconfirmed attempt (%d received)" % n
    assert len(mailer.received("alice@example.com")) == 1, "and no other mail was sent again"
    assert q1("SELECT count(*) FROM popug.mail WHERE status = 'pending'") == 0, "no mail is left behind"


def test_a_lease_runs_from_the_real_time(mailer):
    # A pass sends one mail after another, each claimed with a lease of the
    # SMTP timeout plus a second.  Were the lease counted from the pass's
    # start (now()), the mail claimed 6 s into the pass would get a lease
    # that ran out 2 s before, and a mail_dispatch() then would send it a
    # second time while the mailer is still sending it.
    mailer.start("--slow", "2")
    settings(smtp_timeout=3000)
    q("SELECT popug.event_append('PayoutMade', 1, 'payout', a.id, jsonb_build_object('account_id', a.id, "
      "'email', 'slowlease' || i || '@example.com', 'billing_day', '2026-11-22'::date, 'amount', 10)) "
      "FROM popug.account a, generate_series(1, 5) i WHERE a.login = 't_mail'")
    leased = "FROM popug.mail WHERE to_addr LIKE 'slowlease%'"
    assert wait_for(lambda: q1("SELECT count(*) " + leased + " AND attempts >= 1") >= 4, 30, 0.05), \
        "in one pass the mailer claims the fourth mail, 6 s after the first"
    left = q1("SELECT min(next_attempt_at - clock_timestamp()) " + leased +
              " AND status = 'pending' AND attempts >= 1")
    q1("SELECT popug.mail_dispatch(100)")
    assert wait_for(lambda: q1("SELECT count(*) " + leased + " AND status = 'sent'") == 5, 30), "all five are sent"
    assert left is not None and left.total_seconds() > 0, \
        "the lease of the mail being sent had not run out when mail_dispatch() ran"
    ids = [re.search(r"Message-ID: <([^>]*)>", m["data"]).group(1)
           for m in mailer.received() if m["rcpt_tos"][0].startswith("slowlease")]
    assert sorted(collections.Counter(ids).values()) == [1] * 5, \
        "each reached the server once: a concurrent mail_dispatch() sent none of them again"


def test_a_failed_mail_resent_by_an_admin(mailer):
    mailer.stop()
    settings(mail_max_attempts=1)
    ef = payout("dave@example.com")
    assert wait_for(lambda: status(ef) == "failed", 10), "with the server down and one attempt allowed, a mail fails"
    mailer.start()
    q("SET ROLE t_mail_admin; SELECT popug.mail_resend(id) FROM popug.mails "
      "WHERE status = 'failed' AND to_addr = 'dave@example.com'")
    assert wait_for(lambda: status(ef) == "sent", 10), "resent by an admin, the mailer delivers it"
    assert len(mailer.received("dave@example.com")) == 1, "once"
