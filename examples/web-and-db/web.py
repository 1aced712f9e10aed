"""The web app of the web-and-db example: checks once, at start, that PostgreSQL
accepts connections (with pg_isready), then serves the result on every GET.
Standard library only."""
import http.server
import os
import signal
import subprocess
import sys

host = os.environ.get("PGHOST", "/tmp/runner-example-pgdata")
pgport = os.environ.get("PGPORT", "5433")
port = int(os.environ.get("PORT", "8092"))

# runner starts this app only once db is online (depends_on + db's wait_ready), so this
# single check is expected to pass: no retry loop.
check = subprocess.run(
    ["pg_isready", "-h", host, "-p", pgport, "-U", "postgres"],
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
)
if check.returncode == 0:
    status = "db ok"
else:
    status = f"db not ready (pg_isready exit {check.returncode}): {check.stdout.strip()}"
print(f"web: {status}", flush=True)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{status}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)


def stop(signum, frame):
    print(f"web: got signal {signum}, shutting down", flush=True)
    sys.exit(0)


signal.signal(signal.SIGINT, stop)  # runner's default kill_signal
signal.signal(signal.SIGTERM, stop)
print(f"web: listening on http://127.0.0.1:{port}/", flush=True)
server.serve_forever()
