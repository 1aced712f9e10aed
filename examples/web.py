"""A tiny HTTP server for the bundled example: answers every GET with a greeting."""
import http.server
import os
import signal
import sys

port = int(os.environ.get("PORT", "8080"))
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


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)


def stop(signum, frame):
    print(f"web[{instance}]: got signal {signum}, shutting down", flush=True)
    sys.exit(0)


signal.signal(signal.SIGINT, stop)
print(f"web[{instance}]: listening on http://127.0.0.1:{port}/", flush=True)
server.serve_forever()
