"""Chaos test cluster app (tests/chaos.rs): an HTTP server on the LISTEN_FDS socket (fd 3)
that says READY=1 over NOTIFY_SOCKET, ignores the signals runner forwards (SIGHUP, SIGUSR1,
SIGUSR2) and on SIGINT stops accepting, finishes the requests in flight, then exits 0."""
import http.server
import os
import signal
import socket
import sys
import threading
import time

for s in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(s, signal.SIG_IGN)


def say(what):
    """One line per lifecycle step, in epoch ms, to match a failed request against."""
    print(f"chaos_http {os.getpid()} {what} at {int(time.time() * 1000)}", file=sys.stderr, flush=True)


def notify(message):
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(message.encode(), path)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"pid {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    # Non-daemon handler threads, so server_close() waits for the requests in flight.
    daemon_threads = False


assert os.environ.get("LISTEN_PID") == str(os.getpid()), "no LISTEN_PID for me"
sock = socket.socket(fileno=3)
# Shared by every instance: a select() wake-up that another instance wins must leave this
# one's accept() with EAGAIN, not blocked until the next connection (or the SIGKILL at
# kill_timeout when a stop comes with no traffic).
sock.setblocking(False)
server = Server(sock.getsockname()[:2], Handler, bind_and_activate=False)
server.socket = sock


def stop(*_):
    say("SIGINT")
    threading.Thread(target=server.shutdown).start()


signal.signal(signal.SIGINT, stop)
notify("READY=1")
say("ready")
server.serve_forever(poll_interval=0.05)
server.server_close()
say("exits")
