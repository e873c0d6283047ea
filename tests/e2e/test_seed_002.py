"""Seed 002 (Kubeflow: VirtualService /kfserving/<ns>/<model> with rewrite and
Host, RequestAuthentication `m2m-token-issuer` for ServiceAccount JWTs, `sub`
→ kubeflow-userid), replayed through modelgate with the configuration
`modelgate import` makes from the seed's three heredocs (verbatim, with the
seed's shell variables passed as --var), in front of a real KServe server.
The cluster JWKS proxy is stood in for by the OIDC test provider's JWKS
(--jwks-uri), which serves the key the test signs ServiceAccount tokens with."""

from __future__ import annotations

import json

import pytest
import requests

import peers
from peers import IRIS_ROWS
from seed_import import SA_ISSUER, import_config, seed_vars, serve_imported, service_account_token

MODEL = "inf-sklearn-iris-model"
NS = "kubeflow-test-test-com"
PATH = f"/kfserving/{NS}/{MODEL}"
FILES = ["seeds/002-inferenceservice.yaml", "seeds/002-virtualservice.yaml", "seeds/002-requestauthentication.yaml"]
INPUT = dict(instances=[[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]])


@pytest.fixture(scope="module")
def kserve_seed_model(tmp_path_factory, iris_model_dir):
    try:
        srv = peers.start_kserve(tmp_path_factory.mktemp("kserve-002"), iris_model_dir, model_name=MODEL, enable_grpc=False)
    except peers.PeerError as e:
        pytest.fail(str(e), pytrace=False)
    yield srv
    srv.stop()


@pytest.fixture
def gate(run_modelgate, start_modelgate, start_oidc, kserve_seed_model, tmp_path):
    idp = start_oidc()
    config, report = import_config(
        run_modelgate, FILES, *seed_vars("002-inferenceservice.vars", "002-virtualservice.vars"),
        "--upstream", f"{MODEL}={kserve_seed_model.rest_url}", "--jwks-uri", f"{SA_ISSUER}={idp.issuer}/jwks")
    assert "spec.gateways — modelgate is the gateway" in report
    assert "shell variable" not in report
    return idp, serve_imported(run_modelgate, start_modelgate, tmp_path, config)


def test_without_token_is_refused(gate):
    _, mg = gate
    # The seed's first call (no token) got Dex's sign-in page; modelgate answers 401.
    r = requests.post(mg.url + PATH, data=json.dumps(INPUT), timeout=20)
    assert r.status_code == 401
    assert r.headers["x-ext-auth-reason"] == "credential not found"


def test_service_account_token_notebook_and_curl(gate):
    idp, mg = gate
    token = service_account_token(idp, NS, "default-editor", "istio-ingressgateway.istio-system.svc.cluster.local")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    # The notebook: requests.post(url, headers=headers, data=json.dumps(input)).
    r = requests.post(mg.url + PATH, headers=headers, data=json.dumps(INPUT), timeout=20)
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [1, 1]}
    # The curl: --data-raw with the seed's own formatting.
    raw = '{\n    "instances": [\n        [6.8, 2.8, 4.8, 1.4],\n        [6.0, 3.4, 4.5, 1.6]\n    ]\n}'
    r = requests.post(mg.url + PATH, headers=headers, data=raw, timeout=20)
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == [1, 1]
    assert INPUT["instances"] == IRIS_ROWS


def test_forged_service_account_token_is_refused(gate):
    idp, mg = gate
    token = service_account_token(idp, NS, "default-editor", "x")
    head, payload, sig = token.split(".")
    forged = ".".join([head, payload, sig[:-4] + ("AAAA" if not sig.endswith("AAAA") else "BBBB")])
    r = requests.post(mg.url + PATH, headers={"Authorization": f"Bearer {forged}"}, data=json.dumps(INPUT), timeout=20)
    assert r.status_code == 401


def test_kubeflow_userid_reaches_the_model_and_cannot_be_forged(run_modelgate, start_modelgate, start_oidc,
                                                                  start_nginx, tmp_path):
    # An nginx upstream that answers like the model and echoes what it received.
    echo = start_nginx("""
server {
  listen 127.0.0.1:__PORT__;
  location / {
    default_type application/json;
    add_header x-seen-userid "$http_kubeflow_userid" always;
    add_header x-seen-host "$host" always;
    add_header x-seen-uri "$request_uri" always;
    return 200 '{"predictions":[1,1]}';
  }
}
""")
    idp = start_oidc()
    config, _ = import_config(
        run_modelgate, FILES, *seed_vars("002-inferenceservice.vars", "002-virtualservice.vars"),
        "--upstream", f"{MODEL}={echo.url}", "--jwks-uri", f"{SA_ISSUER}={idp.issuer}/jwks")
    mg = serve_imported(run_modelgate, start_modelgate, tmp_path, config)
    token = service_account_token(idp, NS, "default-editor", "istio-ingressgateway.istio-system.svc.cluster.local")
    r = requests.post(mg.url + PATH, data=json.dumps(INPUT), timeout=20,
                      headers={"Authorization": f"Bearer {token}", "kubeflow-userid": "admin@example.com"})
    assert r.status_code == 200, r.text
    assert r.headers["x-seen-userid"] == f"system:serviceaccount:{NS}:default-editor"
    assert r.headers["x-seen-host"] == f"{MODEL}.{NS}.svc.cluster.local"
    assert r.headers["x-seen-uri"] == f"/v1/models/{MODEL}:predict"
