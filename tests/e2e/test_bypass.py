"""Every bypass class of the reference (§5), sent raw through the real
modelgate binary to a real MLServer: each is refused with 400, 403 or 404, and
MLServer never sees it. Requests are written byte by byte on a socket so that
no client library normalises them first."""

from __future__ import annotations

import json
import socket

import pytest

from gw import V2_BODY, create_key, gateway_config, model

POLICIES = """
policies:
  - name: no-iris-infer
    action: DENY
    rules: [{to: [{operation: {paths: [/v2/models/iris/infer]}}]}]
  - name: no-blocked-host
    action: DENY
    rules: [{to: [{operation: {hosts: [blocked.example.com]}}]}]
  - name: no-mallory
    action: DENY
    rules: [{when: [{key: "request.headers[x-user]", values: [mallory]}]}]
  - name: no-admin-role
    action: DENY
    rules: [{when: [{key: "request.headers[x-role]", values: ["admin*"]}]}]
  - name: no-local-xff-test
    action: DENY
    rules:
    - from: [{source: {remoteIpBlocks: [127.0.0.0/8]}}]
      when: [{key: "request.headers[x-test]", values: [xff]}]
"""


@pytest.fixture
def gate(tmp_path, run_modelgate, start_modelgate, mlserver_iris):
    keys = tmp_path / "keys.json"
    key = create_key(run_modelgate, keys, "alice", "*")
    mg = start_modelgate(gateway_config(keys, model("iris", "v2", mlserver_iris.rest_url), extra=POLICIES))
    return mg, key


def send(addr: str, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP/1.1 request with the target and headers exactly as given."""
    host, port = addr.rsplit(":", 1)
    head = method.encode() + b" " + target + b" HTTP/1.1\r\n"
    names = {k.lower() for k, _ in headers}
    if b"host" not in names:
        head += b"Host: " + addr.encode() + b"\r\n"
    for k, v in headers:
        head += k + b": " + v + b"\r\n"
    head += b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[-1]


JSON = (b"Content-Type", b"application/json")
BODY = json.dumps(V2_BODY).encode()

PATHS = [
    (b"/v2/models/iris/infer", 403),
    (b"/v2/models/iris%2Finfer", 400),
    (b"/v2/models/iris%2finfer", 400),
    (b"/v2/models/iris%5Cinfer", 400),
    (b"//v2/models/iris/infer", 403),
    (b"/v2//models/iris/infer", 403),
    (b"/v2/models/./iris/infer", 403),
    (b"/v2/models/x/../iris/infer", 403),
    (b"/v2/models/%2e/iris/infer", 403),
    (b"/v2/models/ir%69s/infer", 403),
    (b"/V2/models/iris/infer", 404),
    (b"/v2/models/iris/infer;jsessionid=1", 400),
    (b"/v2/models/iris;x/infer", 400),
    (b"/v2/models/iris/infer%00", 400),
    # hyper drops a fragment while parsing the request line: the path is
    # matched and forwarded without it (Istio's fix for CVE-2021-39156).
    (b"/v2/models/iris/infer#frag", 403),
    (b"/v2/models/iris/infer?next=/v2/health/live", 403),
]


def test_path_bypasses_never_reach_mlserver(gate, mlserver_iris):
    mg, key = gate
    auth = (b"Authorization", b"Bearer " + key.encode())
    mark = mlserver_iris.log_mark()
    for target, want in PATHS:
        status, body = send(mg.listen, "POST", target, [auth, JSON], BODY)
        assert status == want, (target, status, body)
    # Lower-case method: refused before anything matches.
    status, _ = send(mg.listen, "post", b"/v2/models/iris/infer", [auth, JSON], BODY)
    assert status == 400
    # The setup works: an allowed call reaches MLServer.
    status, body = send(mg.listen, "GET", b"/v2/models/iris", [auth])
    assert status == 200, body
    mlserver_iris.wait_for_log("/v2/models/iris", since=mark)
    assert not mlserver_iris.saw_path("/v2/models/iris/infer", since=mark), mlserver_iris.log(mark)
    assert "infer" not in mlserver_iris.log(mark), mlserver_iris.log(mark)


def test_header_bypasses(gate, mlserver_iris):
    mg, key = gate
    auth = (b"Authorization", b"Bearer " + key.encode())
    mark = mlserver_iris.log_mark()
    cases = [
        # Host: upper case and a port still match the DENY (CVE-2021-39155).
        ([(b"Host", b"BLOCKED.Example.com:8080")], 403),
        ([(b"Host", b"blocked.example.com")], 403),
        # Repeated headers: each line is checked, in any order (CVE-2026-26308, CVE-2021-32777).
        ([(b"X-User", b"alice"), (b"X-User", b"mallory")], 403),
        ([(b"X-User", b"mallory"), (b"X-User", b"alice")], 403),
        ([(b"X-User", b"alice, mallory")], 200),  # one line, one value: not "mallory"
        # Non-UTF-8 bytes do not hide a prefix (CVE-2026-73552).
        ([(b"X-Role", b"admin\xff")], 403),
        # X-Forwarded-For from an untrusted peer is ignored (remoteIpBlocks stays 127.0.0.1).
        ([(b"X-Test", b"xff"), (b"X-Forwarded-For", b"203.0.113.5")], 403),
        ([(b"X-Test", b"xff"), (b"X-Real-IP", b"203.0.113.5"), (b"Forwarded", b"for=203.0.113.5")], 403),
        # Two Host headers: ambiguous, refused.
        ([(b"Host", b"a.example.com"), (b"Host", b"blocked.example.com")], 400),
    ]
    for headers, want in cases:
        status, body = send(mg.listen, "GET", b"/v2/models/iris/ready", [auth, *headers])
        assert status == want, (headers, status, body)
    mlserver_iris.wait_for_log("/v2/models/iris/ready", since=mark)
    # Exactly one request (the allowed one) reached MLServer.
    assert mlserver_iris.log(mark).count("/v2/models/iris/ready") == 1, mlserver_iris.log(mark)
