"""Authorization policies end to end: seed 004's Istio policy pasted as-is
(minus its selector) on an Istio-compatible listener, the Envoy reply shape,
`modelgate check` and `modelgate validate` on policies, the decision
explanation at debug level. Upstream: a real MLServer.

JWT follow-up: when `auth.jwt` lands, seed 004's "200 with a valid JWT"
should also be shown with a token from a local issuer; here an API key (a
request principal `api_key/<name>`) stands in for it."""

from __future__ import annotations

import json

import pytest
import requests

from gw import V2_BODY, bearer, create_key

SEED_004 = """
policies:
  - apiVersion: security.istio.io/v1beta1
    kind: AuthorizationPolicy
    metadata:
      name: core-v2-ingress
      namespace: istio-system
    spec:
      action: DENY
      rules:
      - from:
        - source:
            notRequestPrincipals:
            - '*'
        to:
          - operation:
              paths:
                 - /v2/*
"""


def config(keys, upstream, istio=True, policies=SEED_004, level="info"):
    return f"""
listen: {{address: "__LISTEN__", istio_compat: {str(istio).lower()}}}
admin: {{address: "__ADMIN__"}}
auth:
  api_keys: {{file: "{keys}"}}
models:
  - name: iris
    protocols: [v1, v2]
    upstream: {{url: "{upstream}"}}
log: {{level: "{level}"}}
{policies}
"""


@pytest.fixture
def keyed(tmp_path, run_modelgate):
    keys = tmp_path / "keys.json"
    return keys, create_key(run_modelgate, keys, "alice", "iris")


def test_seed_004_istio_mode(keyed, start_modelgate, mlserver_iris):
    keys, key = keyed
    mg = start_modelgate(config(keys, mlserver_iris.rest_url, level="info,modelgate_authz=debug"))
    url = f"{mg.url}/v2/models/iris/infer"
    mark = mlserver_iris.log_mark()
    r = requests.post(url, json=V2_BODY, headers={"seldon-model": "iris"}, timeout=10)
    assert r.status_code == 403
    assert r.text == "RBAC: access denied"
    assert r.headers["content-type"] == "text/plain"
    assert not mlserver_iris.saw_path("/v2/models/iris/infer", since=mark)
    r = requests.post(url, json=V2_BODY, headers={"seldon-model": "iris", **bearer(key)}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["model_name"] == "iris"
    mlserver_iris.wait_for_log("/v2/models/iris/infer", since=mark)
    # A bad credential is still a 401 (Envoy's jwt_authn would say so too).
    r = requests.post(url, json=V2_BODY, headers=bearer("mgk_nope"), timeout=10)
    assert r.status_code == 401
    # Outside /v2/*, an anonymous request is not Istio's silent allow: it fails closed.
    r = requests.post(f"{mg.url}/v1/models/iris:predict", json={"instances": [[1, 2, 3, 4]]}, timeout=10)
    assert r.status_code == 401
    # The decision log says why at debug level.
    assert "core-v2-ingress" in mg.stderr() and "authorization decision" in mg.stderr(), mg.stderr()[-2000:]


def test_policy_refusal_keeps_envoy_text_in_json(keyed, start_modelgate, mlserver_iris):
    keys, key = keyed
    deny = "policies:\n  - {name: no-infer, action: DENY, rules: [{to: [{operation: {operations: [infer]}}]}]}\n"
    mg = start_modelgate(config(keys, mlserver_iris.rest_url, istio=False, policies=deny))
    r = requests.post(f"{mg.url}/v2/models/iris/infer", json=V2_BODY, headers=bearer(key), timeout=10)
    assert r.status_code == 403
    assert r.json() == {"error": "RBAC: access denied"}
    r = requests.post(f"{mg.url}/v2/models/iris/infer", json=V2_BODY, timeout=10)
    assert r.status_code == 401  # not Istio mode: no credential is a 401
    assert requests.get(f"{mg.url}/v2/models/iris", headers=bearer(key), timeout=10).status_code == 200


def test_check_command(tmp_path, keyed, run_modelgate, mlserver_iris):
    keys, key = keyed
    cfg = tmp_path / "mg.yaml"
    cfg.write_text(config(keys, mlserver_iris.rest_url).replace("__LISTEN__", "127.0.0.1:1").replace("__ADMIN__", "127.0.0.1:2"))
    base = ["check", "--config", str(cfg), "--method", "POST", "--path", "/v2/models/iris/infer"]
    r = run_modelgate(base)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "decision: DENY (403 RBAC: access denied)" in r.stdout
    assert "DENY core-v2-ingress matched by rule 0" in r.stdout
    r = run_modelgate(base + ["--key", key])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "identity: api_key alice (verified)" in r.stdout
    assert "rule 0: policies[0].spec.rules[0].from[0].source.notRequestPrincipals" in r.stdout, r.stdout
    r = run_modelgate(base + ["--identity", "alice"])
    assert r.returncode == 0, r.stdout
    r = run_modelgate(["check", "--config", str(cfg), "--method", "POST", "--path", "/v2/models/iris%2Finfer", "--identity", "alice"])
    assert r.returncode == 1 and "400" in r.stdout
    r = run_modelgate(base + ["--header", "no-colon"])
    assert r.returncode == 2
    r = run_modelgate(base + ["--claims", json.dumps({"iss": "https://idp", "sub": "bob"})])
    assert r.returncode == 1 and "not permitted to call model iris" in r.stdout, r.stdout


def test_validate_names_policy_errors(tmp_path, keyed, run_modelgate, mlserver_iris):
    keys, _ = keyed
    cfg = tmp_path / "mg.yaml"
    bad = SEED_004.replace("      action: DENY", "      selector: {matchLabels: {app: istio-ingressgateway}}\n      action: DENY")
    bad += "  - {name: typo, rules: [{to: [{operation: {path: [/x]}}]}]}\n"
    cfg.write_text(config(keys, mlserver_iris.rest_url, policies=bad).replace("__LISTEN__", "127.0.0.1:1").replace("__ADMIN__", "127.0.0.1:2"))
    r = run_modelgate(["validate", "--config", str(cfg)])
    assert r.returncode == 2
    assert "policies[0].spec.selector" in r.stderr, r.stderr
    assert "policies[1].rules[0].to[0].operation" in r.stderr and "did you mean `paths`" in r.stderr, r.stderr
