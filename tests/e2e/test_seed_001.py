"""Seed 001 (Open Data Hub: Authorino + KServe sklearn iris, V2 infer),
replayed through modelgate with the configuration `modelgate import` makes
from the seed's AuthorizationPolicy (verbatim) and the iris InferenceService
with `enable-auth: "true"`, in front of a real KServe server."""

from __future__ import annotations

import json

import pytest
import requests

import peers
from gw import create_key
from seed_import import SEEDS, import_config, serve_imported

BODY = (SEEDS / "iris-input-v2.json").read_bytes()
HEADERS = {"Content-Type": "application/json"}
GATEWAY_TOKEN = "modelgate-own-token"
SA_TOKEN = "right-person-token"


@pytest.fixture(scope="module")
def kserve_iris_named_iris(tmp_path_factory, iris_model_dir):
    try:
        srv = peers.start_kserve(tmp_path_factory.mktemp("kserve-iris"), iris_model_dir, model_name="iris", enable_grpc=False)
    except peers.PeerError as e:
        pytest.fail(str(e), pytrace=False)
    yield srv
    srv.stop()


def expected(body: dict) -> None:
    """The seed's answer: {"model_name":"iris","model_version":null,"id":…,"parameters":null,
    "outputs":[{"name":"output-0","shape":[2],"datatype":"INT32","parameters":null,"data":[1,1]}]}"""
    assert body["model_name"] == "iris"
    assert body["id"]
    out = body["outputs"][0]
    assert (out["name"], out["shape"], out["data"]) == ("output-0", [2], [1, 1])
    # The datatype is the model's label dtype, passed through unchanged: the
    # seed's model was saved with int32 labels, the test model with int64.
    assert out["datatype"] in ("INT32", "INT64")


def test_without_token_401_with_token_200(run_modelgate, start_modelgate, kserve_iris_named_iris, tmp_path):
    keys = tmp_path / "keys.json"
    config, report = import_config(
        run_modelgate, ["seeds/001-authorizationpolicy.yaml", "derived/001-inferenceservice.yaml"],
        "--upstream", f"iris={kserve_iris_named_iris.rest_url}", "--keys-file", str(keys))
    assert "spec.selector — modelgate is the gateway itself" in report
    # The dashboard's token: with no AuthConfig imported, a modelgate API key.
    token = create_key(run_modelgate, keys, "right-person", "iris")
    mg = serve_imported(run_modelgate, start_modelgate, tmp_path, config)
    url = f"{mg.url}/v2/models/iris/infer"
    assert requests.post(url, data=BODY, headers=HEADERS, timeout=20).status_code == 401
    r = requests.post(url, data=BODY, headers={**HEADERS, "Authorization": f"Bearer {token}"}, timeout=20)
    assert r.status_code == 200, r.text
    expected(r.json())
    assert json.loads(BODY)["inputs"][0]["name"] == "input-0"


# What the seed's RBAC grants (ODH's role binding for the model's ServiceAccount):
# `get` on this InferenceService, for right-person only.
ACCESS = [{"user": "system:serviceaccount:authorino-test:right-person", "namespace": "authorino-test",
           "verb": "get", "group": "serving.kserve.io", "resource": "inferenceservices", "name": "iris"}]
NO_ACCESS_TOKEN = "wrong-person-token"


def test_service_account_token_through_the_odh_authconfig(run_modelgate, start_modelgate, start_kube_stub,
                                                          kserve_iris_named_iris, tmp_path):
    audiences = ["https://kubernetes.default.svc"]
    stub = start_kube_stub({SA_TOKEN: {"username": "system:serviceaccount:authorino-test:right-person",
                                       "audiences": audiences},
                            NO_ACCESS_TOKEN: {"username": "system:serviceaccount:authorino-test:wrong-person",
                                              "audiences": audiences}}, GATEWAY_TOKEN, access=ACCESS)
    (tmp_path / "gw-token").write_text(GATEWAY_TOKEN)
    config, report = import_config(
        run_modelgate, ["seeds/001-authorizationpolicy.yaml", "derived/001-inferenceservice.yaml",
                        "derived/001-authconfig.yaml"], "--upstream", f"iris={kserve_iris_named_iris.rest_url}")
    assert "kubernetes_access" in config, config
    assert "untranslated: AuthConfig/authorino-test/iris: spec.authorization" not in report, report
    mg = serve_imported(run_modelgate, start_modelgate, tmp_path, config,
                        {"KUBERNETES_API_SERVER": stub.url, "KUBERNETES_TOKEN_FILE": str(tmp_path / "gw-token")})
    url = f"{mg.url}/v2/models/iris/infer"
    assert requests.post(url, data=BODY, headers=HEADERS, timeout=20).status_code == 401
    r = requests.post(url, data=BODY, headers={**HEADERS, "Authorization": f"Bearer {SA_TOKEN}"}, timeout=20)
    assert r.status_code == 200, r.text
    expected(r.json())
    # A valid token whose ServiceAccount has no RBAC grant on the model.
    r = requests.post(url, data=BODY, headers={**HEADERS, "Authorization": f"Bearer {NO_ACCESS_TOKEN}"}, timeout=20)
    assert r.status_code == 403, r.text
    assert "SubjectAccessReview denied" in r.text, r.text
    assert requests.get(f"{stub.url}/stub/counts", timeout=5).json()["subjectaccessreviews"] == 2


def test_report_and_output_files_and_bad_input(run_modelgate, tmp_path):
    from seed_import import FIXTURES

    out, rep = tmp_path / "modelgate.yaml", tmp_path / "report.txt"
    r = run_modelgate(["import", FIXTURES / "seeds" / "001-authorizationpolicy.yaml", FIXTURES / "derived",
                       "--report", rep, "-o", out, "--upstream", "iris=http://127.0.0.1:9"])
    assert r.returncode == 0, r.stderr
    assert (r.stdout, r.stderr) == ("", "")
    report = rep.read_text()
    # A directory is read whole: 000's and 001's objects, every kind named in the report.
    assert "AuthConfig/demo-rhoai-secured/llama3" in report and "InferenceService/authorino-test/iris" in report
    assert "note: AuthConfig/authorino-test/iris: spec.authorization.kubernetes-rbac.kubernetesSubjectAccessReview — models[iris].kubernetes_access" in report
    assert "url: http://127.0.0.1:9\n" in out.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [")
    r = run_modelgate(["import", bad])
    assert r.returncode == 2 and "not valid YAML" in r.stderr
    assert run_modelgate(["import", bad, "--upstream", "no-equals-sign"]).returncode == 1
