# log_gen.py MODE [ARGS...]: output generator for tests/logs.rs.
#
#   lines N TAG [WIDTH]   N lines "TAG NNNNNN" (padded with '.' to WIDTH bytes when given),
#                         one write(2) per line, then exit 0
#   bulk N TAG            N lines "TAG NNNNNN" through a buffered stdout, then exit 0
#   both N                "out NNNNNN" on stdout and "err NNNNNN" on stderr, alternating
#   tick [MS]             "tick NNNNNN" every MS ms (default 100) forever
#   long BYTES            BYTES bytes of a repeating "0123456789" and no newline, exit 0
#   binary                the byte strings of BINARY below, each ended by "\n", exit 0
#   spam SIGFILE          lines as fast as it can, forever; on SIGINT/SIGTERM writes the
#                         signal's name to SIGFILE and _exits at once (never flushes)
#
# TAG may contain "{i}", replaced by the instance number (NODE_APP_INSTANCE).
import os, signal, sys, time

BINARY = [b"\xff\xfe\x00\x01bin", b"\x00", b"caf\xc3\xa9 \xe9t\xe9 \x80\x81\r\t\x1b[0m"]


def write_all(fd, data):
    while data:
        n = os.write(fd, data)
        data = data[n:]


def tag():
    return sys.argv[3].replace("{i}", os.environ.get("NODE_APP_INSTANCE", "?"))


def line(t, i, width=0):
    s = "%s %06d" % (t, i)
    if width and len(s) < width:
        s += "." * (width - len(s))
    return (s + "\n").encode()


mode = sys.argv[1]
if mode == "lines":
    n, t = int(sys.argv[2]), tag()
    width = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    for i in range(n):
        write_all(1, line(t, i, width))
elif mode == "bulk":
    n, t = int(sys.argv[2]), tag()
    out = sys.stdout.buffer
    for i in range(n):
        out.write(line(t, i))
    out.flush()
elif mode == "both":
    n = int(sys.argv[2])
    for i in range(n):
        write_all(1, line("out", i))
        write_all(2, line("err", i))
elif mode == "tick":
    ms = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    i = 0
    while True:
        write_all(1, line("tick", i))
        i += 1
        time.sleep(ms / 1000.0)
elif mode == "long":
    n = int(sys.argv[2])
    data = (b"0123456789" * (n // 10 + 1))[:n]
    write_all(1, data)
elif mode == "binary":
    write_all(1, b"".join(b + b"\n" for b in BINARY))
elif mode == "spam":
    sigfile = sys.argv[2]

    def handler(n, _frame):
        with open(sigfile, "a") as f:
            f.write(signal.Signals(n).name + "\n")
        os._exit(0)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    open(sigfile + ".ready", "w").write(str(os.getpid()))
    chunk = b"".join(line("spam", i, 100) for i in range(100))
    while True:
        write_all(1, chunk)
else:
    sys.exit("unknown mode " + mode)
