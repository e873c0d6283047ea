"""Identity beyond API keys, end to end (issue 5).

Real parts: the modelgate binary, MLServer serving iris, the real OpenID
provider (panva/oidc-provider on 127.0.0.1, tokens obtained by real
client_credentials grants with resource indicators), real TLS client
certificates made here with `cryptography`. The one stand-in is the
Kubernetes API server: no kube-apiserver can run on this machine, so
TokenReview is checked against tests/e2e/kube_stub.py, which implements that
one endpoint (and says so).
"""

from __future__ import annotations

import base64
import datetime
import json
import ssl
import time

import jwt as pyjwt
import pytest
import requests

from peers import IRIS_ROWS

V2_BODY = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": IRIS_ROWS}]}
SA_TOKEN = "sa-token-team-a-scorer"
GATEWAY_TOKEN = "modelgate-own-token"
# Tokens carry no model grants: a policy lets any verified identity call iris.
POLICIES = """
policies:
  - name: any-verified-identity
    rules:
      - from: [{source: {requestPrincipals: ["*"]}}]
      - from: [{source: {principals: ["*"]}}]
"""


def config(idp, mlserver, extra_auth: str = "", listen_extra: str = "", clock_skew: str = "0s") -> str:
    return f"""
listen:
  address: __LISTEN__
{listen_extra}
admin: {{address: __ADMIN__}}
models:
  - name: iris
    upstream: {{url: "{mlserver.rest_url}"}}
auth:
  realm: modelgate-test
  jwt:
    - issuer: {idp.issuer}
      audiences: [models]
      clock_skew: {clock_skew}
      output_claim_to_headers: [{{header: kubeflow-userid, claim: sub}}]
{extra_auth}
{POLICIES}
"""


def infer(mg, token: str | None = None, *, params: dict | None = None, headers: dict | None = None):
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    return requests.post(f"{mg.url}/v2/models/iris/infer", json=V2_BODY, headers=h, params=params, timeout=20)


