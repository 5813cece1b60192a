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
        # injected faults by request number k (1-based): k % every == 0 gets the fault
        self.every_429 = 0
        self.every_5xx = 0
        self.every_stall = 0
        self.stall_s = 0.0        # how long a stalled request hangs before answering
        self.model_meta: dict = {}  # extra fields of every /v1/models entry (max_model_len, owned_by)
        self.answered = 0         # successful completions sent
        self.in_flight = 0
        self.max_in_flight = 0


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
            if getattr(self, "answered", False) and code == 200:
                with state.lock:
                    state.answered += 1  # counted once the answer is written
                self.answered = False

        def do_GET(self):
            if self.path.endswith("/stats"):
                with state.lock:
                    self._send(200, {"answered": state.answered, "requests": len(state.requests),
                                     "max_in_flight": state.max_in_flight})
                    state.max_in_flight = 0
                return
            self._send(200, {"data": [dict(m, **state.model_meta) for m in state.models]})

        def do_POST(self):
            with state.lock:
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                self._post()
            finally:
                with state.lock:
                    state.in_flight -= 1

        def _post(self):
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
            if state.every_429 and k % state.every_429 == 0:
                self._send(429, {"error": "rate limited"}, {"Retry-After": "0"})
                return
            if state.every_5xx and k % state.every_5xx == 0:
                self._send(503, {"error": "overloaded"})
                return
            if state.every_stall and k % state.every_stall == 0:
                time.sleep(state.stall_s)  # the client has given up by now
                return
            self.answered = True
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
                usage = {"prompt_tokens": len(str(last).split()), "completion_tokens": 3 * n_choices}
                self._send(200, {"choices": [dict(choice, index=i) for i in range(n_choices)], "usage": usage})
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


class _Counted(list):
    """A request log that only counts (append keeps the last body)."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def append(self, item) -> None:
        self.n += 1
        self[:] = [item]

    def __len__(self) -> int:
        return self.n


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # hundreds of concurrent connections
    daemon_threads = True


class StubServer:
    def __init__(self) -> None:
        self.state = StubState()
        self.httpd = _Server(("127.0.0.1", 0), make_handler(self.state))
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


if __name__ == "__main__":  # a stub in its own process (benchmarks): python tests/stub_openai.py DELAY [429 5xx stall stall_s]
    import sys

    srv = StubServer()
    a = [float(x) for x in sys.argv[1:]]
    srv.state.delay = a[0] if a else 0.0
    if len(a) >= 5:
        srv.state.every_429, srv.state.every_5xx, srv.state.every_stall, srv.state.stall_s = int(a[1]), int(a[2]), int(a[3]), a[4]
    srv.state.requests = _Counted()  # keep no bodies: long benchmarks
    print(srv.url, flush=True)
    srv.httpd.serve_forever()
