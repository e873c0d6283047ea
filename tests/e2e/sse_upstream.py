"""A tiny OpenAI-shaped SSE upstream: a labelled STAND-IN FOR vLLM (which needs
a GPU). POST /v1/chat/completions answers `text/event-stream` with one
`chat.completion.chunk` event every `interval` seconds, chunked, flushed per
event, then `data: [DONE]`. The request picks its shape:

  max_tokens  number of events (default 10)
  user        "stall": send 2 events, then nothing for 60 s
              "die": send 2 events, then drop the connection (no end of stream)
              "long": ignore max_tokens and send 400 events of "word " (5
              characters each), as a model without a length bound would

Every request is recorded (model, Authorization header, events sent, and when
a write found the connection closed), so tests can see what the upstream saw.
Runs in a thread of the test process on 127.0.0.1:<free port>; stop() ends it.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from peers import LOCALHOST, free_port


class Seen:
    def __init__(self, model: str, authorization: str | None):
        self.model = model
        self.authorization = authorization
        self.sent = 0
        self.closed_at: float | None = None  # monotonic time a write failed
        self.finished = False


def _chunk(model: str, i: int, long: bool = False) -> bytes:
    text = "word " if long else f"t{i} "
    ev = {"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": int(time.time()),
          "model": model, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    return b"data: " + json.dumps(ev).encode() + b"\n\n"


class SseUpstream:
    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.requests: list[Seen] = []
        self.port = free_port()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # as uvicorn (vLLM) does: each event leaves at once

            def log_message(self, *args):  # quiet
                pass

            def _write_chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def do_POST(self):
                n = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(n) or b"{}")
                seen = Seen(body.get("model", ""), self.headers.get("authorization"))
                outer.requests.append(seen)
                count = int(body.get("max_tokens") or 10)
                stall = body.get("user") == "stall"
                die = body.get("user") == "die"
                long = body.get("user") == "long"
                if long:
                    count = 400
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                try:
                    for i in range(count):
                        if i:
                            time.sleep(outer.interval)
                        if stall and i == 2:
                            time.sleep(60)
                        if die and i == 2:
                            self.connection.shutdown(2)  # SHUT_RDWR: dies mid-stream
                            self.close_connection = True
                            return
                        self._write_chunk(_chunk(seen.model, i, long))
                        seen.sent += 1
                    self._write_chunk(b"data: [DONE]\n\n")
                    self._write_chunk(b"")
                    seen.finished = True
                except (BrokenPipeError, ConnectionResetError, OSError):
                    seen.closed_at = time.monotonic()
                    self.close_connection = True

        self.server = ThreadingHTTPServer((LOCALHOST, self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
