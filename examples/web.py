"""A tiny HTTP server for the bundled example: answers every GET with a greeting.

Under runner's cluster mode it takes the listening socket from LISTEN_FDS (fd 3), so
every instance serves the same port and a reload never refuses a connection; run on
its own, it binds PORT (default 8080). Standard library only."""
import http.server
import os
import signal
import socket
import sys

greeting = os.environ.get("GREETING", "hello")
instance = os.environ.get("NODE_APP_INSTANCE", "0")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{greeting} from instance {instance} (pid {os.getpid()})\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


if os.environ.get("LISTEN_PID") == str(os.getpid()) and os.environ.get("LISTEN_FDS"):
    sock = socket.socket(fileno=3)
    # Shared by every instance: one that loses a wake-up to another must not block in
    # accept() (it would sit there through a stop until kill_timeout).
    sock.setblocking(False)
    server = http.server.ThreadingHTTPServer(
        sock.getsockname()[:2], Handler, bind_and_activate=False
    )
    server.socket = sock
else:
    port = int(os.environ.get("PORT", "8080"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)


def stop(signum, frame):
    print(f"got signal {signum}, shutting down", flush=True)
    sys.exit(0)


signal.signal(signal.SIGINT, stop)
host, port = server.socket.getsockname()[:2]
print(f"listening on http://{host}:{port}/ (pid {os.getpid()})", flush=True)
# wait_ready: tell runner this instance is ready (systemd's sd_notify protocol).
if os.environ.get("NOTIFY_SOCKET"):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
server.serve_forever()
