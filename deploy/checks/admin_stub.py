"""A stand-in for redauth's admin endpoints, for testing the Job scripts in deploy/kubernetes/.

Serves on 127.0.0.1 (a free port, written to --port-file once listening) until killed:
  GET  /readyz        503 for the first --not-ready requests, then 200
  POST /quitquitquit  200, and appends "quitquitquit" to --log
Anything else gets 404. Used by scripts/check-deploy only.
"""

import argparse
import http.server
import os
import threading


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--not-ready", type=int, default=0)
    args = parser.parse_args()
    lock = threading.Lock()
    state = {"not_ready": args.not_ready}

    class Handler(http.server.BaseHTTPRequestHandler):
        def reply(self, status):
            body = b"ok\n" if status == 200 else b"no\n"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path != "/readyz":
                return self.reply(404)
            with lock:
                ready = state["not_ready"] <= 0
                state["not_ready"] -= 1
            self.reply(200 if ready else 503)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if self.path != "/quitquitquit":
                return self.reply(404)
            with open(args.log, "a") as log:
                log.write("quitquitquit\n")
            self.reply(200)

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
