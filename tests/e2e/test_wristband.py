"""Wristband (issue 15 item 4): modelgate signs a short-lived JWT after each
permitted decision and sends it upstream. The upstream here is a small
recording HTTP server (in-process, on a free port) that verifies the token
with PyJWT against the JWKS modelgate serves, found through OIDC discovery.
Tampered and expired tokens are refused by PyJWT, a client-sent header of the
same name never reaches the upstream, and keys rotate on SIGHUP with overlap."""

from __future__ import annotations

import base64
import http.server
import json
import subprocess
import threading
import time

import jwt
import pytest
import requests

import peers
from gw import bearer, create_key

HEADER = "x-modelgate-wristband"


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers like a KServe v1 model server and records each request's
    wristband headers; verifies the token itself when given a JWKS client."""

    seen: list[dict] = []
    verify = None  # callable(token) -> claims, set by the test

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", 0)))
        tokens = self.headers.get_all(HEADER) or []
        entry = {"path": self.path, "tokens": tokens, "names": [k.lower() for k in self.headers.keys()]}
        try:
            entry["claims"] = type(self).verify(tokens[0]) if tokens else None
        except Exception as e:  # noqa: BLE001 - the test asserts on it
            entry["error"] = f"{type(e).__name__}: {e}"
        type(self).seen.append(entry)
        body = b'{"predictions":[1]}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def upstream():
    _Recorder.seen = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def genkey(path, algorithm="EC"):
    args = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"] if algorithm == "EC" else ["-algorithm", "ed25519"]
    subprocess.run(["openssl", "genpkey", *args, "-out", str(path)], check=True, capture_output=True)
    return path


def config(listen, upstream, keys_file, signing_keys, ttl="5m", algorithm="ES256"):
    ks = ", ".join(f'"{k}"' for k in signing_keys)
    return f"""
listen: {{address: "{listen}"}}
admin: {{address: "__ADMIN__"}}
auth: {{api_keys: {{file: "{keys_file}"}}}}
models:
  - name: iris
    protocols: [v1]
    upstream: {{url: "http://127.0.0.1:{upstream.server_address[1]}"}}
  - name: chat
    protocols: [openai]
    upstream: {{url: "http://127.0.0.1:{upstream.server_address[1]}"}}
  - name: plain
    protocols: [v1]
    upstream: {{url: "http://127.0.0.1:{upstream.server_address[1]}"}}
    wristband: false
wristband:
  issuer: "http://{listen}/wb"
  ttl: {ttl}
  algorithm: {algorithm}
  signing_keys: [{ks}]
