# late_listen.py KIND PORT STAMP [DELAY]: after DELAY seconds (default 1) appends
# "<ms> listening" to STAMP and then listens on 127.0.0.1:PORT: KIND "tcp" accepts and
# closes connections, KIND "http" answers every request with 200.
import http.server, socket, sys, time

kind, port, stamp = sys.argv[1], int(sys.argv[2]), sys.argv[3]
delay = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
time.sleep(delay)
with open(stamp, "a") as f:
    f.write(f"{int(time.time() * 1000)} listening\n")
if kind == "http":
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        def log_message(self, *a):
            pass
    http.server.HTTPServer.allow_reuse_address = True
    http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
else:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(16)
    while True:
        c, _ = s.accept()
        c.close()
