"""Issue 9 item 3: connections and bodies have deadlines. Raw sockets against
the real binary: silent sockets, slowloris on the request head and on the
body, idle HTTP/1.1 keep-alive and idle HTTP/2, HTTP/2 rapid reset, the
connection cap (accept backpressure and its metric), and a body that cannot
change the outcome being refused before it is read.

Timeouts are configured short (1 s); each check is that the server acts
within a generous bound (5 s), never how fast it is."""

from __future__ import annotations

import socket
import struct
import time

import requests

from gw import bearer, create_key, silent_server

BOUND = 5.0  # seconds within which a 1 s deadline must have acted

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


def connect(addr: str) -> socket.socket:
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=BOUND)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def closed_within(s: socket.socket, bound: float = BOUND) -> tuple[bool, bytes]:
    """Reads until the server closes; (closed within bound, bytes read)."""
    got = b""
    end = time.monotonic() + bound
    while time.monotonic() < end:
        s.settimeout(max(0.05, end - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            return True, got
        if not chunk:
            return True, got
        got += chunk
    return False, got


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hpack(headers: list[tuple[str, str]]) -> bytes:
    """Literal header fields without indexing, literal names (RFC 7541 6.2.2)."""
    out = b""
    for k, v in headers:
        kb, vb = k.encode(), v.encode()
        assert len(kb) < 127 and len(vb) < 127
        out += b"\x00" + bytes([len(kb)]) + kb + bytes([len(vb)]) + vb
    return out


def read_frames(s: socket.socket, bound: float = BOUND, until=None) -> tuple[list[tuple[int, int, int, bytes]], bool]:
    """Frames read until `until(frame)` is true, the server closes, or the
    bound passes; returns (frames, closed)."""
    buf, frames = b"", []
    end = time.monotonic() + bound
    while time.monotonic() < end:
        s.settimeout(max(0.05, end - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return frames, False
        except ConnectionResetError:
            return frames, True
        if not chunk:
            return frames, True
        buf += chunk
        while len(buf) >= 9:
            n = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + n:
                break
            f = (buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF, buf[9:9 + n])
            buf = buf[9 + n:]
            frames.append(f)
            if f[0] == PING and not f[1] & ACK:
                s.sendall(frame(PING, ACK, 0, f[3]))  # a live peer answers PINGs
            if until and until(f):
                return frames, False
    return frames, False


def config(listen_extra: str, models: str, auth: str = "", policies: str = "") -> str:
    return f"""
listen:
  address: "__LISTEN__"
{listen_extra}
admin: {{address: "__ADMIN__"}}
{auth}
models:
{models}
{policies}
"""


UNREACHABLE = "http://127.0.0.1:9"
SHORT = """  header_read_timeout: 1s
  limits: {idle_timeout: 1s, body_read_timeout: 1s, body_idle_timeout: 1s, max_concurrent_streams: 7}"""


def test_silent_socket_and_slow_head_are_closed(start_modelgate):
    mg = start_modelgate(config(SHORT, f'  - {{name: iris, upstream: {{url: "{UNREACHABLE}"}}}}'))
    silent = connect(mg.listen)
    closed, _ = closed_within(silent)
    assert closed, "a connection that sends nothing must be closed"

    slow = connect(mg.listen)
    slow.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
    end = time.monotonic() + BOUND
    closed = False
    try:
        while time.monotonic() < end:
            slow.sendall(b"X")  # one byte of a header, now and then
            slow.settimeout(0.3)
            try:
                if slow.recv(4096) == b"":
                    closed = True
                    break
                closed = True  # an error response, then the close
                break
            except socket.timeout:
                continue
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    assert closed, "a request head sent byte by byte must hit header_read_timeout"
    m = requests.get(f"{mg.admin_url}/metrics", timeout=5).text
    assert 'modelgate_listener_connections_closed_by_deadline_total{listener="0",reason="header_timeout"}' in m


def test_slow_head_on_a_kept_alive_connection_is_cut_off(start_modelgate):
    """After an answer, the next HTTP/1.1 request head must be complete within
    header_read_timeout too (idle_timeout is long here, so only that deadline
    can close the connection)."""
    mg = start_modelgate(config("""  header_read_timeout: 1s
  limits: {idle_timeout: 60s}""", f'  - {{name: iris, upstream: {{url: "{UNREACHABLE}"}}}}'))
    s = connect(mg.listen)
    s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(BOUND)
    first = s.recv(65536)
    assert first.startswith(b"HTTP/1.1 401"), first[:100]  # answered, kept alive
    s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
    start = time.monotonic()
    closed = False
    try:
        while time.monotonic() < start + BOUND:
            s.sendall(b"X")  # one byte of a header, now and then
            s.settimeout(0.3)
            try:
                if s.recv(4096) == b"":
                    closed = True
                    break
            except socket.timeout:
                continue
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    took = time.monotonic() - start
    assert closed, "a slow request head on a kept-alive connection must hit header_read_timeout"
    assert took >= 0.5, f"closed after {took:.2f} s, before the deadline"


def test_idle_keepalive_connection_is_closed(start_modelgate):
    mg = start_modelgate(config(SHORT, f'  - {{name: iris, upstream: {{url: "{UNREACHABLE}"}}}}'))
    s = connect(mg.listen)
    s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
    closed, got = closed_within(s)
    assert got.startswith(b"HTTP/1.1 401"), got[:100]  # answered (no credential), then kept alive
    assert closed, "an idle keep-alive connection must be closed after idle_timeout"


def test_idle_h2_and_stream_limit(start_modelgate):
    mg = start_modelgate(config(SHORT, f'  - {{name: iris, upstream: {{url: "{UNREACHABLE}"}}}}'))
    s = connect(mg.listen)
    s.sendall(PREFACE + frame(SETTINGS, 0, 0))
    frames, closed = read_frames(s)
    settings = next(f for f in frames if f[0] == SETTINGS and not f[1] & ACK)
    params = {int.from_bytes(settings[3][i:i + 2], "big"): int.from_bytes(settings[3][i + 2:i + 6], "big")
              for i in range(0, len(settings[3]), 6)}
    assert params.get(0x3) == 7, f"SETTINGS_MAX_CONCURRENT_STREAMS from limits: {params}"
    assert closed or any(f[0] == GOAWAY for f in frames), "an h2 connection with no stream must be closed"
    if not closed:
        closed, _ = closed_within(s)
        assert closed


def test_h2_rapid_reset_is_cut_off(start_modelgate):
    mg = start_modelgate(config("", f'  - {{name: iris, upstream: {{url: "{UNREACHABLE}"}}}}'))
    s = connect(mg.listen)
    block = hpack([(":method", "GET"), (":scheme", "http"), (":path", "/v2/health/live"), (":authority", "x")])
    burst = PREFACE + frame(SETTINGS, 0, 0)
    for i in range(1000):
        sid = 2 * i + 1
        burst += frame(HEADERS, END_HEADERS | END_STREAM, sid, block) + frame(RST_STREAM, 0, sid, struct.pack(">I", 8))
    try:
        s.sendall(burst)
    except (BrokenPipeError, ConnectionResetError):
        pass
    frames, closed = read_frames(s, until=lambda f: f[0] == GOAWAY)
    goaway = [f for f in frames if f[0] == GOAWAY]
    assert goaway or closed, "a reset flood must end the connection"
    if goaway:
        code = int.from_bytes(goaway[0][3][4:8], "big")
        assert code == 0xB, f"GOAWAY ENHANCE_YOUR_CALM expected, got {code}"
    # The server still serves others.
    r = requests.get(f"{mg.url}/v2/health/live", timeout=5)
    assert r.status_code == 401  # answered: no credential


def test_connection_cap_pauses_accepting(start_modelgate):
    mg = start_modelgate(config("""  header_read_timeout: 30s
  limits: {max_connections: 2}""", f'  - {{name: iris, upstream: {{url: "{UNREACHABLE}"}}}}'))
    a, b = connect(mg.listen), connect(mg.listen)
    time.sleep(0.3)
    third = connect(mg.listen)  # the kernel's backlog takes it; modelgate does not
    third.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    third.settimeout(1.0)
    try:
        early = third.recv(4096)
    except socket.timeout:
        early = None
    assert early is None, f"a connection over the cap was served: {early!r}"
    m = requests.get(f"{mg.admin_url}/metrics", timeout=5).text
    assert 'modelgate_listener_connections_open{listener="0"} 2' in m, m
    paused = [ln for ln in m.splitlines() if ln.startswith('modelgate_listener_accept_paused_total{listener="0"}')]
    assert paused and float(paused[0].split()[-1]) >= 1, paused
    a.close()
    closed, got = closed_within(third)
    assert got.startswith(b"HTTP/1.1 401"), "the waiting connection is served once a slot frees"
    b.close()


OPENAI = f'  - {{name: llama3, protocols: [openai], upstream: {{url: "{UNREACHABLE}"}}}}'


def slow_post(addr: str, path: str, headers: str, declared: int = 4 << 20) -> tuple[float, bytes]:
    """POSTs a declared body but sends one byte of it; returns the seconds
    until the server answered and the answer."""
    s = connect(addr)
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              f"Content-Length: {declared}\r\n{headers}\r\n".encode() + b"{")
    start = time.monotonic()
    s.settimeout(BOUND + 5)
    try:
        got = s.recv(65536)
    except (socket.timeout, ConnectionResetError):
        got = b""
    took = time.monotonic() - start
    s.close()
    return took, got


def test_body_that_stops_gets_408(tmp_path, run_modelgate, start_modelgate):
    keys = tmp_path / "keys.json"
    k = create_key(run_modelgate, keys, "a")
    mg = start_modelgate(config(SHORT, OPENAI, auth=f'auth: {{api_keys: {{file: "{keys}"}}}}'))
    took, got = slow_post(mg.listen, "/v1/chat/completions", f"Authorization: Bearer {k}\r\n")
    assert got.startswith(b"HTTP/1.1 408"), got[:200]
    assert took < BOUND
    assert b"invalid_request_error" in got  # the OpenAI error shape


def test_grpc_first_message_that_stops_is_answered(tmp_path, run_modelgate, start_modelgate, iris_model_dir):
    keys = tmp_path / "keys.json"
    k = create_key(run_modelgate, keys, "a")
    mg = start_modelgate(config(SHORT, f'  - {{name: iris, builtin: {{dir: "{iris_model_dir}"}}}}',
                                auth=f'auth: {{api_keys: {{file: "{keys}"}}}}'))
    s = connect(mg.listen)
    block = hpack([(":method", "POST"), (":scheme", "http"),
                   (":path", "/inference.GRPCInferenceService/ModelInfer"), (":authority", "x"),
                   ("content-type", "application/grpc"), ("te", "trailers"), ("authorization", f"Bearer {k}")])
    # A gRPC message prefix announcing 1000 bytes, then nothing more.
    s.sendall(PREFACE + frame(SETTINGS, 0, 0) + frame(HEADERS, END_HEADERS, 1, block)
              + frame(DATA, 0, 1, b"\x00\x00\x00\x03\xe8\x0a"))
    frames, _ = read_frames(s, until=lambda f: f[0] in (HEADERS, RST_STREAM) and f[2] == 1)
    answer = [f for f in frames if f[2] == 1 and f[0] in (HEADERS, RST_STREAM)]
    assert answer, "a stalled gRPC message must be answered by the body deadline"


def test_streamed_body_that_stops_is_cut(tmp_path, run_modelgate, start_modelgate):
    upstream, addr = silent_server()
    try:
        keys = tmp_path / "keys.json"
        k = create_key(run_modelgate, keys, "a")
        mg = start_modelgate(config(SHORT, f'  - {{name: iris, protocols: [v2], upstream: {{url: "http://{addr}", timeout: 60s}}}}',
                                    auth=f'auth: {{api_keys: {{file: "{keys}"}}}}'))
        took, got = slow_post(mg.listen, "/v2/models/iris/infer", f"Authorization: Bearer {k}\r\n", declared=100)
        assert got.startswith(b"HTTP/1.1 "), got[:200]
        assert not got.startswith(b"HTTP/1.1 2")
        assert took < BOUND, "the body idle timeout must end a stalled upload"
    finally:
        upstream.close()


def test_anonymous_body_that_cannot_matter_is_not_read(start_modelgate):
    # istio_compat: no credential goes on as anonymous. With no policy letting
    # anonymous callers use an OpenAI model, no body could change the outcome,
    # so the refusal comes before the (never-arriving) 4 MB body.
    mg = start_modelgate(config("""  istio_compat: true
  limits: {body_read_timeout: 60s, body_idle_timeout: 60s}""", OPENAI))
    took, got = slow_post(mg.listen, "/v1/chat/completions", "")
    assert got.split(b"\r\n", 1)[0] in (b"HTTP/1.1 401 Unauthorized", b"HTTP/1.1 403 Forbidden"), got[:200]
    assert took < BOUND


def test_bad_limits_are_refused_at_load(tmp_path, run_modelgate):
    cfg = tmp_path / "c.yaml"
    cfg.write_text('listen: {address: "127.0.0.1:0", limits: {max_connections: 0, idle_timeout: 0s, maxconn: 1}}\n'
                   'models: [{name: a, upstream: {url: "http://127.0.0.1:1"}}]\n')
    r = run_modelgate(["validate", "--config", cfg])
    assert r.returncode == 2 and "listen.limits" in r.stderr, r.stderr
    cfg.write_text('listen: {address: "127.0.0.1:0", limits: {max_connections: 0, idle_timeout: 0s}}\n'
                   'models: [{name: a, upstream: {url: "http://127.0.0.1:1"}}]\n')
    r = run_modelgate(["validate", "--config", cfg])
    assert r.returncode == 2, r.stderr
    assert "listen.limits.max_connections" in r.stderr and "listen.limits.idle_timeout" in r.stderr
