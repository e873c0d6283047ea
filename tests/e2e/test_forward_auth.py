"""Forward-auth with real proxies (issue 15 item 2): Debian nginx with
`auth_request` and Debian Caddy with `forward_auth`, each in front of a real
MLServer, with modelgate answering the subrequests.

Between the proxy and MLServer sits a recording hop (a second nginx that logs
the headers it receives, as JSON, and proxies on to MLServer), so the tests see
what actually reaches the model server: the identity header modelgate
answered with, and no API key. The proxy snippets here are the ones in
docs/mesh.md ("Forward-auth").
"""

from __future__ import annotations

import http.client
import json
import time

import pytest
import requests

from gw import V2_BODY, bearer, create_key

MG_CONFIG = """
listen:
  - address: "__LISTEN__"
    trusted_proxies: [127.0.0.1/32]
    forward_auth:
      - {{path: /auth/nginx, headers: nginx}}
      - {{path: /auth/forwarded, headers: forwarded}}
admin: {{address: "__ADMIN__"}}
auth:
  api_keys: {{file: "{keys}"}}
  identity_header: x-modelgate-user
  public_paths: [/v2/health/ready]
models:
  - name: iris
    upstream: {{url: "{mlserver}"}}
  - name: other
    upstream: {{url: "{mlserver}"}}
  - name: llm
    protocols: [openai]
    upstream: {{url: "{mlserver}"}}
"""

RECORDER_HTTP = r"""
map $http_authorization $mg_has_auth { "" "no"; default "yes"; }
log_format mgrec escape=json '{"method":"$request_method","uri":"$request_uri","user":"$http_x_modelgate_user","authorization":"$mg_has_auth"}';
"""

RECORDER = """
server {
    listen 127.0.0.1:__PORT__;
    access_log __WORK__/logs/upstream.jsonl mgrec;
    location / { proxy_pass MLSERVER; }
}
"""

# docs/mesh.md, nginx snippet (MODELGATE and UPSTREAM filled in).
NGINX_FRONT = """
server {
    listen 127.0.0.1:__PORT__;
    location / {
        auth_request /_modelgate_auth;
        auth_request_set $mg_user $upstream_http_x_modelgate_user;
        auth_request_set $mg_reason $upstream_http_x_ext_auth_reason;
        proxy_set_header X-Modelgate-User $mg_user;
        proxy_set_header Authorization "";
        add_header X-Ext-Auth-Reason $mg_reason always;
        proxy_pass http://UPSTREAM;
    }
    location = /_modelgate_auth {
        internal;
        proxy_pass http://MODELGATE/auth/nginx;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header X-Original-URI $request_uri;
        proxy_set_header X-Original-Method $request_method;
        proxy_set_header X-Forwarded-Host $host;
    }
}
"""

# docs/mesh.md, Caddy snippet (the site body).
CADDY_SITE = """
    route {
        request_header -X-Modelgate-User
        forward_auth MODELGATE {
            uri /auth/forwarded
            copy_headers X-Modelgate-User
        }
        request_header -Authorization
        reverse_proxy UPSTREAM
    }
"""


class Setup:
    def __init__(self, mg, recorder, iris_key, other_key, all_key):
        self.mg, self.recorder = mg, recorder
        self.iris_key, self.other_key, self.all_key = iris_key, other_key, all_key

    def upstream_seen(self, at_least: int = 0) -> list[dict]:
        """The recorder's log lines, once it holds at least `at_least`.

        nginx writes a request's log line after it has sent the response, so
        the client (through the front proxy) can have the answer before the
        line exists; under load (several test runs at once) it often does.
        Waiting for the expected count, then comparing the whole list, also
        catches a request that should not have reached MLServer."""
        path = self.recorder.root.parent / "logs" / "upstream.jsonl"
        deadline = time.monotonic() + 10
        while True:
            text = path.read_text() if path.exists() else ""
            seen = [json.loads(line) for line in text.splitlines() if line.strip()]
            if len(seen) >= at_least or time.monotonic() > deadline:
                return seen
            time.sleep(0.05)


