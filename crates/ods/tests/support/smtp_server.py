"""An SMTP server for tests/email.rs (aiosmtpd on loopback): records each accepted
message as a JSON line in LOG (envelope, raw content, and the headers and both
bodies as Python's email parser decodes them). Usage:
  smtp_server.py LOG [--refuse N] [--starttls CERT KEY]
--refuse N answers the first N DATA commands with 451 (a transient refusal);
--starttls offers STARTTLS with CERT/KEY and requires it before MAIL.
Prints its port, then serves until killed."""

import email
import email.policy
import json
import socket
import ssl
import sys
import threading
import time

from aiosmtpd.controller import Controller

args = sys.argv[1:]
LOG = args.pop(0)
refuse = 0
tls = None
while args:
    a = args.pop(0)
    if a == "--refuse":
        refuse = int(args.pop(0))
    elif a == "--starttls":
        cert, key = args.pop(0), args.pop(0)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
lock = threading.Lock()
state = {"data": 0}


class Handler:
    async def handle_DATA(self, server, session, envelope):
        with lock:
            state["data"] += 1
            n = state["data"]
        if n <= refuse:
            with lock, open(LOG + ".refused", "a") as f:
                f.write("%s\n" % time.time())
            return "451 4.3.0 try again later"
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        plain = msg.get_body(("plain",))
        html = msg.get_body(("html",))
        with lock, open(LOG, "a") as f:
            f.write(json.dumps({
                "subject": msg["subject"],
                "from_header": msg["from"],
                "to_header": msg["to"],
                "content_type": msg.get_content_type(),
                "text": plain.get_content() if plain else None,
                "html": html.get_content() if html else None,
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "content": envelope.content.decode("utf-8", "replace"),
                "tls": session.ssl is not None,
                "at": time.time(),
            }) + "\n")
        return "250 OK"


s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
kw = {}
if tls is not None:
    kw = {"tls_context": tls, "require_starttls": True}
controller = Controller(Handler(), hostname="127.0.0.1", port=port, **kw)
controller.start()
print(port, flush=True)
while True:
    time.sleep(3600)
