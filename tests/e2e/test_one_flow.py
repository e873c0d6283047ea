"""One decision function (issue 10): `modelgate check` and the running
server decide the same table of requests the same way — outcome, status,
the rule that decided (`basis`, `policy`), dry-run and AUDIT policies.

Real parts: the modelgate binary (serving, and `check` as a subprocess),
MLServer serving iris, the real OpenID provider (its keys sign the tokens;
its JWKS verifies them for both the JWT rule and the ServiceAccount rule),
real TLS client certificates. The decisions of the server are read from its
JSON decision log, matched by request id.
"""

from __future__ import annotations

import json
import time

import jwt as pyjwt
import pytest
import requests

from gw import V2_BODY, create_key
from test_identity import _certs

SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


def forged(idp, claims: dict) -> str:
    kid, key = idp.keys["RS256"]
    return pyjwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def config(keys, idp, jwks_uri, mlserver, certs) -> str:
    return f"""
listen:
  - address: "__LISTEN__"
  - address: "__LISTEN2__"
    istio_compat: true
  - address: "__LISTEN3__"
    tls:
      cert: "{certs['server'][0]}"
      key: "{certs['server'][1]}"
      client_ca: "{certs['ca'][0]}"
      require_client_cert: false
admin: {{address: "__ADMIN__"}}
auth:
  api_keys: {{file: "{keys}"}}
  public_paths: ["/v2/health/live"]
  jwt:
    - issuer: {idp.issuer}
      audiences: [models]
  kubernetes:
    service_account_tokens:
      issuer: {SA_ISSUER}
      jwks_uri: {jwks_uri}
      audiences: [models]
  mtls: {{identity_from: [uri]}}
models:
  - name: iris
    protocols: [v1, v2]
    upstream: {{url: "{mlserver.rest_url}"}}
  - name: secret
    protocols: [v2]
    upstream: {{url: "{mlserver.rest_url}"}}
policies:
  - name: block-bob
    action: DENY
    rules: [{{from: [{{source: {{requestPrincipals: ["{idp.issuer}/bob"]}}}}]}}]
  - name: would-block-carol
    action: DENY
    dry_run: true
    rules: [{{from: [{{source: {{requestPrincipals: ["{idp.issuer}/carol"]}}}}]}}]
  - name: watch-iris-infer
    action: AUDIT
    rules: [{{to: [{{operation: {{paths: ["/v2/models/iris/infer"]}}}}]}}]
  - name: secret-readers
    action: ALLOW
    models: [secret]
    rules:
      - from: [{{source: {{namespaces: ["team-a"]}}}}]
      - from: [{{source: {{requestPrincipals: ["{idp.issuer}/alice"]}}}}]
"""


def tokens(idp) -> dict:
    now = int(time.time())
    user = lambda sub, **kw: forged(idp, {"iss": idp.issuer, "sub": sub, "aud": "models", "exp": now + 600, **kw})
    sa = lambda ns: forged(idp, {"iss": SA_ISSUER, "sub": f"system:serviceaccount:{ns}:scorer", "aud": ["models"],
                                 "exp": now + 600, "kubernetes.io": {"namespace": ns}})
    return {
        "jwt-alice": user("alice"),
        "jwt-bob": user("bob"),
        "jwt-carol": user("carol"),
        "jwt-wrong-aud": forged(idp, {"iss": idp.issuer, "sub": "alice", "aud": "other", "exp": now + 600}),
        "jwt-expired": forged(idp, {"iss": idp.issuer, "sub": "alice", "aud": "models", "exp": now - 600}),
        "sa-team-a": sa("team-a"),
        "sa-team-b": sa("team-b"),
    }


TARGETS = [
    ("POST", "/v2/models/iris/infer"),
    ("POST", "/v2/models/secret/infer"),
    ("GET", "/v2/health/ready"),
    ("GET", "/v2/health/live"),
]