@pytest.fixture
def setup(tmp_path, mlserver_iris, start_nginx, start_modelgate, run_modelgate):
    keys = tmp_path / "keys.json"
    iris_key = create_key(run_modelgate, keys, "iris-client", "iris")
    other_key = create_key(run_modelgate, keys, "other-client", "other")
    all_key = create_key(run_modelgate, keys, "all-client", "*")
    mg = start_modelgate(MG_CONFIG.format(keys=keys, mlserver=mlserver_iris.rest_url))
    recorder = start_nginx(RECORDER.replace("MLSERVER", mlserver_iris.rest_url), http_extra=RECORDER_HTTP)
    return Setup(mg, recorder, iris_key, other_key, all_key)


@pytest.fixture
def nginx_front(setup, start_nginx):
    block = NGINX_FRONT.replace("MODELGATE", setup.mg.listen).replace("UPSTREAM", f"127.0.0.1:{setup.recorder.port}")
    return start_nginx(block).url


@pytest.fixture
def caddy_front(setup, tmp_path):
    import peers

    site = CADDY_SITE.replace("MODELGATE", setup.mg.listen).replace("UPSTREAM", f"127.0.0.1:{setup.recorder.port}")
    try:
        srv = peers.start_caddy(tmp_path / "caddy", site)
    except peers.PeerError as e:
        pytest.fail(str(e), pytrace=False)
    yield srv.url
    srv.stop()


def infer(front: str, model: str = "iris", headers: dict | None = None) -> requests.Response:
    return requests.post(f"{front}/v2/models/{model}/infer", json=V2_BODY, headers=headers or {}, timeout=10)


def check_proxy(front: str, s: Setup) -> None:
    mark = s.mg.log_mark()
    # No credential: 401 with a Bearer challenge; MLServer never sees it.
    r = infer(front)
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"].startswith("Bearer realm=")
    assert r.headers["X-Ext-Auth-Reason"] == "credential not found"
    assert s.upstream_seen() == []

    # A key for iris: MLServer answers, and receives the identity, not the key.
    r = infer(front, headers=bearer(s.iris_key))
    assert r.status_code == 200, r.text
    assert r.json()["model_name"] == "iris"
    seen = s.upstream_seen(at_least=1)
    assert [(x["uri"], x["user"], x["authorization"]) for x in seen] == [
        ("/v2/models/iris/infer", "iris-client", "no")]

    # A key granted model "other" cannot reach iris through the proxy.
    r = infer(front, headers=bearer(s.other_key))
    assert r.status_code == 403, r.text
    assert len(s.upstream_seen()) == 1

    # Spoofed forward-auth headers and identity from the client change nothing:
    # the proxy describes the request it holds.
    spoof = {"X-Original-URI": "/v2/health/ready", "X-Original-Method": "GET",
             "X-Forwarded-Uri": "/v2/health/ready", "X-Forwarded-Method": "GET",
             "X-Modelgate-User": "admin"}
    r = infer(front, headers=spoof)
    assert r.status_code == 401, r.text
    r = infer(front, headers={**spoof, **bearer(s.other_key)})
    assert r.status_code == 403, r.text
    assert len(s.upstream_seen()) == 1

    # A public path passes without a credential, and a client-sent identity
    # header does not reach MLServer.
    r = requests.get(f"{front}/v2/health/ready", headers={"X-Modelgate-User": "admin"}, timeout=10)
    assert r.status_code == 200, r.text
    seen = s.upstream_seen(at_least=2)
    assert len(seen) == 2, seen  # nothing refused above reached MLServer late
    assert (seen[-1]["uri"], seen[-1]["user"]) == ("/v2/health/ready", "")

    # One decision record per check, about the original request.
    d = s.mg.wait_decisions(6, since=mark)
    assert [(x["method"], x["path"], x["status"]) for x in d] == [
        ("POST", "/v2/models/iris/infer", 401),
        ("POST", "/v2/models/iris/infer", 200),
        ("POST", "/v2/models/iris/infer", 403),
        ("POST", "/v2/models/iris/infer", 401),
        ("POST", "/v2/models/iris/infer", 403),
        ("GET", "/v2/health/ready", 200),
    ]
    assert d[1]["identity"] == "iris-client" and d[1]["model"] == "iris"
    assert d[2]["identity"] == "other-client" and d[2]["decision"] == "deny"