def refused(r, status: int, message: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.json()["error"] == message, r.text
    if status == 401:
        assert r.headers["www-authenticate"] == 'Bearer realm="modelgate-test", error="invalid_token"'


def forged(idp, claims: dict, alg: str = "RS256", header: dict | None = None) -> str:
    """A token signed with the provider's own private key: only its claims
    are wrong (the provider would never issue it)."""
    kid, key = idp.keys[alg]
    return pyjwt.encode(claims, key, algorithm=alg, headers={"kid": kid, **(header or {})})


def b64(d: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()


@pytest.fixture
def idp(start_oidc):
    return start_oidc()


@pytest.fixture
def gate(idp, mlserver_iris, start_modelgate, start_kube_stub):
    stub = start_kube_stub(
        {SA_TOKEN: {"username": "system:serviceaccount:team-a:scorer", "groups": ["system:serviceaccounts"], "audiences": ["models"]}},
        GATEWAY_TOKEN,
    )
    token_file = stub.log_path.parent / "gateway-token"
    token_file.write_text(GATEWAY_TOKEN)
    extra = f"""
  kubernetes:
    token_review:
      api_server: {stub.url}
      token_file: {token_file}
      audiences: [models]
  introspection:
    endpoint: {idp.issuer}/token/introspection
    client_id: modelgate
    client_secret: introspect-secret
  order: [jwt, introspection, kubernetes]
"""
    return start_modelgate(config(idp, mlserver_iris, extra))


def test_valid_rs256_and_es256_tokens(idp, gate):
    for resource in ("urn:modelgate:rs256", "urn:modelgate:es256"):
        mark = gate.log_mark()
        token = idp.token(resource)
        r = infer(gate, token)
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["data"] == [1, 1]
        d = gate.wait_decisions(1, since=mark)[-1]
        assert (d["auth_method"], d["issuer"], d["identity"]) == ("jwt", idp.issuer, "modelgate-test")
        assert token not in gate.log() and token.split(".")[2] not in gate.stderr()


def test_time_issuer_audience_and_signature_failures(idp, mlserver_iris, start_modelgate):
    # JWT rules only: with introspection or TokenReview configured they would
    # take the tokens no JWT rule takes (see docs/identity.md).
    gate = start_modelgate(config(idp, mlserver_iris))
    now = int(time.time())
    base = {"iss": idp.issuer, "sub": "alice", "aud": "models", "iat": now, "exp": now + 300}
    short = idp.token("urn:modelgate:short")
    time.sleep(2.2)
    refused(infer(gate, short), 401, "Jwt is expired")
    refused(infer(gate, forged(idp, {**base, "nbf": now + 3600})), 401, "Jwt not yet valid")
    refused(infer(gate, forged(idp, {**base, "iss": "http://127.0.0.1:1/evil"})), 401, "Jwt issuer is not configured")
    refused(infer(gate, idp.token("urn:modelgate:other")), 403, "Audiences in Jwt are not allowed")
    good = idp.token("urn:modelgate:rs256")
    h, p, s = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "=="))
    claims["sub"] = "admin"
    refused(infer(gate, f"{h}.{b64(claims)}.{s}"), 401, "Jwt verification fails")
    refused(infer(gate, f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(base)}."), 401, "Jwt header [alg] is not supported")
    # Alg confusion: HS256 keyed with the provider's RSA public key (PEM).
    from cryptography.hazmat.primitives import serialization

    pem = idp.keys["RS256"][1].public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    import hashlib
    import hmac

    signing_input = f"{b64({'alg': 'HS256', 'kid': idp.keys['RS256'][0]})}.{b64(base)}"
    mac = base64.urlsafe_b64encode(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    refused(infer(gate, f"{signing_input}.{mac}"), 401, "Jwks doesn't have key to match kid or alg from Jwt")
    refused(infer(gate, "abc.def.ghi"), 401, "Jwt header is an invalid JSON")
    refused(infer(gate, "!!!!.????.****"), 401, "Jwt header is an invalid Base64url encoded")
    # No credential: 401 without error="invalid_token".
    r = infer(gate)
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="modelgate-test"'


def test_token_in_header_query_and_oversized(idp, gate, mlserver_iris):
    token = idp.token("urn:modelgate:rs256")
    mark = mlserver_iris.log_mark()
    assert infer(gate, params={"access_token": token, "x": "1"}).status_code == 200
    assert infer(gate, token, params={"access_token": token}).status_code == 200
    # The token never reaches the upstream (its access log shows the query).
    mlserver_iris.wait_for_log("/v2/models/iris/infer", since=mark)
    assert token[:40] not in mlserver_iris.log(mark)
    other = idp.token("urn:modelgate:es256")
    refused(infer(gate, token, params={"access_token": other}), 401, "Found multiple Jwt tokens")
    big = "e" * (64 * 1024)
    r = infer(gate, big)
    assert r.status_code in (401, 431), r.status_code
    assert infer(gate, token).status_code == 200, "still serving after the oversized token"


def test_introspection_of_opaque_tokens(idp, gate):
    active = idp.token("urn:modelgate:opaque")
    mark = gate.log_mark()
    r = infer(gate, active)
    assert r.status_code == 200, r.text
    d = gate.wait_decisions(1, since=mark)[-1]
    assert (d["auth_method"], d["identity"]) == ("introspection", "modelgate-test")
    revoked = idp.token("urn:modelgate:opaque")
    idp.revoke(revoked)
    refused(infer(gate, revoked), 401, "Token is not active")
    refused(infer(gate, "totally-unknown-opaque-token"), 401, "Token is not active")


def test_kubernetes_tokenreview_against_the_stand_in(start_oidc, mlserver_iris, start_modelgate, start_kube_stub, tmp_path):
    # No kube-apiserver can run here: kube_stub.py stands in for its TokenReview endpoint.
    stub = start_kube_stub(
        {SA_TOKEN: {"username": "system:serviceaccount:team-a:scorer", "groups": ["system:serviceaccounts"], "audiences": ["models"]},
         "wrong-audience-token": {"username": "system:serviceaccount:team-b:x", "audiences": ["other"]}},
        GATEWAY_TOKEN,
    )
    (tmp_path / "gw-token").write_text(GATEWAY_TOKEN)
    cfg = f"""
listen: {{address: __LISTEN__}}
admin: {{address: __ADMIN__}}
models: [{{name: iris, upstream: {{url: "{mlserver_iris.rest_url}"}}}}]
auth:
  realm: modelgate-test
  kubernetes:
    token_review: {{api_server: "{stub.url}", token_file: "{tmp_path / 'gw-token'}", audiences: [models], cache_ttl: 30s}}
{POLICIES}
"""
    mg = start_modelgate(cfg)
    mark = mg.log_mark()
    assert infer(mg, SA_TOKEN).status_code == 200
    d = mg.wait_decisions(1, since=mark)[-1]
    assert (d["auth_method"], d["identity"]) == ("kubernetes_token_review", "system:serviceaccount:team-a:scorer")
    refused(infer(mg, "not-a-service-account-token"), 401, "Token is not authenticated")
    refused(infer(mg, "wrong-audience-token"), 401, "Token is not authenticated")
    # Cached: the stand-in saw one review for the good token.
    assert infer(mg, SA_TOKEN).status_code == 200
    assert stub.log().count("POST /apis/authentication.k8s.io/v1/tokenreviews") == 3


def test_key_rotation_refetches_unknown_kid(start_oidc, mlserver_iris, start_modelgate):
    idp = start_oidc()
    mg = start_modelgate(config(idp, mlserver_iris))
    old = idp.token("urn:modelgate:rs256")
    assert infer(mg, old).status_code == 200
    port = idp.port
    idp.stop()
    rotated = start_oidc(port=port, generation=2)
    new = rotated.token("urn:modelgate:rs256")
    assert json.loads(base64.urlsafe_b64decode(new.split(".")[0] + "=="))["kid"] == "rsa-2"
    r = infer(mg, new)
    assert r.status_code == 200, r.text
    # The rotated set no longer has rsa-1: the old token is refused.
    refused(infer(mg, old), 401, "Jwks doesn't have key to match kid or alg from Jwt")


def test_idp_down_warm_cache_accepts_cold_cache_fails_closed(start_oidc, mlserver_iris, start_modelgate):
    idp = start_oidc()
    warm = start_modelgate(config(idp, mlserver_iris))
    token = idp.token("urn:modelgate:es256")
    assert infer(warm, token).status_code == 200
    idp.stop()
    assert infer(warm, token).status_code == 200, "cached keys keep serving while the IdP is down"
    cold = start_modelgate(config(idp, mlserver_iris))
    refused(infer(cold, token), 401, "Jwks remote fetch is failed")
    metrics = requests.get(f"{cold.admin_url}/metrics", timeout=5).text
    assert 'modelgate_jwks_keys{provider="' + idp.issuer + '"} 0' in metrics


# --- mTLS ---------------------------------------------------------------------
def _certs(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def ca(cn):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn)).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        return key, cert

    def leaf(issuer, cn, sans, server, before, after):
        ikey, icert = issuer
        key = ec.generate_private_key(ec.SECP256R1())
        usage = x509.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.ExtendedKeyUsageOID.CLIENT_AUTH
        cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(icert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(before).not_valid_after(after)
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(ikey, hashes.SHA256()))
        return key, cert

    def write(stem, pair):
        key, cert = pair
        (tmp_path / f"{stem}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        (tmp_path / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return tmp_path / f"{stem}.crt", tmp_path / f"{stem}.key"

    good_ca, rogue_ca = ca("modelgate test CA"), ca("rogue CA")
    day = datetime.timedelta(days=1)
    spiffe = x509.UniformResourceIdentifier("spiffe://cluster.local/ns/team-a/sa/scorer")
    out = {
        "ca": write("ca", good_ca),
        "server": write("server", leaf(good_ca, "localhost", [x509.DNSName("localhost"), x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))], True, now - day, now + day)),
        "good": write("good", leaf(good_ca, "scorer", [spiffe], False, now - day, now + day)),
        "expired": write("expired", leaf(good_ca, "scorer", [spiffe], False, now - 3 * day, now - 2 * day)),
        "rogue": write("rogue", leaf(rogue_ca, "scorer", [spiffe], False, now - day, now + day)),
    }
    return out