def cases(creds: dict) -> list[dict]:
    out = []
    # Listener 0: every credential against every target.
    for who in ["anonymous", "key-alice", "key-admin", "key-bad", "jwt-alice", "jwt-bob", "jwt-carol",
                "jwt-wrong-aud", "jwt-expired", "sa-team-a", "sa-team-b"]:
        for method, path in TARGETS:
            out.append({"listener": 0, "who": who, "method": method, "path": path})
    # Listener 1 (istio_compat): anonymous requests go on to the policies.
    for who in ["anonymous", "key-alice", "jwt-carol"]:
        for method, path in TARGETS:
            out.append({"listener": 1, "who": who, "method": method, "path": path})
    # Listener 2: mTLS (SPIFFE identity, namespace team-a) or no certificate.
    for who in ["mtls-team-a", "anonymous"]:
        for method, path in TARGETS[:3]:
            out.append({"listener": 2, "who": who, "method": method, "path": path})
    return out


def check_decision(run_modelgate, cfg, case, creds, spiffe) -> dict:
    args = ["check", "--config", str(cfg), "--method", case["method"], "--path", case["path"],
            "--listener", str(case["listener"])]
    who = case["who"]
    if who in creds:
        args += ["--header", f"authorization: Bearer {creds[who]}"]
    if who.startswith("mtls"):
        args += ["--peer-uri", spiffe]
    args += case.get("check_args", [])
    r = run_modelgate(args)
    assert r.returncode in (0, 1), (case, r.stdout, r.stderr)
    return parse_check(r.stdout, r.returncode)


def parse_check(stdout: str, code: int) -> dict:
    d = {"allow": code == 0, "status": None, "basis": None, "policy": None, "dry_run": [], "audit": []}
    for line in stdout.splitlines():
        if line.startswith("basis: "):
            d["basis"] = line.split(": ", 1)[1]
        elif line.startswith("policy: "):
            action, name = line.split(": ", 1)[1].split(" ", 1)
            d["policy"] = {"action": action, "name": name}
        elif line.startswith("dry-run: "):
            action, name, _, would = line.split(": ", 1)[1].split(" ")
            d["dry_run"].append({"action": action, "name": name, "would": would})
        elif line.startswith("audit: "):
            action, name, _ = line.split(": ", 1)[1].split(" ")
            d["audit"].append({"action": action, "name": name})
        elif line.startswith("decision: DENY ("):
            d["status"] = int(line.split("(", 1)[1].split(" ", 1)[0])
    return d


def from_log(rec: dict) -> dict:
    allow = rec["decision"] == "allow"
    return {
        "allow": allow,
        "status": None if allow else rec["status"],
        "basis": rec.get("basis"),
        "policy": rec.get("policy"),
        "dry_run": rec.get("dry_run", []),
        "audit": [{"action": a["action"], "name": a["name"]} for a in rec.get("audit", [])],
    }


def serve_request(mg, urls, case, creds, certs, rid):
    headers = {"x-request-id": rid}
    if case["who"] in creds:
        headers["Authorization"] = f"Bearer {creds[case['who']]}"
    kw = {"headers": headers, "timeout": 20}
    if case["method"] == "POST":
        kw["json"] = V2_BODY
    if case["listener"] == 2:
        kw["verify"] = str(certs["ca"][0])
        if case["who"].startswith("mtls"):
            kw["cert"] = tuple(map(str, certs["good"]))
    requests.request(case["method"], urls[case["listener"]] + case["path"], **kw)


@pytest.fixture
def world(tmp_path, run_modelgate, start_oidc, start_modelgate, mlserver_iris):
    idp = start_oidc()
    jwks_uri = requests.get(f"{idp.issuer}/.well-known/openid-configuration", timeout=10).json()["jwks_uri"]
    certs = _certs(tmp_path)
    keys = tmp_path / "keys.json"
    creds = {
        "key-alice": create_key(run_modelgate, keys, "alice", "iris"),
        "key-admin": create_key(run_modelgate, keys, "admin", "*"),
        "key-bad": "mgk_nope",
        **tokens(idp),
    }
    text = config(keys, idp, jwks_uri, mlserver_iris, certs)
    mg = start_modelgate(text)
    cfg = tmp_path / "check.yaml"
    cfg.write_text(mg.config_path.read_text())
    addrs = [line.split('"')[1] for line in mg.config_path.read_text().splitlines() if "address:" in line and '"' in line]
    urls = [f"http://{addrs[0]}", f"http://{addrs[1]}", f"https://localhost:{addrs[2].rsplit(':', 1)[1]}"]
    return idp, mg, cfg, creds, certs, urls


