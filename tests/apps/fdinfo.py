# fdinfo.py OUT: writes to OUT.<NODE_APP_INSTANCE> what socket activation gave it, as KEY=VALUE lines: PID,
# LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES, FD3_ADDR (host:port of fd 3), FD3_LISTENING
# (SO_ACCEPTCONN), FD3_TYPE; then idles until a signal.
import os, signal, socket, sys

out = sys.argv[1] + "." + os.environ.get("NODE_APP_INSTANCE", "x")
lines = [f"PID={os.getpid()}"]
for k in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
    lines.append(f"{k}={os.environ.get(k, '')}")
try:
    s = socket.socket(fileno=3)
    host, port = s.getsockname()[:2]
    lines.append(f"FD3_ADDR={host}:{port}")
    lines.append(f"FD3_LISTENING={s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)}")
    lines.append(f"FD3_TYPE={'stream' if s.type == socket.SOCK_STREAM else s.type}")
    s.detach()
except OSError as e:
    lines.append(f"FD3_ERROR={e}")
with open(out + ".tmp", "w") as f:
    f.write("\n".join(lines) + "\n")
os.rename(out + ".tmp", out)
signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    signal.pause()