def test_mtls_identities(tmp_path, idp, mlserver_iris, start_modelgate):
    c = _certs(tmp_path)
    listen = f"""  tls:
    cert: {c['server'][0]}
    key: {c['server'][1]}
    client_ca: {c['ca'][0]}
    require_client_cert: false"""
    mg = start_modelgate(config(idp, mlserver_iris, "  mtls: {identity_from: [uri, dns, cn]}\n", listen_extra=listen))
    url = f"https://{mg.listen}/v2/models/iris/infer"
    ca = str(c["ca"][0])
    mark = mg.log_mark()
    r = requests.post(url, json=V2_BODY, cert=tuple(map(str, c["good"])), verify=ca, timeout=20)
    assert r.status_code == 200, r.text
    d = mg.wait_decisions(1, since=mark)[-1]
    assert (d["auth_method"], d["identity"]) == ("mtls", "cluster.local/ns/team-a/sa/scorer")
    for bad in ("expired", "rogue"):
        with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError, ssl.SSLError)):
            requests.post(url, json=V2_BODY, cert=tuple(map(str, c[bad])), verify=ca, timeout=20)
    # No certificate at all (allowed on this listener): no identity.
    r = requests.post(url, json=V2_BODY, verify=ca, timeout=20)
    assert r.status_code == 401
    # A bad token next to a good certificate is refused: jwt is earlier in the order.
    r = requests.post(url, json=V2_BODY, cert=tuple(map(str, c["good"])), verify=ca, timeout=20, headers={"Authorization": "Bearer x.y.z"})
    assert r.status_code == 401