def test_check_and_serve_agree(world, run_modelgate):
    idp, mg, cfg, creds, certs, urls = world
    spiffe = "spiffe://cluster.local/ns/team-a/sa/scorer"
    table = cases(creds)
    # Assumed identities must decide as the verified ones they describe.
    now = int(time.time())
    assumed = [
        ("jwt-alice", ["--claims", json.dumps({"iss": idp.issuer, "sub": "alice", "aud": "models", "exp": now + 600})]),
        ("sa-team-a", ["--claims", json.dumps({"iss": SA_ISSUER, "sub": "system:serviceaccount:team-a:scorer",
                                                "aud": ["models"], "kubernetes.io": {"namespace": "team-a"}})]),
        ("key-alice", ["--identity", "alice"]),
        ("key-admin", ["--key", creds["key-admin"]]),
    ]
    for who, extra in assumed:
        for method, path in TARGETS[:3]:
            table.append({"listener": 0, "who": who, "method": method, "path": path, "check_args": extra, "assumed": True})
    assert len(table) >= 40
    mark = mg.log_mark()
    for i, case in enumerate(table):
        serve_request(mg, urls, case, creds, certs, f"oneflow-{i}")
    recs = {r["request_id"]: r for r in mg.wait_decisions(len(table), since=mark, timeout=20)}
    seen = {"basis": set(), "policy": set(), "dry_run": 0, "audit": 0, "allow": 0, "deny": 0}
    for i, case in enumerate(table):
        served = from_log(recs[f"oneflow-{i}"])
        c = case
        if case.get("assumed"):
            c = {**case, "who": "assumed"}  # no header: the identity comes from the flag
        checked = check_decision(run_modelgate, cfg, c, creds, spiffe)
        assert checked == served, (case, checked, served)
        seen["basis"].add(served["basis"])
        if served["policy"]:
            seen["policy"].add((served["policy"]["action"], served["policy"]["name"]))
        seen["dry_run"] += bool(served["dry_run"])
        seen["audit"] += bool(served["audit"])
        seen["allow" if served["allow"] else "deny"] += 1
    # The table exercises every kind of rule.
    assert {"public", "grant", "policy", "server_operation", "default"} <= seen["basis"], seen
    assert {("DENY", "block-bob"), ("ALLOW", "secret-readers")} <= seen["policy"], seen
    assert seen["dry_run"] and seen["audit"] and seen["allow"] and seen["deny"], seen


def test_decision_log_names_the_rule(world):
    idp, mg, cfg, creds, certs, urls = world
    mark = mg.log_mark()
    h = lambda who: {"Authorization": f"Bearer {creds[who]}"}
    requests.post(f"{urls[0]}/v2/models/iris/infer", json=V2_BODY, headers=h("jwt-bob"), timeout=20)
    requests.post(f"{urls[0]}/v2/models/secret/infer", json=V2_BODY, headers=h("sa-team-a"), timeout=20)
    requests.post(f"{urls[0]}/v2/models/iris/infer", json=V2_BODY, headers=h("jwt-carol"), timeout=20)
    requests.post(f"{urls[0]}/v2/models/iris/infer", json=V2_BODY, headers=h("key-alice"), timeout=20)
    bob, sa, carol, alice = mg.wait_decisions(4, since=mark)[-4:]
    assert (bob["decision"], bob["status"], bob["basis"]) == ("deny", 403, "policy")
    assert bob["policy"] == {"name": "block-bob", "action": "DENY"}
    assert (sa["decision"], sa["basis"], sa["policy"]) == ("allow", "policy", {"name": "secret-readers", "action": "ALLOW"})
    assert sa["identity"] == "system:serviceaccount:team-a:scorer"
    assert carol["dry_run"] == [{"name": "would-block-carol", "action": "DENY", "would": "deny"}]
    assert (carol["decision"], carol["basis"]) == ("deny", "grant") and "policy" not in carol
    assert (alice["decision"], alice["basis"]) == ("allow", "grant")
    assert alice["audit"] == [{"name": "watch-iris-infer", "action": "AUDIT"}]
