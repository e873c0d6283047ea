"""Wristband through the adapters (issue 15 items 2 and 4) and the request body
in Envoy's `Check` (`with_request_body`, item 1).

When `wristband:` is configured, an allowed Envoy `Check` returns the minted
token among the headers to set upstream (`OkHttpResponse.headers`, overwriting
any client value), and forward-auth answers it as a response header that
nginx `auth_request_set` and Caddy `copy_headers` pass on. The upstream is
test_wristband's recording server, which verifies each token with PyJWT
against the JWKS modelgate serves (found through OIDC discovery).

Envoy cannot be installed here: the `Check` client is encoded by hand from
Envoy's protos (envoy/service/auth/v3, field numbers as in test_custom_authz)
and sent with grpcio, shaped as Envoy's ext_authz filter sends it (with
`with_request_body`, the body in `attributes.request.http.body` and, with
`allow_partial_message`, `x-envoy-auth-partial-body` among the headers).
"""

from __future__ import annotations

import json

import grpc
import jwt
import pytest
import requests

import peers
from gw import bearer, create_key
from test_custom_authz import _field, _headers, _parse
from test_wristband import HEADER, _Recorder, genkey, upstream, verifier  # noqa: F401  (upstream: fixture)

CHECK = "/envoy.service.auth.v3.Authorization/Check"
CHAT = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}]})


def config(listen, ext, up, keys, signing_key):
    u = f"http://127.0.0.1:{up.server_address[1]}"
    return f"""
listen:
  - address: "{listen}"
    trusted_proxies: [127.0.0.1/32]
    forward_auth:
      - {{path: /auth/nginx, headers: nginx}}
      - {{path: /auth/forwarded, headers: forwarded}}
admin: {{address: "__ADMIN__"}}
ext_authz: {{address: "{ext}", http_path_prefix: /authz}}
auth:
  api_keys: {{file: "{keys}"}}
  identity_header: x-modelgate-user
models:
  - {{name: iris, protocols: [v1], upstream: {{url: "{u}"}}}}
  - {{name: chat, protocols: [openai], upstream: {{url: "{u}"}}}}
  - {{name: plain, protocols: [v1], upstream: {{url: "{u}"}}, wristband: false}}
wristband:
  issuer: "http://{listen}/wb"
  ttl: 5m
  algorithm: ES256
  signing_keys: ["{signing_key}"]
"""


@pytest.fixture
def mg(tmp_path, run_modelgate, start_modelgate, upstream):  # noqa: F811
    keys = tmp_path / "keys.json"
    key = create_key(run_modelgate, keys, "alice")
    listen, ext = peers.free_addr(), peers.free_addr()
    issuer = f"http://{listen}/wb"
    _Recorder.verify = staticmethod(verifier(issuer))
    srv = start_modelgate(config(listen, ext, upstream, keys, genkey(tmp_path / "wb.pem")))
    return srv, ext, key, issuer


def check(ext: str, method: str, path: str, headers: dict[str, str], body: str | None = None) -> dict:
    """One Envoy `Check`; returns {code, ok: {set, remove} | denied: {status, headers, body}}."""
    http = _field(2, method.encode()) + _field(4, path.encode()) + _field(5, b"models.example.com")
    for k, v in headers.items():  # map<string,string> headers = 3
        http += _field(3, _field(1, k.encode()) + _field(2, v.encode()))
    if body is not None:
        http += _field(11, body.encode())  # body = 11 (with_request_body)
    req = _field(1, _field(4, _field(2, http)))  # attributes.request.http
    with grpc.insecure_channel(ext) as ch:
        resp = _parse(ch.unary_unary(CHECK)(req, timeout=10))
    status = _parse(resp[1][0]) if 1 in resp else {}
    out: dict = {"code": status.get(1, [0])[0]}
    if 3 in resp:
        ok = _parse(resp[3][0])
        out["ok"] = {"set": _headers(ok.get(2, [])), "remove": [r.decode() for r in ok.get(5, [])]}
    if 2 in resp:
        d = _parse(resp[2][0])
        out["denied"] = {"status": _parse(d[1][0])[1][0], "headers": _headers(d.get(2, [])),
                         "body": d.get(3, [b""])[0].decode()}
    return out


