"""modelgate in front of real MLServer and KServe: the seeds' requests give the
same answers through modelgate as direct, with the credential checked and the
verified identity passed on."""

from __future__ import annotations

import subprocess

import pytest
import requests

from gw import V1_BODY, V2_BODY, bearer, create_key
from peers import IRIS_LABELS, IRIS_ROWS


@pytest.fixture
def gateway(tmp_path, run_modelgate, start_modelgate, mlserver_iris, kserve_iris):
    keys = tmp_path / "keys.json"
    alice = create_key(run_modelgate, keys, "alice", "iris,sklearn-iris,inf-sklearn-iris-model")
    only_iris = create_key(run_modelgate, keys, "iris-only", "iris")
    ml_grpc = mlserver_iris.grpc_addr
    mg = start_modelgate(f"""
listen: {{address: "__LISTEN__"}}
admin: {{address: "__ADMIN__"}}
auth:
  realm: kubernetes-user
  api_keys: {{file: "{keys}"}}
  identity_header: kubeflow-userid
models:
  - name: iris
    protocols: [v2, grpc]
    upstream: {{url: "{mlserver_iris.rest_url}", grpc_url: "http://{ml_grpc}"}}
  - name: sklearn-iris
    protocols: [v1, v2]
    hosts: [sklearn-iris.kubeflow-user-example-com.example.com]
    upstream: {{url: "{kserve_iris.rest_url}"}}
  - name: inf-sklearn-iris-model
    protocols: [v1]
    upstream: {{url: "{kserve_iris.rest_url}", host: inf-sklearn-iris-model.kubeflow-test-test-com.svc.cluster.local}}
    routes:
      - prefix: /kfserving/kubeflow-test-test-com/inf-sklearn-iris-model
        rewrite: "/v1/models/sklearn-iris:predict"
        methods: [POST]
""".replace('rewrite: "/v1/models/sklearn-iris:predict"', 'rewrite: "/v1/models/inf-sklearn-iris-model:predict"'))
    mg.keys = {"alice": alice, "iris-only": only_iris}
    return mg


def test_v2_infer_matches_direct(gateway, mlserver_iris):
    direct = requests.post(mlserver_iris.infer_url(), json=V2_BODY, timeout=10).json()
    via = requests.post(f"{gateway.url}/v2/models/iris/infer", json=V2_BODY, headers=bearer(gateway.keys["alice"]), timeout=10)
    assert via.status_code == 200, via.text
    body = via.json()
    assert body["outputs"] == direct["outputs"]
    assert body["outputs"][0]["data"] == IRIS_LABELS
    assert via.headers["x-request-id"]


def test_seed_004_seldon_model_header_with_curl(gateway):
    out = subprocess.run(
        ["curl", "-s", "-i", f"{gateway.url}/v2/models/iris/infer", "-H", "Content-Type: application/json",
         "-H", f"Authorization: Bearer {gateway.keys['alice']}", "-H", "seldon-model:iris",
         "-d", '{"inputs": [{"name": "predict", "shape": [1, 4], "datatype": "FP32", "data": [[1, 2, 3, 4]]}]}'],
        capture_output=True, text=True, timeout=20, check=True,
    ).stdout
    assert out.startswith("HTTP/1.1 200"), out
    assert '"model_name":"iris"' in out.replace(" ", "")


def test_tritonclient_http_through_gateway(gateway):
    import numpy as np
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=gateway.listen)
    headers = bearer(gateway.keys["alice"])
    assert client.is_model_ready("iris", headers=headers)
    inp = httpclient.InferInput("input-0", [2, 4], "FP32")
    # MLServer does not implement Triton's binary tensor extension: JSON tensors.
    inp.set_data_from_numpy(np.array(IRIS_ROWS, dtype=np.float32), binary_data=False)
    out = [httpclient.InferRequestedOutput("predict", binary_data=False)]
    res = client.infer("iris", [inp], outputs=out, headers=headers)
    assert res.as_numpy("predict").flatten().tolist() == IRIS_LABELS
    with pytest.raises(Exception) as e:
        client.infer("iris", [inp])
    assert "credential not found" in str(e.value)


