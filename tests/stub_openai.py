"""A local OpenAI-compatible stub server for tests (loopback only, bounded)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StubState:
    def __init__(self) -> None:
        self.fail_first = 0       # answer the first N requests with 429
        self.fail_status = 429
        self.delay = 0.0          # seconds before answering
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.reply = "stub reply"
        self.images: list[str] = []  # image URLs received in content parts (data URLs)
        self.models = [{"id": "stub"}]  # what GET /models lists
        self.lock = threading.Lock()


def make_handler(state: StubState):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):  # quiet
            pass

        def _send(self, code: int, body: dict, headers: dict | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._send(200, {"data": state.models})

        def do_POST(self):
            n = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(n))
            with state.lock:
                state.requests.append(body)
                state.headers.append(dict(self.headers))
                k = len(state.requests)
            if state.delay:
                time.sleep(state.delay)
            if k <= state.fail_first:
                self._send(state.fail_status, {"error": "busy"}, {"Retry-After": "0"})
                return
            if self.path.endswith("/chat/completions"):
                last = body["messages"][-1]["content"]
                if isinstance(last, list):  # content parts: text, and images as data URLs
                    urls = [p["image_url"]["url"] for p in last if p.get("type") == "image_url"]
                    with state.lock:
                        state.images.extend(urls)
                    text = " ".join(p.get("text", "") for p in last if p.get("type") == "text")
                    last = f"{text} [{len(urls)} image(s)]"
                n_choices = body.get("n", 1)
                choice = {"index": 0, "finish_reason": "stop",
                          "message": {"role": "assistant", "content": f"{state.reply}: {last}"}}
                if body.get("logprobs"):
                    choice["logprobs"] = {"content": [
                        {"token": "A", "logprob": -0.2, "top_logprobs": [
                            {"token": "A", "logprob": -0.2}, {"token": " B", "logprob": -1.8}]},
                    ]}
                self._send(200, {"choices": [dict(choice, index=i) for i in range(n_choices)]})
            elif self.path.endswith("/completions"):
                prompt = body["prompt"]
                if body.get("echo"):
                    toks = prompt.split(" ")
                    offs, pos = [], 0
                    for t in toks:
                        offs.append(pos)
                        pos += len(t) + 1
                    lp = {"tokens": toks, "text_offset": offs, "token_logprobs": [None] + [-1.0] * (len(toks) - 1),
                          "top_logprobs": [None] + [{t: -1.0} for t in toks[1:]]}
                    self._send(200, {"choices": [{"text": prompt, "logprobs": lp, "finish_reason": "length"}]})
                else:
                    self._send(200, {"choices": [{"text": f" {state.reply}", "finish_reason": "stop"}]})
            else:
                self._send(404, {"error": "no route"})

    return Handler


class StubServer:
    def __init__(self) -> None:
        self.state = StubState()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.state))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> StubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