# --- mTLS: only a SPIFFE URI SAN is a peer principal (issue 9 item 7) -----------
def _spoof_certs(tmp_path):
    """The CA and server of _certs, plus client certificates whose CN and DNS
    SAN read `cluster.local/ns/prod/sa/admin` (no URI SAN), and a real SPIFFE one."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    out = _certs(tmp_path)
    ca_key = serialization.load_pem_private_key(out["ca"][1].read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(out["ca"][0].read_bytes())
    now = datetime.datetime.now(datetime.timezone.utc)
    admin = "cluster.local/ns/prod/sa/admin"

    def client(stem, cn, sans):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(ca_key, hashes.SHA256()))
        (tmp_path / f"{stem}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        (tmp_path / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return str(tmp_path / f"{stem}.crt"), str(tmp_path / f"{stem}.key")

    out["cn_spoof"] = client("cn_spoof", admin, [x509.DNSName("spoof.example")])
    out["dns_spoof"] = client("dns_spoof", admin, [x509.DNSName(admin)])
    out["uri_spoof"] = client("uri_spoof", admin, [x509.UniformResourceIdentifier(f"https://{admin}")])
    out["admin"] = client("admin", "admin", [x509.UniformResourceIdentifier(f"spiffe://{admin}")])
    return out


@pytest.mark.parametrize("field", ["principals", "namespaces", "serviceAccounts"])
def test_mtls_cn_or_dns_never_becomes_a_spiffe_identity(tmp_path, mlserver_iris, start_modelgate, field):
    c = _spoof_certs(tmp_path)
    value = {"principals": '"cluster.local/ns/prod/sa/admin"', "namespaces": "prod", "serviceAccounts": "prod/admin"}[field]
    mg = start_modelgate(f"""
listen:
  address: __LISTEN__
  tls:
    cert: {c['server'][0]}
    key: {c['server'][1]}
    client_ca: {c['ca'][0]}
    require_client_cert: true
admin: {{address: __ADMIN__}}
models:
  - name: iris
    upstream: {{url: "{mlserver_iris.rest_url}"}}
auth:
  mtls: {{identity_from: [cn, dns, uri]}}
policies:
  - name: prod-admin-only
    rules:
      - from: [{{source: {{{field}: [{value}]}}}}]
""")
    url = f"https://{mg.listen}/v2/models/iris/infer"
    ca = str(c["ca"][0])
    # The real SPIFFE identity is allowed…
    r = requests.post(url, json=V2_BODY, cert=c["admin"], verify=ca, timeout=20)
    assert r.status_code == 200, r.text
    # …a CN, a DNS SAN or a non-SPIFFE URI SAN spelling the same is not.
    for spoof in ("cn_spoof", "dns_spoof", "uri_spoof"):
        mark = mg.log_mark()
        r = requests.post(url, json=V2_BODY, cert=c[spoof], verify=ca, timeout=20)
        assert r.status_code == 403, (spoof, r.status_code, r.text)
        d = mg.wait_decisions(1, since=mark)[-1]
        assert d["auth_method"] == "mtls", d


# --- JWT `crit` (RFC 7515 §4.1.11; issue 9 item 9) ------------------------------
def test_jwt_with_crit_header_is_refused(idp, mlserver_iris, start_modelgate):
    gate = start_modelgate(config(idp, mlserver_iris))
    now = int(time.time())
    claims = {"iss": idp.issuer, "sub": "alice", "aud": "models", "iat": now, "exp": now + 300}
    # Signed by the provider's own key: only the header differs.
    assert infer(gate, forged(idp, claims)).status_code == 200
    crit = "Jwt header [crit] names an extension that is not understood"
    for header in ({"crit": ["http://example.com/must-check"], "http://example.com/must-check": True},
                   {"crit": ["b64"], "b64": True}, {"crit": []}, {"crit": "exp"}, {"crit": ["alg"]}):
        refused(infer(gate, forged(idp, claims, header=header)), 401, crit)
