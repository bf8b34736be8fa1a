"""A tiny HTTP server on 127.0.0.1 that answers from a route table and records every request."""

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    status: int = 200
    body: dict | str = ""
    headers: dict = field(default_factory=dict)


class RecordingServer:
    """``routes`` maps a path to an Answer; other paths answer 404. ``requests`` lists (method, path, body)."""

    def __init__(self, routes: dict[str, Answer] | None = None):
        self.routes = routes or {}
        self.requests: list[tuple[str, str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                server.requests.append((self.command, self.path, body))
                answer = server.routes.get(self.path.split("?")[0], Answer(404, "not found"))
                payload = json.dumps(answer.body) if isinstance(answer.body, dict) else answer.body
                self.send_response(answer.status)
                content_type = "application/json" if isinstance(answer.body, dict) else "text/plain"
                self.send_header("Content-Type", content_type)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload.encode())))
                self.end_headers()
                self.wfile.write(payload.encode())

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> "RecordingServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
