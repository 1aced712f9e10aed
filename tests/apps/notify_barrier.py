# notify_barrier.py: a short-lived sd_notify sender, as `systemd-notify --ready` is: sends
# READY=1, then BARRIER=1 with a pipe's write end, waits until runner closes it, and exits
# at once. Its pid is not the instance's, so runner must attribute it (through /proc)
# before it releases the barrier.
import os, select, socket, sys

addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(addr)
s.send(b"READY=1")
r, w = os.pipe()
s.sendmsg([b"BARRIER=1"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, bytes(memoryview(__import__("array").array("i", [w]))))])
os.close(w)
p = select.poll()
p.register(r, select.POLLHUP)
p.poll(5000)
os._exit(0)
