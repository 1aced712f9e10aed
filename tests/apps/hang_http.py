#!/usr/bin/env python3
"""HTTP server on 127.0.0.1:PORT (argv[1]) that answers 200 until the file `hang` exists
in its cwd; from then on it accepts connections but never answers (a stuck event loop
that keeps running). Appends "PID MS" to `starts` when it starts, and removes `hang`."""
import http.server
import os
import sys
import time

port = int(sys.argv[1])
try:
    os.unlink("hang")
except FileNotFoundError:
    pass


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        while os.path.exists("hang"):
            time.sleep(3600)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", port), Handler)
with open("starts", "a") as f:
    f.write(f"{os.getpid()} {int(time.time() * 1000)}\n")
server.serve_forever()
