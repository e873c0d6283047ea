"""Helpers for end-to-end tests that put modelgate in front of real peers."""

from __future__ import annotations

import http.client
import socket
from pathlib import Path

from peers import IRIS_ROWS

V2_BODY = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": IRIS_ROWS}]}
V1_BODY = {"instances": IRIS_ROWS}


def create_key(run_modelgate, keys_file: Path, name: str, models: str = "*", expires: str | None = None) -> str:
    args = ["keys", "--file", str(keys_file), "create", "--name", name, "--models", models]
    if expires:
        args += ["--expires", expires]
    r = run_modelgate(args)
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip()
    assert key.startswith("mgk_") and "\n" not in key
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def raw_request(addr: str, method: str, target: str, headers: dict[str, str] | None = None,
                body: bytes = b"", timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send a request with the target exactly as given (no client-side
    normalisation), over HTTP/1.1; returns status, headers, body."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
    hdrs = {"Host": addr, **(headers or {})}
    if body:
        hdrs.setdefault("Content-Length", str(len(body)))
    for k, v in hdrs.items():
        conn.putheader(k, v)
    conn.endheaders(body or None)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def silent_server() -> tuple[socket.socket, str]:
    """A TCP listener that accepts connections and never answers (to test
    upstream timeouts). Close the socket when done."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    return s, f"127.0.0.1:{s.getsockname()[1]}"
