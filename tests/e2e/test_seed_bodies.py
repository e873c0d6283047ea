"""The seeds' own requests, verbatim (path, headers, body bytes), on modelgate's
built-in iris model, through the real binary: seed 001's iris-input-v2.json
(input `input-0`) and seed 004's `{"name": "predict", ...}` body. A one-input
model takes its tensor under any name, as MLServer and KServe's sklearn server
do — over V2 REST JSON, the binary tensor extension (tritonclient HTTP) and
gRPC (tritonclient gRPC). MLServer is asked the same and must agree."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from gw import bearer, builtin_iris, create_key, gateway_config, model
from peers import free_addr, require_modelgate_bin

ROOT = Path(__file__).resolve().parents[2]
# Seed 001: curl -L https://red.ht/3x17lZP -o ./iris-input-v2.json; curl ... -d @./iris-input-v2.json
SEED_001_BODY = (ROOT / "crates/modelgate-runtime/tests/fixtures/seeds/iris-input-v2.json").read_bytes()
SEED_001_HEADERS = {"Content-Type": "application/json"}
# Seed 004: curl -i http://$MESH_IP/v2/models/iris/infer -H "Content-Type: application/json"
#           -H "seldon-model":iris -d '{"inputs": ...}'   (the shell makes that `seldon-model:iris`)
SEED_004_BODY = b'{"inputs": [{"name": "predict", "shape": [1, 4], "datatype": "FP32", "data": [[1, 2, 3, 4]]}]}'
SEED_004_HEADERS = {"Content-Type": "application/json", "seldon-model": "iris"}
INFER_PATH = "/v2/models/iris/infer"


@pytest.fixture
def builtin(tmp_path, run_modelgate, start_modelgate):
    keys = tmp_path / "keys.json"
    mg = start_modelgate(gateway_config(keys, model("iris", "v1, v2, grpc", builtin=builtin_iris(tmp_path))))
    mg.key = create_key(run_modelgate, keys, "iris-user", "iris")
    mg.wait_ready(lambda: requests.get(f"{mg.url}/v2/models/iris/ready", headers=bearer(mg.key), timeout=5).status_code == 200, 5, "key")
    return mg


def label_of(answer: dict) -> dict:
    return next(o for o in answer["outputs"] if o["name"] == "label")


def test_seed_001_request_verbatim(builtin):
    url = builtin.url + INFER_PATH
    r = requests.post(url, data=SEED_001_BODY, headers=SEED_001_HEADERS, timeout=5)
    assert r.status_code == 401, r.text
    r = requests.post(url, data=SEED_001_BODY, headers={**bearer(builtin.key), **SEED_001_HEADERS}, timeout=5)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == "iris"
    label = label_of(body)
    assert label["data"] == [1, 1] and label["shape"] == [2] and label["datatype"] == "INT64"


def test_seed_004_request_verbatim(builtin):
    url = builtin.url + INFER_PATH
    assert requests.post(url, data=SEED_004_BODY, headers=SEED_004_HEADERS, timeout=5).status_code == 401
    r = requests.post(url, data=SEED_004_BODY, headers={**SEED_004_HEADERS, **bearer(builtin.key)}, timeout=5)
    assert r.status_code == 200, r.text
    label = label_of(r.json())
    assert label["shape"] == [1] and len(label["data"]) == 1


def test_seed_bodies_agree_with_mlserver(builtin, mlserver_iris):
    """MLServer's sklearn runtime names its output `predict` (INT64); ours is
    the ONNX graph's `label` (INT64): the predicted classes must be equal."""
    for body, headers in [(SEED_001_BODY, SEED_001_HEADERS), (SEED_004_BODY, SEED_004_HEADERS)]:
        ml = requests.post(mlserver_iris.infer_url(), data=body, headers=headers, timeout=10)
        assert ml.status_code == 200, ml.text
        ml_out = ml.json()["outputs"][0]
        assert ml_out["name"] == "predict" and ml_out["datatype"] == "INT64"
        ours = requests.post(builtin.url + INFER_PATH, data=body, headers={**headers, **bearer(builtin.key)}, timeout=5)
        label = label_of(ours.json())
        assert label["datatype"] == ml_out["datatype"]
        assert np.array(label["data"]).ravel().tolist() == np.array(ml_out["data"]).ravel().tolist()
        if body is SEED_001_BODY:
            assert np.array(ml_out["data"]).ravel().tolist() == [1, 1]


def test_seed_input_names_over_tritonclient_http_binary_and_grpc(builtin):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    rows = np.array([[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]], dtype=np.float32)
    h = bearer(builtin.key)
    c = httpclient.InferenceServerClient(url=builtin.listen)
    inp = httpclient.InferInput("input-0", [2, 4], "FP32")
    inp.set_data_from_numpy(rows)  # binary tensor extension (the client's default)
    assert c.infer("iris", [inp], headers=h).as_numpy("label").tolist() == [1, 1]
    g = grpcclient.InferenceServerClient(url=builtin.listen)
    inp = grpcclient.InferInput("predict", [2, 4], "FP32")
    inp.set_data_from_numpy(rows)
    res = g.infer("iris", [inp], headers={"authorization": f"Bearer {builtin.key}"})
    assert res.as_numpy("label").tolist() == [1, 1]


def test_modelgate_demo_answers_the_seed_bodies(tmp_path):
    listen, admin = free_addr(), free_addr()
    out = tmp_path / "demo.out"
    proc = subprocess.Popen([str(require_modelgate_bin()), "demo", "--listen", listen, "--admin", admin,
                             "--data-dir", str(tmp_path / "data")],
                            stdout=out.open("w"), stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while "Stop with Ctrl-C" not in out.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None
            time.sleep(0.1)
        key = re.search(r"export MODELGATE_KEY=(\S+)", out.read_text()).group(1)
        url = f"http://{listen}{INFER_PATH}"
        for body, headers in [(SEED_001_BODY, SEED_001_HEADERS), (SEED_004_BODY, SEED_004_HEADERS)]:
            assert requests.post(url, data=body, headers=headers, timeout=5).status_code == 401
            r = requests.post(url, data=body, headers={**headers, **bearer(key)}, timeout=5)
            assert r.status_code == 200, r.text
        r = requests.post(url, data=SEED_001_BODY, headers={**SEED_001_HEADERS, **bearer(key)}, timeout=5)
        assert label_of(r.json())["data"] == [1, 1]
    finally:
        proc.terminate()
        proc.wait(10)
