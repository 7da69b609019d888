#!/usr/bin/env python3
"""A webhook receiver for the local stack: prints each Alertmanager
notification as one line per alert. Listens on 127.0.0.1 only.

usage: python3 deploy/webhook.py [PORT]   (default 9099)"""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        if length > 1 << 20:
            self.send_response(413)
            self.end_headers()
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self.send_response(400)
            self.end_headers()
            return
        for alert in body.get("alerts", []):
            labels = alert.get("labels", {})
            notes = alert.get("annotations", {})
            print(
                f"[{self.path.strip('/') or 'webhook'}] {alert.get('status', '?').upper():8} "
                f"{labels.get('alertname', '?')} ({labels.get('severity', '-')}): "
                f"{notes.get('description', '')}",
                flush=True,
            )
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9099
    print(f"webhook receiver on http://127.0.0.1:{port}/", flush=True)
    HTTPServer(("127.0.0.1", port), Receiver).serve_forever()
