"""Issue 9, item 8: identity headers smuggled in request trailers never reach
the upstream. A client sends `kubeflow-userid` & co. after the body, as HTTP/1.1
chunked trailers (announced by `Trailer:`) and as HTTP/2 trailing HEADERS;
the real modelgate binary drops request trailers on REST routes.

The upstream is a STAND-IN (labelled as such): a small HTTP/1.1 server in
this file that records each request's headers and trailers. MLServer and
KServe (uvicorn/h11) never show the trailers they receive, so they cannot
prove the absence. gRPC keeps request trailers, cleaned; that path is covered
by the unit tests in crates/modelgate-upstream/src/trailers.rs (no h2 server
that records trailers is available here)."""

from __future__ import annotations

import json
import socket
import struct
import threading

import pytest

from gw import V2_BODY, create_key, gateway_config, model

SMUGGLED = [(b"kubeflow-userid", b"admin@example.com"), (b"x-forwarded-user", b"root"),
            (b"x-auth-request-email", b"admin@example.com")]
REPLY = json.dumps({"model_name": "iris", "outputs": []}).encode()


class RecordingUpstream:
    """STAND-IN upstream: HTTP/1.1 keep-alive server recording (headers, trailers)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests: list[tuple[dict[bytes, bytes], dict[bytes, bytes]]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket):
        f = conn.makefile("rb")
        with conn, f:
            while True:
                line = f.readline()
                if not line:
                    return
                headers = self._fields(f)
                trailers: dict[bytes, bytes] = {}
                if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
                    while (size := int(f.readline().split(b";")[0].strip(), 16)) > 0:
                        f.read(size + 2)
                    trailers = self._fields(f)
                else:
                    f.read(int(headers.get(b"content-length", b"0")))
                self.requests.append((headers, trailers))
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(REPLY)).encode() + b"\r\n\r\n" + REPLY)

    @staticmethod
    def _fields(f) -> dict[bytes, bytes]:
        out = {}
        while (line := f.readline()) not in (b"\r\n", b"\n", b""):
            k, _, v = line.partition(b":")
            out[k.strip().lower()] = v.strip()
        return out

    def close(self):
        self.sock.close()


@pytest.fixture
def gate(tmp_path, run_modelgate, start_modelgate):
    up = RecordingUpstream()
    keys = tmp_path / "keys.json"
    key = create_key(run_modelgate, keys, "alice", "*")
    mg = start_modelgate(gateway_config(keys, model("iris", "v2", f"http://{up.addr}")))
    mg.key = key
    yield mg, up
    up.close()


def assert_clean(up: RecordingUpstream):
    assert len(up.requests) == 1, up.requests
    headers, trailers = up.requests[0]
    assert trailers == {}, trailers
    assert b"trailer" not in headers, headers
    for name, _ in SMUGGLED:
        assert name not in headers, headers


def test_http1_chunked_trailers_are_dropped(gate):
    mg, up = gate
    body = json.dumps(V2_BODY).encode()
    host, port = mg.listen.rsplit(":", 1)
    req = (b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: " + mg.listen.encode()
           + b"\r\nAuthorization: Bearer " + mg.key.encode()
           + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n"
           + b"Trailer: " + b", ".join(n for n, _ in SMUGGLED) + b"\r\nConnection: close\r\n\r\n"
           + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n"
           + b"".join(n + b": " + v + b"\r\n" for n, v in SMUGGLED) + b"\r\n")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(req)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data
    assert_clean(up)


# --- a minimal HTTP/2 (h2c, prior knowledge) client: enough to send trailers ---
def _int(n: int, prefix_bits: int = 7) -> bytes:
    limit = (1 << prefix_bits) - 1
    if n < limit:
        return bytes([n])
    out, n = bytearray([limit]), n - limit
    while n >= 128:
        out.append((n % 128) + 128)
        n //= 128
    out.append(n)
    return bytes(out)


def _hpack(fields: list[tuple[bytes, bytes]]) -> bytes:
    """Literal header fields without indexing, new names, no Huffman."""
    return b"".join(b"\x00" + _int(len(k)) + k + _int(len(v)) + v for k, v in fields)


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _read_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def test_http2_trailers_are_dropped(gate):
    mg, up = gate
    body = json.dumps(V2_BODY).encode()
    host, port = mg.listen.rsplit(":", 1)
    END_STREAM, END_HEADERS = 0x1, 0x4
    head = _hpack([(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/v2/models/iris/infer"),
                   (b":authority", mg.listen.encode()), (b"authorization", b"Bearer " + mg.key.encode()),
                   (b"content-type", b"application/json"), (b"te", b"trailers"),
                   (b"trailer", b", ".join(n for n, _ in SMUGGLED))])
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(4, 0, 0, b"")
                  + _frame(1, END_HEADERS, 1, head) + _frame(0, 0, 1, body)
                  + _frame(1, END_HEADERS | END_STREAM, 1, _hpack(SMUGGLED)))
        status_byte = None
        while status_byte is None:
            length, kind, flags, stream = struct.unpack(">IBBI", b"\x00" + _read_exact(s, 9))
            payload = _read_exact(s, length)
            if kind == 4 and not flags & 1:
                s.sendall(_frame(4, 1, 0, b""))  # SETTINGS ack
            elif kind == 7 or (kind == 3 and stream == 1):
                raise AssertionError(f"connection or stream reset: {payload!r}")
            elif kind == 1 and stream == 1:
                status_byte = payload[0]
    assert status_byte == 0x88, hex(status_byte)  # HPACK static index 8: ":status: 200"
    assert_clean(up)
