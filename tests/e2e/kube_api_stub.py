"""A STAND-IN for the Kubernetes API server's Secret list + watch (core/v1).

No kube-apiserver can run on this machine (no Kubernetes, no container
engine), so modelgate's Secret watch (kube-rs `kube::runtime::watcher`) is
tested against this small server, run inside the pytest process. It implements
only what a Secret watcher uses, with the API server's JSON shapes:

- `GET /api/v1/namespaces/{ns}/secrets?labelSelector=k=v,...&limit=N` and
  `GET /api/v1/secrets?...` (all namespaces): a `SecretList` whose
  `metadata.resourceVersion` is the store's current version; items carry no
  `kind`/`apiVersion`, as the API server sends them;
- the same with `watch=true&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=T`:
  a chunked HTTP/1.1 stream of `{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...}`
  lines, replaying every event after RV, then live ones; a BOOKMARK each
  `bookmark_every` seconds; ends cleanly after `timeoutSeconds`;
- a watch from a resourceVersion older than the compaction point gets an
  `ERROR` event with a `Status` of code 410 (reason `Expired`), as the API
  server sends for "too old resource version";
- the caller must present `Authorization: Bearer <token>` (401 `Status` otherwise).

Faults the tests inject: `expire()` (open watches get 410 and every older
resourceVersion is compacted away), `drop_connections()` (open watch streams
are cut mid-stream, no closing chunk: a client resumes from its last
resourceVersion), `set_down(True)` (open watches are cut and every new
request's connection is closed with no response: an unreachable API server).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def _selector(text: str) -> dict[str, str]:
    out = {}
    for part in filter(None, text.split(",")):
        k, _, v = part.replace("==", "=").partition("=")
        out[k] = v
    return out


class KubeApiStub:
    def __init__(self, token: str, bookmark_every: float = 1.0):
        self.token = token
        self.bookmark_every = bookmark_every
        self.secrets: dict[tuple[str, str], dict] = {}
        self.events: list[tuple[int, str, dict]] = []
        self.rv = 100
        self.compacted = 0
        self.down = False
        self.requests: list[str] = []
        self.cond = threading.Condition()
        self._generation = 0  # bumped to make open watches act on a fault
        self._fault = None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def kubeconfig(self, namespace: str) -> str:
        return json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "stub",
            "clusters": [{"name": "stub", "cluster": {"server": self.url}}],
            "users": [{"name": "modelgate", "user": {"token": self.token}}],
            "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "modelgate", "namespace": namespace}}],
        })

    def stop(self) -> None:
        self.fault("drop")
        self.server.shutdown()
        self.server.server_close()

    # --- the store ---------------------------------------------------------
    def _record(self, kind: str, obj: dict) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.events.append((self.rv, kind, json.loads(json.dumps(obj))))
        self.cond.notify_all()

    def put(self, ns: str, name: str, key: str, labels: dict, annotations: dict | None = None,
            field: str = "api_key") -> None:
        """Create or replace a Secret (ADDED or MODIFIED)."""
        with self.cond:
            old = self.secrets.get((ns, name))
            meta = {"name": name, "namespace": ns, "uid": f"uid-{ns}-{name}", "labels": dict(labels),
                    "creationTimestamp": "2026-01-01T00:00:00Z"}
            if annotations:
                meta["annotations"] = dict(annotations)
            obj = {"kind": "Secret", "apiVersion": "v1", "metadata": meta, "type": "Opaque",
                   "data": {field: base64.b64encode(key.encode()).decode()}}
            self.secrets[(ns, name)] = obj
            self._record("MODIFIED" if old else "ADDED", obj)

    def patch_data(self, ns: str, name: str, field: str, value: str) -> None:
        """`kubectl patch secret --type=json -p '[{"op":"replace","path":"/data/FIELD",...}]'`."""
        with self.cond:
            obj = self.secrets[(ns, name)]
            obj["data"][field] = base64.b64encode(value.encode()).decode()
            self._record("MODIFIED", obj)

    def delete(self, ns: str, name: str) -> None:
        with self.cond:
            obj = self.secrets.pop((ns, name))
            self._record("DELETED", obj)

    # --- faults ------------------------------------------------------------
    def fault(self, kind: str) -> None:
        with self.cond:
            if kind == "expire":
                self.compacted = self.rv + 1
            self._fault = kind
            self._generation += 1
            self.cond.notify_all()

    def expire(self) -> None:
        self.fault("expire")

    def drop_connections(self) -> None:
        self.fault("drop")

    def set_down(self, down: bool) -> None:
        self.down = down
        if down:
            self.fault("drop")

    def count(self, prefix: str) -> int:
        return sum(1 for r in self.requests if r.startswith(prefix))

    # --- HTTP --------------------------------------------------------------
    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def _json(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                url = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(url.query))
                parts = url.path.strip("/").split("/")
                watch = q.get("watch") in ("true", "1")
                stub.requests.append(("WATCH " if watch else "LIST ") + self.path)
                if stub.down:
                    # Unreachable: the connection closes with no response.
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if self.headers.get("authorization") != f"Bearer {stub.token}":
                    return self._json(401, _status(401, "Unauthorized", "Unauthorized"))
                if parts == ["api", "v1", "secrets"]:
                    ns = None
                elif len(parts) == 5 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "secrets":
                    ns = parts[3]
                else:
                    return self._json(404, _status(404, "NotFound", "the server could not find the requested resource"))
                sel = _selector(q.get("labelSelector", ""))

                def match(obj):
                    m = obj["metadata"]
                    labels = m.get("labels", {})
                    return (ns is None or m["namespace"] == ns) and all(labels.get(k) == v for k, v in sel.items())

                if watch:
                    return self._watch(q, match)
                with stub.cond:
                    items = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")}
                             for o in stub.secrets.values() if match(o)]
                    body = {"kind": "SecretList", "apiVersion": "v1",
                            "metadata": {"resourceVersion": str(stub.rv)}, "items": json.loads(json.dumps(items))}
                self._json(200, body)

            def _chunk(self, event: dict) -> None:
                data = (json.dumps(event) + "\n").encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _watch(self, q: dict, match) -> None:
                since = int(q.get("resourceVersion") or 0)
                deadline = time.monotonic() + float(q.get("timeoutSeconds", 1800))
                bookmarks = q.get("allowWatchBookmarks") == "true"
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                with stub.cond:
                    gen = stub._generation
                    if since and since < stub.compacted:
                        msg = f"too old resource version: {since} ({stub.compacted})"
                        self._chunk({"type": "ERROR", "object": _status(410, "Expired", msg)})
                        self.wfile.write(b"0\r\n\r\n")
                        return
                    sent = since
                    next_bookmark = time.monotonic() + stub.bookmark_every
                    while time.monotonic() < deadline:
                        if stub._generation != gen:
                            if stub._fault == "expire":
                                self._chunk({"type": "ERROR", "object": _status(410, "Expired", "too old resource version")})
                                break
                            # Cut the stream: no closing chunk, connection gone.
                            self.close_connection = True
                            self.connection.shutdown(2)
                            return
                        for rv, kind, obj in stub.events:
                            if rv > sent:
                                sent = rv
                                if match(obj):
                                    self._chunk({"type": kind, "object": obj})
                        if bookmarks and time.monotonic() >= next_bookmark:
                            self._chunk({"type": "BOOKMARK", "object": {"kind": "Secret", "apiVersion": "v1",
                                                                        "metadata": {"resourceVersion": str(stub.rv)}}})
                            sent = max(sent, stub.rv)
                            next_bookmark = time.monotonic() + stub.bookmark_every
                        stub.cond.wait(timeout=0.2)
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        return Handler
