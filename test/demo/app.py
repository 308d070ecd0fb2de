# The demo's backend, run by gitgw's units driver as app@PORT.service on
# each gateway: every answer names the instance and the gateway (the
# hostname of the gateway's namespaces) that served it; /health answers
# "Still alive", the string the site's health check expects.
import http.server
import socket
import sys

port = int(sys.argv[1])
name = "app@%d on %s" % (port, socket.gethostname())


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("Still alive\n" if self.path == "/health" else name + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("", port), Handler).serve_forever()
