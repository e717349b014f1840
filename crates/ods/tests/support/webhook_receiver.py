"""A webhook receiver for tests/webhooks.rs: records every request as a JSON line in
LOG, verifying its signature with the `standardwebhooks` library (the reference
implementation of the specification) against the secret the test wrote for that path
in SECRETS. /flaky/<n>/... answers 500 to the first n requests on that path, then 204;
/slow/... waits 30 s; anything else answers 204. Prints its port, then serves."""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

LOG, SECRETS = sys.argv[1], sys.argv[2]
lock = threading.Lock()
seen = {}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            with open(SECRETS) as f:
                secret = json.load(f).get(self.path)
        except (OSError, ValueError):
            secret = None
        verified = False
        if secret:
            try:
                Webhook(secret).verify(body, headers)
                verified = True
            except Exception as e:  # noqa: BLE001 - recorded for the test to see
                verified = "failed: %s" % e
        with lock:
            n = seen.get(self.path, 0) + 1
            seen[self.path] = n
        status = 204
        parts = self.path.strip("/").split("/")
        if parts[0] == "flaky" and n <= int(parts[1]):
            status = 500
        if parts[0] == "slow":
            time.sleep(30)
        with lock, open(LOG, "a") as f:
            f.write(json.dumps({"path": self.path, "headers": headers, "body": body,
                                "verified": verified, "status": status,
                                "at": time.time()}) + "\n")
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
