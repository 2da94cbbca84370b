"""Helpers of the steering tests: the tiny models' hooked layers and a chat-completions
server on 127.0.0.1 whose behaviour each request chooses by a word in its text."""

from __future__ import annotations

import json
import re
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# (family, layer): a vision layer of each family whose output reaches the language model
# (LLaVA's feature layer is vision_layers - 2, layer 0 here), and a language layer.
FAMILY_LAYERS = [("qwen3_vl", "vision.1"), ("gemma3", "vision.1"), ("llava", "vision.0"), ("llava", "language.1")]

SLOW, BROKEN, GARBAGE, RAMBLE, FLAKY = "slowpoke", "brokenware", "garbagetext", "ramblemode", "flakyonce"
"""Words that make the server: wait past the client's timeout, answer HTTP 500, answer a body
that is not a chat completion, answer a completion that is not the JSON asked for, and answer
HTTP 503 to the first request that has it and properly afterwards."""


def _text(body: dict) -> str:
    parts = []
    for message in body["messages"]:
        content = message["content"]
        parts += [content] if isinstance(content, str) else [p.get("text", "") for p in content]
    return "\n".join(parts)


def _answer(text: str) -> str:
    """A proper answer: the judge's JSON (captions containing 'yes' express the concept) or a label."""
    if "captions of the image" in text:
        lines = dict(re.findall(r"^([A-Z]): (.*)$", text, flags=re.M))
        return json.dumps({label: {"expressed": "yes" in caption, "reason": f"caption {label}"}
                           for label, caption in lines.items()})
    return 'Here you go: {"label": "red thing", "keywords": ["red", "crimson"]}'


class ChatServer:
    """A chat-completions endpoint in a thread; ``requests`` lists the texts it received and
    ``images`` how many images each request carried."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.images: list[int] = []
        self.flaky_seen = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                text = _text(body)
                server.requests.append(text)
                server.images.append(sum(1 for m in body["messages"] if not isinstance(m["content"], str)
                                         for p in m["content"] if p.get("type") == "image_url"))
                if self.path != "/v1/chat/completions" or self.headers.get("Authorization") != "Bearer sekrit":
                    return self._send(404, b"not here")
                if SLOW in text:
                    time.sleep(1.5)
                    return self._send(200, b"{}")
                if BROKEN in text:
                    return self._send(500, b"internal error")
                if GARBAGE in text:
                    return self._send(200, b"<html>not json</html>")
                if FLAKY in text and not server.flaky_seen:
                    server.flaky_seen = True
                    return self._send(503, b"busy")
                content = "I would rather not say." if RAMBLE in text else _answer(text)
                reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
                return self._send(200, json.dumps(reply).encode())

            def _send(self, code: int, payload: bytes):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def options(self, **extra) -> dict:
        return {"url": self.url, "model": "tiny-judge", "api_key": "sekrit", "timeout": 0.5, "retries": 0,
                "backoff": 0.0, **extra}


@contextmanager
def chat_server():
    server = ChatServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join()
