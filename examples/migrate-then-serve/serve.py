"""The server: refuses to start without the schema the migration writes."""
import http.server
import os
import sys

try:
    with open("data/schema") as f:
        schema = f.read().strip()
except FileNotFoundError:
    sys.exit("no data/schema: the migration has not run")

port = int(os.environ.get("PORT", "8095"))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"serving with {schema}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


print(f"listening on 127.0.0.1:{port}", flush=True)
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
