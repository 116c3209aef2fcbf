#!/usr/bin/env python3
"""A provider's tenant API that answers GET /environments and nothing else (503):
a provider whose daemon is down but whose front still lists environments, so
`gpunet run` leases from it and then waits for a start that never comes.

    envs_only.py PORT CERT KEY
"""
import http.server
import json
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/environments":
            self.answer(200, {"environments": [{"name": "host", "kind": "sandbox"}]})
        else:
            self.answer(503, {"error": {"code": "unavailable", "message": "down"}})

    do_POST = do_GET

    def log_message(self, *args):
        pass


port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
server = http.server.HTTPServer(("127.0.0.1", port), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
