"""External CUSTOM authorizers (issue 15 item 5): a CUSTOM policy naming an
`extension_providers` entry makes modelgate call that ext_authz server, as
Envoy does for Istio.

Peers, all real processes on 127.0.0.1 stopped by PID:
- the HTTP authorizer: a small Python http.server (a labelled STAND-IN for
  an Envoy-protocol HTTP authorizer such as oauth2-proxy or Authorino's HTTP
  mode, which cannot run here). It allows when `x-ext-authz: allow`, sleeps
  past the timeout on `x-ext-authz: slow`, denies otherwise with 403, a body
  and headers; it records every check it receives (method, path, headers,
  body).
- the gRPC authorizer: modelgate itself, serving Envoy's
  `envoy.service.auth.v3.Authorization/Check` (from Envoy's protos) with its
  own configuration (allow when `x-ext-authz: allow`).
- the upstream: a Python echo server recording the headers it receives.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import requests

from peers import free_port, port_open

AUTHORIZER = r'''
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, log = int(sys.argv[1]), sys.argv[2]
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def handle_one(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        with open(log, "a") as f:
            f.write(json.dumps({"method": self.command, "path": self.path,
                                "headers": {k.lower(): v for k, v in self.headers.items()},
                                "body": body.decode("latin-1")}) + "\n")
        verdict = self.headers.get("x-ext-authz", "")
        if verdict == "slow":
            time.sleep(3)
        if verdict in ("allow", "slow"):
            self.send_response(200)
            self.send_header("x-user", "alice")
            self.send_header("x-not-forwarded", "secret")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        body = b"denied by the stand-in authorizer"
        self.send_response(403)
        self.send_header("x-reason", "no badge")
        self.send_header("x-internal", "hidden")
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = do_HEAD = handle_one
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
'''

ECHO = r'''
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, log = int(sys.argv[1]), sys.argv[2]
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def read_body(self):
        if "chunked" not in self.headers.get("transfer-encoding", ""):
            return self.rfile.read(int(self.headers.get("content-length") or 0))
        out = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b""):
                    pass
                return out
            out += self.rfile.read(size)
            self.rfile.readline()
    def do_GET(self):
        sent = self.read_body()
        with open(log, "a") as f:
            f.write(json.dumps({"path": self.path,
                                "headers": {k.lower(): v for k, v in self.headers.items()},
                                "body": sent.decode("latin-1")}) + "\n")
        body = json.dumps({"name": "iris", "versions": [], "platform": "echo"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_POST = do_GET
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
'''


class Script:
    """A Python script server, started and stopped by PID."""

    def __init__(self, tmp_path, name: str, source: str):
        self.port = free_port()
        self.log = tmp_path / f"{name}.jsonl"
        self.log.write_text("")
        script = tmp_path / f"{name}.py"
        script.write_text(source)
        self.proc = subprocess.Popen([sys.executable, str(script), str(self.port), str(self.log)])
        deadline = time.monotonic() + 10
        while not port_open(self.port):
            assert self.proc.poll() is None and time.monotonic() < deadline, f"{name} did not start"
            time.sleep(0.05)

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def script(tmp_path):
    started: list[Script] = []

    def start(name: str, source: str) -> Script:
        s = Script(tmp_path, name, source)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def front_config(echo: int, provider_yaml: str, ext_authz_port: int | None = None,
                 listen: str = "__LISTEN__", admin: str = "__ADMIN__") -> str:
    ext = f'ext_authz: {{address: "127.0.0.1:{ext_authz_port}", http_path_prefix: /authz}}\n' if ext_authz_port else ""
    return f"""
listen:
  - address: "{listen}"
    istio_compat: true
    trusted_proxies: [127.0.0.1/32]
    forward_auth: [{{path: /auth/nginx, headers: nginx}}]
admin: {{address: "{admin}"}}
models:
  - name: iris
    upstream: {{url: "http://127.0.0.1:{echo}"}}
