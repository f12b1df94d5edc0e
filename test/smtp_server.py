#!/usr/bin/python3
"""A small SMTP server for popug's tests and demo (aiosmtpd), on 127.0.0.1.

Every message it accepts is appended to --record as one JSON line:
{"mail_from", "rcpt_tos", "data", "received_at"}.  Recipients steer it:
  fail5xx@...  refused at RCPT with 550
  fail4xx@...  refused at RCPT with 451
  slow@...     the reply to DATA comes --slow seconds late
--mode 4xx refuses every recipient with 451 (a server in trouble).
Runs until killed.
"""
import argparse
import asyncio
import json
import time

from aiosmtpd.controller import Controller


class Recorder:
    def __init__(self, path, mode, slow):
        self.path, self.mode, self.slow = path, mode, slow

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0]
        if self.mode == "4xx" or "fail4xx" in local:
            return "451 4.3.0 try again later"
        if "fail5xx" in local:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(r.split("@", 1)[0].startswith("slow") for r in envelope.rcpt_tos):
            await asyncio.sleep(self.slow)
        with open(self.path, "a") as f:
            f.write(json.dumps({
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "data": envelope.original_content.decode("utf-8", "replace"),
                "received_at": time.time(),
            }) + "\n")
        return "250 2.0.0 queued"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--record", required=True)
    p.add_argument("--mode", default="ok", choices=["ok", "4xx"])
    p.add_argument("--slow", type=float, default=5.0)
    a = p.parse_args()
    open(a.record, "a").close()
    c = Controller(Recorder(a.record, a.mode, a.slow), hostname="127.0.0.1", port=a.port)
    c.start()
    try:
        while True:
            time.sleep(3600)
    finally:
        c.stop()


if __name__ == "__main__":
    main()
