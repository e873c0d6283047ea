"""Seed 004 (Seldon with Istio RequestAuthentication + DENY
AuthorizationPolicy), replayed through modelgate with the configuration
`modelgate import` makes from the seed's two YAML blocks (verbatim: pasted
indentation and `<OIDC_TOKEN_ISSUER>` placeholders, which become ${ENV}),
in front of a real MLServer serving iris (Seldon Core v2 runs MLServer)."""

from __future__ import annotations

import pytest
import requests

from seed_import import import_config, serve_imported

FILES = ["seeds/004-requestauthentication.yaml", "seeds/004-authorizationpolicy.yaml"]
BODY = '{"inputs": [{"name": "predict", "shape": [1, 4], "datatype": "FP32", "data": [[1, 2, 3, 4]]}]}'


@pytest.fixture
def gate(run_modelgate, start_modelgate, start_oidc, mlserver_iris, tmp_path):
    idp = start_oidc()
    config, report = import_config(run_modelgate, FILES, "--upstream", f"iris={mlserver_iris.rest_url}")
    assert "placeholder <OIDC_TOKEN_ISSUER> written as ${OIDC_TOKEN_ISSUER}" in report
    env = {"OIDC_TOKEN_ISSUER": idp.issuer, "OIDC_TOKEN_ISSUER_JWKS": f"{idp.issuer}/jwks"}
    return idp, serve_imported(run_modelgate, start_modelgate, tmp_path, config, env)


def test_without_token_403_rbac_access_denied(gate):
    _, mg = gate
    r = requests.post(f"{mg.url}/v2/models/iris/infer", data=BODY, timeout=20,
                      headers={"Content-Type": "application/json", "seldon-model": "iris"})
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text == "RBAC: access denied"
    assert r.headers["content-length"] == "19"


def test_with_access_token_200(gate):
    idp, mg = gate
    token = idp.token("urn:modelgate:rs256")
    r = requests.post(f"{mg.url}/v2/models/iris/infer", data=BODY, timeout=20,
                      headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}", "seldon-model": "iris"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == "iris"
    assert body["outputs"][0]["shape"][0] == 1


def test_seldon_model_header_must_agree(gate):
    idp, mg = gate
    token = idp.token("urn:modelgate:rs256")
    r = requests.post(f"{mg.url}/v2/models/iris/infer", data=BODY, timeout=20,
                      headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}", "seldon-model": "other"})
    assert r.status_code in (400, 404), r.text


@pytest.mark.parametrize("token", ["not-a-jwt", None])
def test_bad_or_missing_token_never_reaches_mlserver(gate, token):
    _, mg = gate
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    r = requests.post(f"{mg.url}/v2/models/iris/infer", data=BODY, headers=headers, timeout=20)
    assert r.status_code in (401, 403)