extension_providers:
{provider_yaml}
policies:
  - name: ext-check
    action: CUSTOM
    provider: {{name: ext}}
    rules: [{{to: [{{operation: {{notPaths: [/v2/health/*]}}}}]}}]
  - {{name: everyone, action: ALLOW, rules: [{{}}]}}
{ext}"""


def http_provider(port: int, timeout: str = "500ms", fail_open: bool = False, body: str = "") -> str:
    body = f"      includeRequestBodyInCheck: {body}\n" if body else ""
    return f"""  - name: ext
    envoyExtAuthzHttp:
      service: 127.0.0.1
      port: {port}
      timeout: {timeout}
      failOpen: {str(fail_open).lower()}
      pathPrefix: /check
      includeRequestHeadersInCheck: [x-ext-authz, x-envoy-*]
      includeAdditionalHeadersInCheck: {{x-from: modelgate}}
      headersToUpstreamOnAllow: [x-user]
      headersToDownstreamOnDeny: [x-reason]
{body}"""


META = "/v2/models/iris"


def test_http_authorizer_allow_deny_and_what_it_sees(start_modelgate, script):
    authz = script("authorizer", AUTHORIZER)
    echo = script("echo", ECHO)
    mg = start_modelgate(front_config(echo.port, http_provider(authz.port)))
    # Allow: the authorizer's x-user reaches the upstream, x-not-forwarded does not.
    r = requests.get(mg.url + META, headers={"x-ext-authz": "allow", "cookie": "session=client-secret",
                                             "x-user": "spoofed"}, timeout=10)
    assert r.status_code == 200, r.text
    seen = echo.records()[-1]["headers"]
    assert seen.get("x-user") == "alice", list(seen)
    assert "x-not-forwarded" not in seen
    # The check request: original method, prefixed path, only included headers.
    check = authz.records()[-1]
    assert check["method"] == "GET"
    assert check["path"] == "/check" + META
    assert check["headers"]["x-ext-authz"] == "allow"
    assert check["headers"]["x-from"] == "modelgate"
    assert check["headers"]["content-length"] == "0"
    assert "cookie" not in check["headers"], "the client's credential leaked into the check"
    assert "x-user" not in check["headers"]
    # Deny: status, body and the allowed header pass through; others do not.
    before = len(echo.records())
    r = requests.get(mg.url + META, headers={"x-ext-authz": "no"}, timeout=10)
    assert r.status_code == 403
    assert r.text == "denied by the stand-in authorizer"
    assert r.headers["x-reason"] == "no badge"
    assert "x-internal" not in r.headers
    assert len(echo.records()) == before, "a denied request reached the upstream"
    # Not matched by the CUSTOM policy: no check, the ALLOW decides.
    n = len(authz.records())
    assert requests.get(mg.url + "/v2/health/ready", timeout=10).status_code in (200, 404)
    assert len(authz.records()) == n
    # The decision log names the CUSTOM policy on deny.
    denied = [d for d in mg.wait_decisions(3) if d.get("status") == 403]
    assert denied and denied[-1]["policy"]["name"] == "ext-check", denied
    assert denied[-1]["external"] == {"provider": "ext", "outcome": "denied"}
    allowed = [d for d in mg.decisions() if d.get("status") == 200 and d.get("external")]
    assert allowed and allowed[0]["external"]["outcome"] == "allowed"
    assert allowed[0]["policy"]["name"] == "everyone"
    metrics = requests.get(f"{mg.admin_url}/metrics", timeout=5).text
    assert 'modelgate_external_authz_checks_total{provider="ext",outcome="denied"} 1' in metrics, metrics


def test_http_authorizer_timeout_and_down_fail_closed(start_modelgate, script):
    authz = script("authorizer", AUTHORIZER)
    echo = script("echo", ECHO)
    mg = start_modelgate(front_config(echo.port, http_provider(authz.port, timeout="300ms")))
    r = requests.get(mg.url + META, headers={"x-ext-authz": "slow"}, timeout=10)
    assert r.status_code == 403, "a timed-out check must fail closed"
    assert echo.records() == []
    authz.stop()
    r = requests.get(mg.url + META, headers={"x-ext-authz": "allow"}, timeout=10)
    assert r.status_code == 403, "an unreachable authorizer must fail closed"
    assert echo.records() == []


def test_http_authorizer_fail_open(start_modelgate, script):
    authz = script("authorizer", AUTHORIZER)
    echo = script("echo", ECHO)
    mg = start_modelgate(front_config(echo.port, http_provider(authz.port, timeout="300ms", fail_open=True)))
    r = requests.get(mg.url + META, headers={"x-ext-authz": "slow"}, timeout=10)
    assert r.status_code == 200, "failOpen: a timed-out check lets the request through"
    assert "x-user" not in echo.records()[-1]["headers"]
    # failOpen does not turn a deny into an allow.
    assert requests.get(mg.url + META, headers={"x-ext-authz": "no"}, timeout=10).status_code == 403


GRPC_AUTHORIZER = """
listen:
  - address: "__LISTEN__"
    istio_compat: true
admin: {{address: "__ADMIN__"}}
models:
  - name: iris
    upstream: {{url: "http://127.0.0.1:9"}}
policies:
  - name: badge
    action: ALLOW
    rules: [{{when: [{{key: "request.headers[x-ext-authz]", values: [allow]}}]}}]
ext_authz: {{address: "127.0.0.1:{port}"}}
"""


def test_grpc_authorizer_is_modelgate_ext_authz(start_modelgate, script):
    echo = script("echo", ECHO)
    port = free_port()
    start_modelgate(GRPC_AUTHORIZER.format(port=port))
    provider = f"""  - name: ext
    envoyExtAuthzGrpc: {{service: 127.0.0.1, port: {port}, timeout: 2s}}
"""
    mg = start_modelgate(front_config(echo.port, provider))
    r = requests.get(mg.url + META, headers={"x-ext-authz": "allow"}, timeout=10)
    assert r.status_code == 200, r.text
    r = requests.get(mg.url + META, headers={"x-ext-authz": "no"}, timeout=10)
    # The authorizer's own denied_response: Envoy's RBAC text, passed through.
    assert r.status_code == 403
    assert r.text == "RBAC: access denied"
    assert len(echo.records()) == 1


def test_through_modelgate_ext_authz_check(start_modelgate, script):
    """The same step when modelgate itself is asked (its ext_authz HTTP
    flavour, as Envoy's envoyExtAuthzHttp would ask it)."""
    authz = script("authorizer", AUTHORIZER)
    echo = script("echo", ECHO)
    port = free_port()
    start_modelgate(front_config(echo.port, http_provider(authz.port), ext_authz_port=port))
    url = f"http://127.0.0.1:{port}/authz{META}"
    r = requests.get(url, headers={"x-ext-authz": "allow"}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["x-user"] == "alice"
    assert authz.records()[-1]["path"] == "/check" + META
    r = requests.get(url, headers={"x-ext-authz": "no"}, timeout=10)
    assert r.status_code == 403
    assert r.headers["x-reason"] == "no badge"
    assert r.text == "denied by the stand-in authorizer"


def test_through_forward_auth(start_modelgate, script):
    """The same step behind nginx `auth_request`-style forward-auth."""
    authz = script("authorizer", AUTHORIZER)
    echo = script("echo", ECHO)
    mg = start_modelgate(front_config(echo.port, http_provider(authz.port)))
    asked = {"x-original-uri": META, "x-original-method": "GET"}
    r = requests.get(mg.url + "/auth/nginx", headers={**asked, "x-ext-authz": "allow"}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["x-user"] == "alice"
    assert authz.records()[-1]["path"] == "/check" + META
    r = requests.get(mg.url + "/auth/nginx", headers={**asked, "x-ext-authz": "no"}, timeout=10)
    assert r.status_code == 403


def test_check_explains_the_external_call(tmp_path, script, run_modelgate):
    authz = script("authorizer", AUTHORIZER)
    cfg = tmp_path / "check.yaml"
    cfg.write_text(front_config(9, http_provider(authz.port), listen="127.0.0.1:1", admin="127.0.0.1:2"))
    base = ["check", "--config", str(cfg), "--path", META]
    r = run_modelgate([*base, "--header", "x-ext-authz: allow"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "external: CUSTOM ext-check asked provider ext: allowed" in r.stdout, r.stdout
    r = run_modelgate([*base, "--header", "x-ext-authz: no"])
    assert r.returncode != 0
    assert "external: CUSTOM ext-check asked provider ext: denied" in r.stdout, r.stdout
    assert "external provider ext: denied with 403" in r.stdout, r.stdout
    authz.stop()
    r = run_modelgate([*base, "--header", "x-ext-authz: allow"])
    assert r.returncode != 0
    assert "asked provider ext: error" in r.stdout, r.stdout


def test_providers_follow_a_reload(start_modelgate, script):
    authz = script("authorizer", AUTHORIZER)
    echo = script("echo", ECHO)
    mg = start_modelgate(front_config(echo.port, http_provider(authz.port)))
    assert requests.get(mg.url + META, headers={"x-ext-authz": "allow"}, timeout=10).status_code == 200
    # Point the provider at a port nobody listens on, with a custom statusOnError.
    text = mg.config_path.read_text().replace(f"port: {authz.port}", f"port: {free_port()}")
    mg.config_path.write_text(text.replace("failOpen: false", 'failOpen: false\n      statusOnError: "503"'))
    reloads = mg.stderr().count("configuration reloaded")
    mg.reload()
    deadline = time.monotonic() + 10
    while mg.stderr().count("configuration reloaded") == reloads and time.monotonic() < deadline:
        time.sleep(0.05)
    r = requests.get(mg.url + META, headers={"x-ext-authz": "allow"}, timeout=10)
    assert r.status_code == 503, r.text


# --- modelgate's own gRPC Check, with the external step behind it ------------------
# CheckRequest/CheckResponse are encoded by hand (protobuf wire format, field
# numbers from Envoy's envoy/service/auth/v3/*.proto): no Envoy stubs here.
def _varint(n: int) -> bytes:
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def _field(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _check_request(path: str, headers: dict[str, str]) -> bytes:
    http = _field(2, b"GET") + _field(4, path.encode()) + _field(5, b"models.example.com")
    for k, v in headers.items():  # map<string,string> headers = 3
        http += _field(3, _field(1, k.encode()) + _field(2, v.encode()))
    return _field(1, _field(4, _field(2, http)))  # attributes.request.http


def _parse(buf: bytes) -> dict[int, list]:
    out: dict[int, list] = {}
    i = 0
    while i < len(buf):
        key, shift = 0, 0
        while True:
            b = buf[i]; i += 1
            key |= (b & 0x7F) << shift; shift += 7
            if not b & 0x80:
                break
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, shift = 0, 0
            while True:
                b = buf[i]; i += 1
                val |= (b & 0x7F) << shift; shift += 7
                if not b & 0x80:
                    break
        elif wire == 2:
            n, shift = 0, 0
            while True:
                b = buf[i]; i += 1
                n |= (b & 0x7F) << shift; shift += 7
                if not b & 0x80:
                    break
            val = buf[i:i + n]; i += n
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        out.setdefault(num, []).append(val)
    return out


def _headers(options: list[bytes]) -> dict[str, str]:
    out = {}
    for o in options:
        hv = _parse(_parse(o)[1][0])
        out[hv[1][0].decode()] = hv[2][0].decode()
    return out


def test_through_modelgate_grpc_check(start_modelgate, script):
    import grpc

    authz = script("authorizer", AUTHORIZER)
    echo = script("echo", ECHO)
    port = free_port()
    start_modelgate(front_config(echo.port, http_provider(authz.port), ext_authz_port=port))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        check = ch.unary_unary("/envoy.service.auth.v3.Authorization/Check")
        resp = _parse(check(_check_request(META, {"x-ext-authz": "allow"}), timeout=10))
        status = _parse(resp[1][0]) if 1 in resp else {}
        assert status.get(1, [0])[0] == 0, resp
        ok = _parse(resp[3][0])
        assert _headers(ok.get(2, []))["x-user"] == "alice"
        assert authz.records()[-1]["path"] == "/check" + META
        resp = _parse(check(_check_request(META, {"x-ext-authz": "no"}), timeout=10))
        assert _parse(resp[1][0])[1][0] == 7  # PERMISSION_DENIED
        denied = _parse(resp[2][0])
        assert _parse(denied[1][0])[1][0] == 403
        assert _headers(denied.get(2, []))["x-reason"] == "no badge"
        assert denied[3][0] == b"denied by the stand-in authorizer"



# --- includeRequestBodyInCheck ------------------------------------------------------
INFER = "/v2/models/iris/infer"


def test_http_authorizer_sees_the_body_and_upstream_gets_it_intact(start_modelgate, script):
    authz = script("authorizer", AUTHORIZER)
    echo = script("echo", ECHO)
    provider = http_provider(authz.port, body="{maxRequestBytes: 4096}")
    mg = start_modelgate(front_config(echo.port, provider))
    body = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                                   "data": [5.1, 3.5, 1.4, 0.2]}]}).encode()
    # A client-sent partial marker is never passed on (Envoy drops it too).
    r = requests.post(mg.url + INFER, data=body, timeout=10,
                      headers={"x-ext-authz": "allow", "content-type": "application/json",
                               "x-envoy-auth-partial-body": "true"})
    assert r.status_code == 200, r.text
    check = authz.records()[-1]
    assert check["method"] == "POST" and check["path"] == "/check" + INFER
    assert check["body"].encode("latin-1") == body
    assert check["headers"]["content-length"] == str(len(body))
    assert check["headers"]["x-envoy-auth-partial-body"] == "false"
    up = echo.records()[-1]
    assert up["body"].encode("latin-1") == body, "the upstream must get the body unchanged"
    # A bodiless request: no body and no partial marker in the check.
    assert requests.get(mg.url + META, headers={"x-ext-authz": "allow"}, timeout=10).status_code == 200
    check = authz.records()[-1]
    assert check["body"] == "" and check["headers"]["content-length"] == "0"
    assert "x-envoy-auth-partial-body" not in check["headers"]


def test_body_over_max_request_bytes_is_413_even_with_fail_open(start_modelgate, script):
    authz = script("authorizer", AUTHORIZER)
    echo = script("echo", ECHO)
    provider = http_provider(authz.port, fail_open=True, body="{maxRequestBytes: 64}")
    mg = start_modelgate(front_config(echo.port, provider))
    n = len(authz.records())
    r = requests.post(mg.url + INFER, data=b"x" * 65, headers={"x-ext-authz": "allow"}, timeout=10)
    assert r.status_code == 413, r.text
    assert len(authz.records()) == n, "an over-limit body must not be checked"
    assert echo.records() == []
    # Exactly the limit is sent whole.
    r = requests.post(mg.url + INFER, data=b"y" * 64, headers={"x-ext-authz": "allow"}, timeout=10)
    assert r.status_code == 200, r.text
    assert authz.records()[-1]["body"] == "y" * 64
    assert authz.records()[-1]["headers"]["x-envoy-auth-partial-body"] == "false"
    # A chunked body (no Content-Length) over the limit: 413 as well.
    r = requests.post(mg.url + INFER, data=iter([b"z" * 40, b"z" * 40]),
                      headers={"x-ext-authz": "allow"}, timeout=10)
    assert r.status_code == 413, r.text


def test_partial_body_is_cut_and_marked_upstream_gets_all(start_modelgate, script):
    authz = script("authorizer", AUTHORIZER)
    echo = script("echo", ECHO)
    provider = http_provider(authz.port, body="{maxRequestBytes: 16, allowPartialMessage: true}")
    mg = start_modelgate(front_config(echo.port, provider))
    body = b"0123456789abcdef" * 8 + b"tail"
    r = requests.post(mg.url + INFER, data=iter([body[:50], body[50:]]),
                      headers={"x-ext-authz": "allow"}, timeout=10)
    assert r.status_code == 200, r.text
    check = authz.records()[-1]
    assert check["body"] == "0123456789abcdef"
    assert check["headers"]["content-length"] == "16"
    assert check["headers"]["x-envoy-auth-partial-body"] == "true"
    assert echo.records()[-1]["body"].encode("latin-1") == body


def test_body_reaches_mlserver_intact(start_modelgate, script, mlserver_iris):
    from gw import V2_BODY

    authz = script("authorizer", AUTHORIZER)
    provider = http_provider(authz.port, timeout="2s", body="{maxRequestBytes: 8192}")
    cfg = front_config(1, provider).replace('url: "http://127.0.0.1:1"', f'url: "{mlserver_iris.rest_url}"')
    mg = start_modelgate(cfg)
    sent = json.dumps(V2_BODY).encode()
    r = requests.post(mg.url + INFER, data=sent, timeout=30,
                      headers={"x-ext-authz": "allow", "content-type": "application/json"})
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["shape"][0] == V2_BODY["inputs"][0]["shape"][0], out
    assert authz.records()[-1]["body"].encode("latin-1") == sent
    # Denied on the body's say-so: MLServer is not called, the authorizer's answer stands.
    r = requests.post(mg.url + INFER, data=sent, headers={"x-ext-authz": "no"}, timeout=30)
    assert r.status_code == 403 and r.headers["x-reason"] == "no badge"


GRPC_MODEL_AUTHORIZER = """
listen:
  - address: "__LISTEN__"
    istio_compat: true
admin: {{address: "__ADMIN__"}}
models:
  - {{name: llama3, protocols: [openai], upstream: {{url: "http://127.0.0.1:9"}}}}
  - {{name: other, protocols: [openai], upstream: {{url: "http://127.0.0.1:9"}}}}
policies:
  - name: llama-only
    action: ALLOW
    rules: [{{to: [{{operation: {{models: [llama3]}}}}]}}]
ext_authz: {{address: "127.0.0.1:{port}"}}
"""

OPENAI_FRONT = """
listen:
  - address: "__LISTEN__"
    istio_compat: true
admin: {{address: "__ADMIN__"}}
models:
  - {{name: llama3, protocols: [openai], upstream: {{url: "http://127.0.0.1:{echo}"}}}}
  - {{name: other, protocols: [openai], upstream: {{url: "http://127.0.0.1:{echo}"}}}}
extension_providers:
  - name: ext
    envoyExtAuthzGrpc:
      service: 127.0.0.1
      port: {port}
      timeout: 2s
      includeRequestBodyInCheck: {{maxRequestBytes: 4096{pack}}}
policies:
  - {{name: ext-check, action: CUSTOM, provider: {{name: ext}}, rules: [{{}}]}}
  - {{name: everyone, action: ALLOW, rules: [{{}}]}}
"""


@pytest.mark.parametrize("pack", ["", ", packAsBytes: true"])
def test_grpc_authorizer_binds_the_model_from_the_body(start_modelgate, script, pack):
    """modelgate as the gRPC authorizer can only decide an OpenAI request by
    its model when the body comes with the Check."""
    echo = script("echo", ECHO)
    port = free_port()
    authorizer = start_modelgate(GRPC_MODEL_AUTHORIZER.format(port=port))
    mg = start_modelgate(OPENAI_FRONT.format(echo=echo.port, port=port, pack=pack))
    chat = mg.url + "/v1/chat/completions"
    ok = json.dumps({"model": "llama3", "messages": [{"role": "user", "content": "hi"}]}).encode()
    r = requests.post(chat, data=ok, headers={"content-type": "application/json"}, timeout=10)
    assert r.status_code == 200, r.text
    assert echo.records()[-1]["body"].encode("latin-1") == ok
    no = json.dumps({"model": "other", "messages": [{"role": "user", "content": "hi"}]}).encode()
    r = requests.post(chat, data=no, headers={"content-type": "application/json"}, timeout=10)
    assert r.status_code == 403, r.text
    assert len(echo.records()) == 1
    seen = [d.get("model") for d in authorizer.wait_decisions(2)]
    assert seen[-2:] == ["llama3", "other"], seen