def test_ext_authz_check_sets_a_verifiable_wristband(mg):
    srv, ext, key, issuer = mg
    verify = verifier(issuer)
    forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJyb290In0."
    r = check(ext, "POST", "/v1/models/iris:predict", {**bearer(key), HEADER: forged})
    assert r["code"] == 0 and "ok" in r, r
    token = r["ok"]["set"][HEADER]
    assert token != forged and HEADER not in r["ok"]["remove"]
    assert r["ok"]["set"]["x-modelgate-user"] == "alice"
    claims = verify(token)
    assert claims["sub"] == "alice" and claims["model"] == "iris" and claims["aud"] == "iris"
    assert key not in token
    # Tampered: PyJWT refuses it against the same JWKS.
    head, payload, sig = token.split(".")
    with pytest.raises(jwt.InvalidSignatureError):
        verify(f"{head}.{payload}.{sig[:-4]}{'AAAA' if sig[-4:] != 'AAAA' else 'BBBB'}")
    # A model that opted out gets no wristband, and the client's copy is removed.
    r = check(ext, "POST", "/v1/models/plain:predict", {**bearer(key), HEADER: forged})
    assert r["code"] == 0 and HEADER not in r["ok"]["set"], r
    assert HEADER in r["ok"]["remove"]
    # Denied: no wristband anywhere.
    r = check(ext, "POST", "/v1/models/iris:predict", {HEADER: forged})
    assert r["code"] == 16 and r["denied"]["status"] == 401 and HEADER not in r["denied"]["headers"], r
    # The same request through serve gives the upstream a token for the same identity.
    resp = requests.post(f"{srv.url}/v1/models/iris:predict", json={"instances": [[1, 2, 3, 4]]},
                         headers={**bearer(key), HEADER: forged}, timeout=10)
    assert resp.status_code == 200, resp.text
    seen = _Recorder.seen[-1]
    assert "error" not in seen and seen["tokens"] != [forged], seen
    assert seen["claims"]["sub"] == claims["sub"] and seen["claims"]["model"] == claims["model"]


def test_ext_authz_http_flavour_answers_the_wristband(mg):
    """Istio `envoyExtAuthzHttp`: a 2xx answer whose headers Envoy copies upstream
    (`headersToUpstreamOnAllow`)."""
    _, ext, key, issuer = mg
    url = f"http://{ext}/authz/v1/models/iris:predict"
    r = requests.post(url, headers={**bearer(key), HEADER: "forged"}, data=b"", timeout=10)
    assert r.status_code == 200, r.text
    claims = verifier(issuer)(r.headers[HEADER])
    assert claims["sub"] == "alice" and claims["model"] == "iris"
    r = requests.post(url, headers={HEADER: "forged"}, data=b"", timeout=10)
    assert r.status_code == 401 and HEADER not in r.headers


def nginx_block(mg_listen: str, up_port: int) -> str:
    # docs/mesh.md, nginx snippet with the wristband lines.
    return f"""
server {{
    listen 127.0.0.1:__PORT__;
    location / {{
        auth_request /_modelgate_auth;
        auth_request_set $mg_user $upstream_http_x_modelgate_user;
        auth_request_set $mg_wristband $upstream_http_x_modelgate_wristband;
        proxy_set_header X-Modelgate-User $mg_user;
        proxy_set_header X-Modelgate-Wristband $mg_wristband;
        proxy_set_header Authorization "";
        proxy_pass http://127.0.0.1:{up_port};
    }}
    location = /_modelgate_auth {{
        internal;
        proxy_pass http://{mg_listen}/auth/nginx;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header X-Original-URI $request_uri;
        proxy_set_header X-Original-Method $request_method;
        proxy_set_header X-Forwarded-Host $host;
    }}
}}
"""


CADDY_SITE = """
    route {
        request_header -X-Modelgate-User
        request_header -X-Modelgate-Wristband
        forward_auth MODELGATE {
            uri /auth/forwarded
            copy_headers X-Modelgate-User X-Modelgate-Wristband
        }
        request_header -Authorization
        reverse_proxy UPSTREAM
    }
"""