def test_tritonclient_grpc_through_gateway(gateway):
    import grpc
    import numpy as np
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(url=gateway.listen)
    headers = {"authorization": f"Bearer {gateway.keys['alice']}"}  # gRPC metadata keys are lower-case
    assert client.is_model_ready("iris", headers=headers)
    inp = grpcclient.InferInput("input-0", [2, 4], "FP32")
    inp.set_data_from_numpy(np.array(IRIS_ROWS, dtype=np.float32))
    res = client.infer("iris", [inp], headers=headers)
    assert res.as_numpy("predict").flatten().tolist() == IRIS_LABELS
    with pytest.raises(InferenceServerException) as e:
        client.infer("iris", [inp])
    assert e.value.status() == str(grpc.StatusCode.UNAUTHENTICATED)
    with pytest.raises(InferenceServerException) as e:
        client.infer("iris", [inp], headers={"authorization": "Bearer mgk_AAAAAAAAAAAA_" + "A" * 43})
    assert e.value.status() == str(grpc.StatusCode.UNAUTHENTICATED)
    # A key without a grant for the model: PERMISSION_DENIED; a model that is not there: NOT_FOUND.
    with pytest.raises(InferenceServerException) as e:
        client.infer("sklearn-iris", [inp], headers=headers)
    assert e.value.status() in (str(grpc.StatusCode.NOT_FOUND), str(grpc.StatusCode.PERMISSION_DENIED))


def test_seed_003_v1_with_host_header(gateway):
    r = requests.post(
        f"{gateway.url}/v1/models/sklearn-iris:predict",
        headers={"Host": "sklearn-iris.kubeflow-user-example-com.example.com", **bearer(gateway.keys["alice"])},
        json=V1_BODY, timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [1, 1]}
    # The same model under another host does not exist there.
    r = requests.post(f"{gateway.url}/v1/models/sklearn-iris:predict", headers={"Host": "evil.example.com", **bearer(gateway.keys["alice"])}, json=V1_BODY, timeout=10)
    assert r.status_code == 404


def test_seed_002_prefix_rewrite(gateway, kserve_iris):
    mark = kserve_iris.log_mark()
    r = requests.post(f"{gateway.url}/kfserving/kubeflow-test-test-com/inf-sklearn-iris-model",
                      headers=bearer(gateway.keys["alice"]), json={"instances": IRIS_ROWS}, timeout=10)
    # KServe serves sklearn-iris only; the rewrite names inf-sklearn-iris-model, as in the seed.
    assert r.status_code == 404 and "inf-sklearn-iris-model" in r.text, r.text
    assert kserve_iris.saw_path("/v1/models/inf-sklearn-iris-model:predict", since=mark)
    assert requests.get(f"{gateway.url}/kfserving/kubeflow-test-test-com/inf-sklearn-iris-model",
                        headers=bearer(gateway.keys["alice"]), timeout=10).status_code == 405


def test_grants_and_unknown_models(gateway):
    key = gateway.keys["iris-only"]
    r = requests.post(f"{gateway.url}/v1/models/sklearn-iris:predict", json=V1_BODY,
                      headers={"Host": "sklearn-iris.kubeflow-user-example-com.example.com", **bearer(key)}, timeout=10)
    assert r.status_code == 403
    assert r.json() == {"error": "not permitted to call model sklearn-iris"}
    r = requests.post(f"{gateway.url}/v2/models/nope/infer", json=V2_BODY, headers=bearer(key), timeout=10)
    assert r.status_code == 404
    assert r.json() == {"error": "Model with name nope does not exist."}
    # Without a credential an unknown model is a 401, not a 404: models cannot be listed anonymously.
    r = requests.post(f"{gateway.url}/v2/models/nope/infer", json=V2_BODY, timeout=10)
    assert r.status_code == 401


def test_model_lists_follow_grants(gateway):
    r = requests.get(f"{gateway.url}/v2/models", headers=bearer(gateway.keys["iris-only"]), timeout=10)
    assert r.status_code == 200
    assert r.json() == {"models": ["iris"]}


def test_server_level_v2(gateway):
    h = bearer(gateway.keys["alice"])
    assert requests.get(f"{gateway.url}/v2/health/live", headers=h, timeout=5).json() == {"live": True}
    assert requests.get(f"{gateway.url}/v2/health/ready", headers=h, timeout=5).json() == {"ready": True}
    assert requests.get(f"{gateway.url}/v2", headers=h, timeout=5).json()["name"] == "modelgate"
    assert requests.get(f"{gateway.url}/v2/health/live", timeout=5).status_code == 401
