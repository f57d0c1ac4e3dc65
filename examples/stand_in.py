"""Stand-in for the order, stock and mail services of examples/order-flow.yaml (stdlib only).

    python examples/stand_in.py [--port 8931]

GET /orders/<id> answers an order with 12 lines; POST /reserve takes half a second; POST /send
takes 0.3 s and counts how many sends are in flight at once (GET /stats shows the peak, which
`max_concurrency: 5` keeps at 5). Every request's Idempotency-Key is logged to stdout.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.sent = 0

    def __enter__(self) -> int:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            return self.in_flight

    def __exit__(self, *_: object) -> None:
        with self.lock:
            self.in_flight -= 1
            self.sent += 1


SENDS = Counter()


class StandIn(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/orders/"):
            order = self.path.rsplit("/", 1)[-1]
            lines = [{"sku": f"{order}-sku-{n}", "quantity": 1 + n % 3} for n in range(12)]
            time.sleep(0.1)
            self._reply({"order": order, "lines": lines})
        elif self.path == "/stats":
            self._reply({"sends": SENDS.sent, "peak_sends_in_flight": SENDS.peak})
        else:
            self._reply({"error": "not found"}, 404)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        if self.path == "/reserve":
            time.sleep(0.5)
            self._reply({"reserved": True, "lines": len((body or {}).get("lines", []))})
        elif self.path == "/send":
            with SENDS as now:
                time.sleep(0.3)
                self._reply({"sent": body, "in_flight": now, "peak": SENDS.peak})
        else:
            self._reply({"error": "not found"}, 404)

    def _reply(self, value: object, status: int = 200) -> None:
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        key = self.headers.get("Idempotency-Key", "-")
        print(f"stand-in: {self.command} {self.path} key={key}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8931)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), StandIn)
    print(f"stand-in: listening on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