def through_front(front_url: str, key: str | None) -> requests.Response:
    h = {HEADER: "forged.by.client"}
    if key:
        h.update(bearer(key))
    return requests.post(f"{front_url}/v1/models/iris:predict", json={"instances": [[1, 2, 3, 4]]}, headers=h,
                         timeout=10)


def assert_front_passes_a_verified_wristband(front_url: str, key: str) -> None:
    _Recorder.seen.clear()
    r = through_front(front_url, None)
    assert r.status_code == 401 and "www-authenticate" in r.headers, (r.status_code, dict(r.headers))
    assert not _Recorder.seen
    r = through_front(front_url, key)
    assert r.status_code == 200, r.text
    seen = _Recorder.seen[-1]
    assert seen["tokens"] and seen["tokens"] != ["forged.by.client"], seen
    assert "error" not in seen, seen
    assert seen["claims"]["sub"] == "alice" and seen["claims"]["model"] == "iris"


def test_nginx_auth_request_passes_the_wristband(mg, start_nginx, upstream):  # noqa: F811
    srv, _, key, _ = mg
    front = start_nginx(nginx_block(srv.listen, upstream.server_address[1]))
    assert_front_passes_a_verified_wristband(front.url, key)


def test_caddy_forward_auth_passes_the_wristband(mg, tmp_path, upstream):  # noqa: F811
    srv, _, key, _ = mg
    site = CADDY_SITE.replace("MODELGATE", srv.listen).replace("UPSTREAM", f"127.0.0.1:{upstream.server_address[1]}")
    try:
        caddy = peers.start_caddy(tmp_path / "caddy", site)
    except peers.PeerError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        assert_front_passes_a_verified_wristband(caddy.url, key)
    finally:
        caddy.stop()


def test_check_with_and_without_the_body_decides_as_serve(mg):
    srv, ext, key, _ = mg
    path = "/v1/chat/completions"
    h = {**bearer(key), "content-type": "application/json"}
    # With the body (Envoy's with_request_body): the model comes from it.
    r = check(ext, "POST", path, h, CHAT)
    assert r["code"] == 0 and "ok" in r, r
    # Envoy says the body is whole (allow_partial_message, under max_request_bytes).
    r = check(ext, "POST", path, {**h, "x-envoy-auth-partial-body": "false"}, CHAT)
    assert r["code"] == 0 and "ok" in r, r
    # An unknown model in the body: the same refusal as serve.
    other = CHAT.replace('"chat"', '"nope"')
    r = check(ext, "POST", path, h, other)
    resp = requests.post(f"{srv.url}{path}", data=other, headers=h, timeout=10)
    assert "denied" in r and r["denied"]["status"] == resp.status_code, (r, resp.status_code, resp.text)
    # Without the body, the route's model is unknown: refused with a clear reason, never allowed.
    r = check(ext, "POST", path, h)
    assert "denied" in r and r["denied"]["status"] == 400, r
    assert "body" in r["denied"]["headers"].get("x-ext-auth-reason", "") + r["denied"]["body"]
    # A body cut at max_request_bytes (allow_partial_message): fail closed.
    r = check(ext, "POST", path, {**h, "x-envoy-auth-partial-body": "true"}, CHAT[:20])
    assert "denied" in r and r["denied"]["status"] == 403, r
    assert "partial" in r["denied"]["headers"].get("x-ext-auth-reason", "") + r["denied"]["body"]
    # Even when the cut body still parses to an allowed model name.
    r = check(ext, "POST", path, {**h, "x-envoy-auth-partial-body": "true"}, CHAT)
    assert "denied" in r and r["denied"]["status"] == 403, r
    # A route whose model is in the path does not need the body: a partial one is fine.
    r = check(ext, "POST", "/v1/models/iris:predict", {**bearer(key), "x-envoy-auth-partial-body": "true"},
              '{"instances": [[1, 2')
    assert r["code"] == 0 and "ok" in r, r
