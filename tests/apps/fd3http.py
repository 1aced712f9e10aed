# fd3http.py [FAIL_FLAG]: an HTTP/1.0 server on the socket-activation fd 3 (LISTEN_FDS).
# Exits 1 at start when the file FAIL_FLAG exists (a broken new version). Sends sd_notify
# READY=1 once it serves. Answers every request with its pid. On SIGINT or SIGTERM it stops
# accepting, finishes the request in hand and exits 0.
import os, select, signal, socket, sys

if len(sys.argv) > 1 and os.path.exists(sys.argv[1]):
    sys.stderr.write("fd3http: fail flag present, exiting 1\n")
    sys.exit(1)
if os.environ.get("LISTEN_PID") != str(os.getpid()) or int(os.environ.get("LISTEN_FDS", "0")) < 1:
    sys.stderr.write("fd3http: no socket activation\n")
    sys.exit(3)

stopping = False
def stop(_n, _f):
    global stopping
    stopping = True
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)

ls = socket.socket(fileno=3)
ls.setblocking(False)

addr = os.environ.get("NOTIFY_SOCKET")
if addr:
    n = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    n.connect("\0" + addr[1:] if addr.startswith("@") else addr)
    n.send(b"READY=1\nSTATUS=serving")
    n.close()

body = str(os.getpid()).encode()
while not stopping:
    try:
        r, _, _ = select.select([ls], [], [], 0.1)
    except InterruptedError:
        continue
    if not r:
        continue
    try:
        c, _ = ls.accept()
    except (BlockingIOError, InterruptedError):
        continue
    c.setblocking(True)
    c.settimeout(5)
    try:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
    except OSError:
        pass
    finally:
        c.close()
sys.exit(0)