"""


def jwks_client(issuer):
    disc = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=5)
    assert disc.status_code == 200, disc.text
    d = disc.json()
    assert d["issuer"] == issuer
    return jwt.PyJWKClient(d["jwks_uri"], cache_keys=False, cache_jwk_set=False)


def verifier(issuer, algorithms=("ES256", "EdDSA"), audience=("iris", "chat"), **options):
    def verify(token):
        key = jwks_client(issuer).get_signing_key_from_jwt(token)
        return jwt.decode(token, key, algorithms=list(algorithms), audience=list(audience), issuer=issuer,
                          leeway=0, options=options or None)
    return verify


def predict(mg, key, extra=None):
    h = {**bearer(key), **(extra or {})}
    return requests.post(f"{mg.url}/v1/models/iris:predict", json={"instances": [[1, 2, 3, 4]]}, headers=h, timeout=10)


def test_upstream_verifies_the_wristband(tmp_path, run_modelgate, start_modelgate, upstream):
    keys = tmp_path / "keys.json"
    k = create_key(run_modelgate, keys, "alice")
    listen = peers.free_addr()
    issuer = f"http://{listen}/wb"
    _Recorder.verify = staticmethod(verifier(issuer))
    mg = start_modelgate(config(listen, upstream, keys, [genkey(tmp_path / "a.pem")]))

    r = predict(mg, k)
    assert r.status_code == 200, r.text
    seen = _Recorder.seen[-1]
    assert "error" not in seen, seen
    c = seen["claims"]
    assert c["iss"] == issuer and c["aud"] == "iris" and c["sub"] == "alice" and c["model"] == "iris"
    assert c["protocol"] == "v1" and c["operation"] and c["exp"] - c["iat"] == 300
    assert c["identity"]["kind"] == "api_key" and c["decision"]["basis"]
    # No credential in the token.
    token = seen["tokens"][0]
    assert k not in token and k not in json.dumps(c)
    # The decision log names the key and the token id, not the token.
    d = [x for x in mg.wait_decisions(1) if x["path"] == "/v1/models/iris:predict"][-1]
    assert d["wristband"]["jti"] == c["jti"]
    assert d["wristband"]["kid"] == jwt.get_unverified_header(token)["kid"]
    assert token not in mg.stdout()

    # Tampered: claims changed, or signature from another token.
    h, p, s = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    forged["sub"] = "mallory"
    p2 = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidSignatureError):
        verifier(issuer)(f"{h}.{p2}.{s}")
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, jwks_client(issuer).get_signing_key_from_jwt(token), algorithms=["ES256"], audience="other")

    # A client-sent header (any spelling) never reaches the upstream; the
    # minted one replaces it.
    r = predict(mg, k, {HEADER: token, "X_Modelgate_Wristband": "forged"})
    assert r.status_code == 200
    seen = _Recorder.seen[-1]
    assert len(seen["tokens"]) == 1 and seen["tokens"][0] != token and "error" not in seen
    assert "x_modelgate_wristband" not in seen["names"]
    # Without a credential nothing is forwarded at all.
    n = len(_Recorder.seen)
    assert requests.post(f"{mg.url}/v1/models/iris:predict", json={}, headers={HEADER: token}, timeout=5).status_code == 401
    assert len(_Recorder.seen) == n

    # OpenAI: the audience is that model's name.
    r = requests.post(f"{mg.url}/v1/chat/completions", headers={**bearer(k), HEADER: "forged"}, timeout=10,
                      json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.text
    seen = _Recorder.seen[-1]
    assert seen["path"] == "/v1/chat/completions" and "error" not in seen, seen
    assert seen["claims"]["aud"] == "chat" and seen["claims"]["protocol"] == "openai"
    assert seen["tokens"] != ["forged"] and len(seen["tokens"]) == 1

    # A model that opted out gets no wristband, and still no client copy.
    r = requests.post(f"{mg.url}/v1/models/plain:predict", json={"instances": [[1]]},
                      headers={**bearer(k), HEADER: token}, timeout=10)
    assert r.status_code == 200 and _Recorder.seen[-1]["path"] == "/v1/models/plain:predict"
    assert _Recorder.seen[-1]["tokens"] == []

    # Discovery and JWKS: public listener (root and issuer path) and admin; other paths stay 404.
    for base in (mg.url, f"{mg.url}/wb", mg.admin_url):
        assert requests.get(f"{base}/.well-known/jwks.json", timeout=5).json()["keys"][0]["alg"] == "ES256"
        assert requests.get(f"{base}/.well-known/openid-configuration", timeout=5).json()["issuer"] == issuer
    assert requests.get(f"{mg.url}/.well-known/other", timeout=5).status_code == 404
    assert requests.get(f"{mg.admin_url}/.well-known/other", timeout=5).status_code == 404


def test_expired_wristband_is_refused(tmp_path, run_modelgate, start_modelgate, upstream):
    keys = tmp_path / "keys.json"
    k = create_key(run_modelgate, keys, "bob")
    listen = peers.free_addr()
    issuer = f"http://{listen}/wb"
    _Recorder.verify = staticmethod(verifier(issuer, verify_exp=False))
    mg = start_modelgate(config(listen, upstream, keys, [genkey(tmp_path / "ed.pem", "ed25519")],
                               ttl="1s", algorithm="EdDSA"))
    assert predict(mg, k).status_code == 200
    seen = _Recorder.seen[-1]
    assert "error" not in seen and seen["claims"]["exp"] - seen["claims"]["iat"] == 1
    assert jwt.get_unverified_header(seen["tokens"][0])["alg"] == "EdDSA"
    time.sleep(2.1)
    with pytest.raises(jwt.ExpiredSignatureError):
        verifier(issuer)(seen["tokens"][0])


def test_key_rotation_on_sighup(tmp_path, run_modelgate, start_modelgate, upstream):
    keys = tmp_path / "keys.json"
    k = create_key(run_modelgate, keys, "carol")
    listen = peers.free_addr()
    issuer = f"http://{listen}/wb"
    _Recorder.verify = staticmethod(verifier(issuer))
    a, b = genkey(tmp_path / "a.pem"), genkey(tmp_path / "b.pem")
    mg = start_modelgate(config(listen, upstream, keys, [a, b]))

    def mint():
        assert predict(mg, k).status_code == 200
        seen = _Recorder.seen[-1]
        assert "error" not in seen, seen
        return seen["tokens"][0]

    def jwks_kids():
        return [x["kid"] for x in requests.get(f"{mg.url}/.well-known/jwks.json", timeout=5).json()["keys"]]

    def reload(signing_keys, until):
        """Rewrites signing_keys, sends SIGHUP (the file watcher may reload
        too), and waits until `until()` holds."""
        text = mg.config_path.read_text()
        start = text.index("signing_keys:")
        mg.config_path.write_text(text[:start] + "signing_keys: [" + ", ".join(f'"{x}"' for x in signing_keys) + "]\n")
        mg.reload()
        deadline = time.monotonic() + 10
        while not until():
            assert time.monotonic() < deadline, mg.stderr()
            time.sleep(0.05)

    old = mint()
    kid_a = jwt.get_unverified_header(old)["kid"]
    assert len(jwks_kids()) == 2 and jwks_kids()[0] == kid_a
    # New key moves to the top: it signs, the old one is still published.
    reload([b, a], lambda: jwks_kids()[0] != kid_a)
    new = mint()
    assert jwt.get_unverified_header(new)["kid"] != kid_a
    assert verifier(issuer)(old)["sub"] == "carol"
    # A bad key is refused on reload; the previous keys keep serving.
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    reload([bad, a], lambda: "wristband.signing_keys[0]" in mg.stderr())
    assert "configuration reload rejected" in mg.stderr() and "AAAA" not in mg.stderr()
    assert jwt.get_unverified_header(mint())["kid"] == jwt.get_unverified_header(new)["kid"]
    # The old key removed (after the max ttl): its tokens no longer verify.
    reload([b], lambda: len(jwks_kids()) == 1)
    with pytest.raises(jwt.PyJWKClientError):
        verifier(issuer)(old)
    assert verifier(issuer)(new)["sub"] == "carol"


def test_bad_wristband_config_stops_start(tmp_path, run_modelgate):
    cfg = tmp_path / "c.yaml"
    bad = tmp_path / "junk.pem"
    bad.write_text("junk")
    cfg.write_text(f"""listen: {{address: "127.0.0.1:0"}}
models: [{{name: a, upstream: {{url: "http://127.0.0.1:1"}}}}]
wristband: {{issuer: "https://gw.example", header: content-length, signing_keys: ["{bad}"]}}
""")
    r = run_modelgate(["validate", "--config", cfg])
    assert r.returncode == 2 and "wristband.header" in r.stderr, r.stderr
    cfg.write_text(cfg.read_text().replace("header: content-length, ", ""))
    r = run_modelgate(["validate", "--config", cfg])
    assert r.returncode != 0 and "wristband.signing_keys[0]" in r.stderr and "junk.pem" in r.stderr, r.stderr
