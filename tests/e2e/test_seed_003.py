"""Seed 003 (KServe on Kubeflow with Istio + Dex: ServiceAccount token as
Bearer, Host-based routing, V1 instances → predictions), replayed through
modelgate with the configuration `modelgate import` makes from the
sklearn.yaml the seed applies (-n kubeflow-user-example-com, Knative domain
example.com) and Kubeflow's m2m RequestAuthentication (seed 002's), in front
of a real KServe server."""

from __future__ import annotations

import pytest
import requests

from seed_import import SA_ISSUER, import_config, serve_imported, service_account_token

NS = "kubeflow-user-example-com"
HOST = f"sklearn-iris.{NS}.example.com"
IRIS_INPUT = {"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}


@pytest.fixture
def gate(run_modelgate, start_modelgate, start_oidc, kserve_iris, tmp_path):
    idp = start_oidc()
    config, _ = import_config(
        run_modelgate, ["derived/003-sklearn.yaml", "seeds/002-requestauthentication.yaml"],
        "--namespace", NS, "--domain", "example.com",
        "--upstream", f"sklearn-iris={kserve_iris.rest_url}", "--jwks-uri", f"{SA_ISSUER}={idp.issuer}/jwks")
    return idp, serve_imported(run_modelgate, start_modelgate, tmp_path, config)


def test_service_account_token_with_host_header(gate):
    idp, mg = gate
    token = service_account_token(idp, NS, "external-client", "istio-ingressgateway.istio-system.svc.cluster.local")
    headers = {"Host": HOST, "Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    r = requests.post(f"{mg.url}/v1/models/sklearn-iris:predict", json=IRIS_INPUT, headers=headers, timeout=20)
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [1, 1]}
    # FAQ 1: a wrong service hostname is a 404.
    r = requests.post(f"{mg.url}/v1/models/sklearn-iris:predict", json=IRIS_INPUT,
                      headers={**headers, "Host": f"sklearn-iris.{NS}.example.org"}, timeout=20)
    assert r.status_code == 404


def test_made_up_dex_session_cookie_is_refused(gate):
    """Seed 003's browser path with a cookie the gateway never issued: the
    imported config has no sign-in section, so `authservice_session` is not a
    credential and the call fails closed. The real flow (IdP login, the
    seed's `get_istio_auth_session()` unmodified, the V1 predict with the
    cookie it returns) is `test_browser_signin.py`."""
    _, mg = gate
    r = requests.post(f"{mg.url}/v1/models/sklearn-iris:predict", json=IRIS_INPUT, timeout=20,
                      headers={"Host": HOST, "Content-Type": "application/json"},
                      cookies={"authservice_session": "a-dex-session"})
    assert r.status_code == 401, r.text
    assert r.headers.get("www-authenticate", "").startswith("Bearer")