def test_nginx_auth_request_in_front_of_mlserver(setup, nginx_front):
    check_proxy(nginx_front, setup)


def test_caddy_forward_auth_in_front_of_mlserver(setup, caddy_front):
    check_proxy(caddy_front, setup)


def from_untrusted(mg_addr: str, path: str, headers: dict) -> tuple[int, dict, bytes]:
    """A request to modelgate from 127.0.0.2, which is not a trusted proxy."""
    host, port = mg_addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10, source_address=("127.0.0.2", 0))
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def test_forward_auth_headers_from_an_untrusted_address_are_never_evaluated(setup):
    mark = setup.mg.log_mark()
    cases = [
        ("/auth/nginx", {"X-Original-URI": "/v2/health/ready", "X-Original-Method": "GET"}),
        ("/auth/forwarded", {"X-Forwarded-Uri": "/v2/health/ready", "X-Forwarded-Method": "GET"}),
        ("/auth/nginx", {"X-Original-URI": "/v2/models/iris/ready", "X-Original-Method": "GET",
                         **bearer(setup.iris_key)}),
    ]
    for path, headers in cases:
        status, hdrs, body = from_untrusted(setup.mg.listen, path, headers)
        assert status == 403, (path, headers, body)
        assert "trusted_proxies" in hdrs["x-ext-auth-reason"]
        assert "x-modelgate-user" not in hdrs
    d = setup.mg.wait_decisions(3, since=mark)
    assert [(x["path"], x["status"], x["decision"]) for x in d] == [
        ("/auth/nginx", 403, "deny"), ("/auth/forwarded", 403, "deny"), ("/auth/nginx", 403, "deny")]
    assert all(x.get("identity") is None for x in d)


def test_forward_auth_direct_from_a_trusted_proxy(setup):
    url = f"{setup.mg.url}/auth/forwarded"

    def ask(method, uri, key=None, **extra):
        h = {"X-Forwarded-Method": method, "X-Forwarded-Uri": uri, **extra}
        if key:
            h.update(bearer(key))
        return requests.get(url, headers=h, timeout=10)

    r = ask("GET", "/v2/models/iris/ready", setup.iris_key)
    assert r.status_code == 200 and r.headers["x-modelgate-user"] == "iris-client"
    # The body is never seen: an OpenAI route (model in the body) is refused
    # with a clear reason, in the OpenAI error shape.
    r = ask("POST", "/v1/chat/completions", setup.all_key)
    assert r.status_code == 403, r.text
    assert "cannot see the request body" in r.headers["x-ext-auth-reason"]
    assert r.json()["error"]["type"] == "permission_error"
    # Not a 404 or 400 (nginx would turn those into 500): a 403 with the reason.
    r = ask("GET", "/v2/models/nope/ready", setup.all_key)
    assert r.status_code == 403 and r.headers["x-ext-auth-reason"], r.text
    r = ask("GET", "/v2/models/iris/../other/ready", setup.iris_key)
    assert r.status_code == 403, r.text
    r = ask("GET", "/v2/models/iris%2Fx/ready", setup.iris_key)
    assert r.status_code == 403, r.text
    # Missing description: refused, never evaluated as the endpoint's own path.
    r = requests.get(url, headers=bearer(setup.iris_key), timeout=10)
    assert r.status_code == 403 and "x-forwarded-uri" in r.headers["x-ext-auth-reason"]
    # The nginx endpoint does not read the X-Forwarded-* family.
    r = requests.get(f"{setup.mg.url}/auth/nginx", timeout=10,
                     headers={"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/v2/health/ready"})
    assert r.status_code == 403 and "x-original-uri" in r.headers["x-ext-auth-reason"]
