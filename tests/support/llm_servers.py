"""Small real HTTP servers on 127.0.0.1 that speak Ollama's and OpenAI's APIs.

No LLM server can be reached from the test machines, so the tests start these
in a background thread (on a free port, stopped on exit) and point the course's
clients at them. Each server answers from a script and records every request
body, so the tests check what the client really sent.

A script is a list of replies used in turn, then `default` (a callable given
the request body, or a text). A reply is
- a text: the model's answer (HTTP 200);
- an int: that HTTP status with an error body (429 asks for a 10 ms pause);
- a float: wait that many seconds first (a slow server), then answer "60".

    with FakeOllama(["85", 500, "70"]) as server:      # server.url, server.bodies
        ...
    with FakeOpenAI(["Sure."], api_key="sk-test") as server:   # server.url ends in /v1
        ...
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _ScriptedServer:
    """The thread, the script and the request log; subclasses define the routes."""

    def __init__(self, replies=(), default="50"):
        self.replies = list(replies)
        self.default = default
        self.bodies = []
        self.headers = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.root = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def next_reply(self, body):
        if self.replies:
            reply = self.replies.pop(0)
        else:
            reply = self.default(body) if callable(self.default) else self.default
        if isinstance(reply, float):  # a slow server
            time.sleep(reply)
            reply = "60"
        return reply

    def _handler_class(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest's output clean
                pass

            def send_json(self, status, payload, headers=()):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in headers:
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the timeout tests)

            def read_body(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.bodies.append(body)
                owner.headers.append({name.lower(): value for name, value in self.headers.items()})
                return body

            def do_GET(self):
                owner.get(self)

            def do_POST(self):
                owner.post(self)

        return Handler

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class FakeOllama(_ScriptedServer):
    """Ollama: GET /api/tags, POST /api/chat and POST /api/generate (raw prompts)."""

    def __init__(self, replies=(), models=("llama3:latest",), default="50"):
        super().__init__(replies, default)
        self.models = list(models)
        self.url = self.root

    def has_model(self, name):
        return name in self.models or f"{name}:latest" in self.models

    def get(self, handler):
        if handler.path != "/api/tags":
            return handler.send_json(404, {"error": "not found"})
        handler.send_json(200, {"models": [{"name": name} for name in self.models]})

    def post(self, handler):
        if handler.path not in ("/api/chat", "/api/generate"):
            return handler.send_json(404, {"error": "not found"})
        body = handler.read_body()
        if not self.has_model(body["model"]):
            return handler.send_json(404, {"error": f"model '{body['model']}' not found"})
        reply = self.next_reply(body)
        if isinstance(reply, int):
            return handler.send_json(reply, {"error": "internal error"})
        if handler.path == "/api/generate":
            return handler.send_json(200, {"model": body["model"], "response": reply,
                                           "done": True})
        handler.send_json(200, {"model": body["model"], "done": True,
                                "message": {"role": "assistant", "content": reply}})


class FakeOpenAI(_ScriptedServer):
    """OpenAI's API: GET /v1/models and POST /v1/chat/completions, with a bearer key."""

    def __init__(self, replies=(), models=("gpt-4o",), api_key="sk-test", default="50"):
        super().__init__(replies, default)
        self.models = list(models)
        self.api_key = api_key
        self.url = f"{self.root}/v1"

    def authorized(self, handler):
        if handler.headers.get("Authorization") == f"Bearer {self.api_key}":
            return True
        handler.send_json(401, {"error": {"message": "Incorrect API key provided",
                                          "type": "invalid_request_error",
                                          "code": "invalid_api_key"}})
        return False

    def get(self, handler):
        if handler.path != "/v1/models":
            return handler.send_json(404, {"error": {"message": "not found"}})
        if self.authorized(handler):
            handler.send_json(200, {"object": "list", "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "test"}
                for name in self.models]})

    def post(self, handler):
        if handler.path != "/v1/chat/completions":
            return handler.send_json(404, {"error": {"message": "not found"}})
        body = handler.read_body()
        if not self.authorized(handler):
            return
        reply = self.next_reply(body)
        if isinstance(reply, int):
            headers = [("retry-after-ms", "10")] if reply == 429 else []
            return handler.send_json(reply, {"error": {"message": f"HTTP {reply}",
                                                       "type": "server_error"}}, headers)
        handler.send_json(200, {
            "id": f"chatcmpl-{len(self.bodies)}", "object": "chat.completion", "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": reply}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        })
