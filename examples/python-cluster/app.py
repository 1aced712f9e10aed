"""A Python HTTP server for runner's cluster mode: takes the listening socket from
LISTEN_FDS (systemd socket activation), says READY=1 over NOTIFY_SOCKET, and finishes
in-flight requests on SIGINT. Standard library only."""
import http.server
import os
import signal
import socket
import threading


def notify(message: str) -> None:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(message.encode(), path)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from pid {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


if os.environ.get("LISTEN_PID") == str(os.getpid()) and int(os.environ.get("LISTEN_FDS", "0")) >= 1:
    sock = socket.socket(fileno=3)
    # Every instance waits on this one socket: when a connection wakes them all, the
    # losers' accept() must fail with EAGAIN, not block (where a stop would find them).
    sock.setblocking(False)
    server = http.server.ThreadingHTTPServer(sock.getsockname()[:2], Handler, bind_and_activate=False)
    server.socket = sock
else:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8080"))), Handler)

# shutdown() must not run on the thread that serves, so the signal only starts it.
signal.signal(signal.SIGINT, lambda *_: threading.Thread(target=server.shutdown).start())
notify("READY=1\nSTATUS=serving")
server.serve_forever()
