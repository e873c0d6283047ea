"""modelgate's own ONNX runtime behind the same auth, driven by the real
clients (tritonclient HTTP and gRPC, the kserve client), and compared with
MLServer serving the sklearn original."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from gw import bearer, create_key
from peers import IRIS_LABELS, IRIS_ROWS

ROOT = Path(__file__).resolve().parents[2]


def _start_builtin(tmp_path, run_modelgate, start_modelgate, onnx: Path):
    keys = tmp_path / "keys.json"
    model_dir = tmp_path / "models" / "iris"
    model_dir.mkdir(parents=True)
    shutil.copy(onnx, model_dir / "model.onnx")
    mg = start_modelgate(f"""
listen: {{address: "__LISTEN__", max_body_bytes: 1MiB}}
admin: {{address: "__ADMIN__"}}
auth: {{api_keys: {{file: "{keys}"}}}}
models:
  - name: iris
    builtin: {{dir: "{model_dir}"}}
  - name: other
    builtin: {{dir: "{model_dir}"}}
""")
    mg.key = create_key(run_modelgate, keys, "iris-user", "iris")
    mg.model_dir = model_dir
    mg.wait_ready(lambda: requests.get(f"{mg.url}/v2/models/iris/ready", headers=bearer(mg.key), timeout=5).status_code == 200, 5, "key")
    return mg


@pytest.fixture
def builtin(tmp_path, run_modelgate, start_modelgate):
    """The bundled examples/models/iris/model.onnx."""
    return _start_builtin(tmp_path, run_modelgate, start_modelgate, ROOT / "examples" / "models" / "iris" / "model.onnx")


@pytest.fixture
def builtin_same_training(tmp_path, run_modelgate, start_modelgate, iris_model_dir):
    """The model.onnx converted from the very model.joblib MLServer serves
    (a fresh training differs from the bundled file by ~1e-3 across BLAS builds)."""
    return _start_builtin(tmp_path, run_modelgate, start_modelgate, iris_model_dir / "model.onnx")


V2 = {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": IRIS_ROWS}]}


def test_v1_and_v2_rest(builtin):
    h = bearer(builtin.key)
    r = requests.post(f"{builtin.url}/v1/models/iris:predict", json={"instances": IRIS_ROWS}, headers=h, timeout=5)
    assert r.json() == {"predictions": IRIS_LABELS}
    r = requests.post(f"{builtin.url}/v2/models/iris/infer", json={**V2, "id": "req-7"}, headers=h, timeout=5)
    body = r.json()
    assert body["id"] == "req-7" and body["model_name"] == "iris"
    label = next(o for o in body["outputs"] if o["name"] == "label")
    assert label["data"] == IRIS_LABELS
    meta = requests.get(f"{builtin.url}/v2/models/iris", headers=h, timeout=5).json()
    assert meta["platform"] == "onnx_onnxv1" and meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert requests.post(f"{builtin.url}/v2/models/iris/infer", json=V2, timeout=5).status_code == 401
    assert requests.post(f"{builtin.url}/v2/models/other/infer", json=V2, headers=h, timeout=5).status_code == 403


def test_tritonclient_http(builtin):
    import tritonclient.http as httpclient

    c = httpclient.InferenceServerClient(url=builtin.listen)
    h = bearer(builtin.key)
    assert c.is_server_live(headers=h) and c.is_model_ready("iris", headers=h)
    inp = httpclient.InferInput("input", [2, 4], "FP32")
    inp.set_data_from_numpy(np.array(IRIS_ROWS, dtype=np.float32))  # binary tensor extension (the client's default)
    res = c.infer("iris", [inp], headers=h)
    assert res.as_numpy("label").tolist() == IRIS_LABELS
    assert res.as_numpy("probabilities").shape == (2, 3)


def test_tritonclient_grpc(builtin):
    import grpc
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    c = grpcclient.InferenceServerClient(url=builtin.listen)
    h = {"authorization": f"Bearer {builtin.key}"}
    assert c.is_server_live(headers=h) and c.is_model_ready("iris", headers=h)
    assert c.get_model_metadata("iris", headers=h).platform == "onnx_onnxv1"
    inp = grpcclient.InferInput("input", [2, 4], "FP32")
    inp.set_data_from_numpy(np.array(IRIS_ROWS, dtype=np.float32))
    res = c.infer("iris", [inp], headers=h)
    assert res.as_numpy("label").tolist() == IRIS_LABELS
    with pytest.raises(InferenceServerException) as e:
        c.infer("iris", [inp])
    assert e.value.status() == str(grpc.StatusCode.UNAUTHENTICATED)
    with pytest.raises(InferenceServerException) as e:
        c.infer("other", [inp], headers=h)
    assert e.value.status() == str(grpc.StatusCode.PERMISSION_DENIED)


KSERVE_CLIENT = r"""
import asyncio, json, sys
from kserve import InferenceRESTClient, RESTConfig, InferRequest, InferInput
async def main(url, key):
    h = {"Authorization": f"Bearer {key}"}
    v2 = InferenceRESTClient(RESTConfig(protocol="v2", timeout=10))
    inp = InferInput(name="input", shape=[2, 4], datatype="FP32", data=[6.8, 2.8, 4.8, 1.4, 6.0, 3.4, 4.5, 1.6])
    res = await v2.infer(url, InferRequest(model_name="iris", infer_inputs=[inp]), model_name="iris", headers=h)
    out = {o.name: o.data for o in res.outputs}
    v1 = InferenceRESTClient(RESTConfig(protocol="v1", timeout=10))
    pred = await v1.infer(url, {"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}, model_name="iris", headers=h)
    print(json.dumps({"label": out["label"], "v1": pred}))
    await v1.close()
    await v2.close()
asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_kserve_client(builtin):
    # kserve and tritonclient.grpc register the same protobuf package: separate process.
    r = subprocess.run([sys.executable, "-c", KSERVE_CLIENT, builtin.url, builtin.key], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert '"label": [1, 1]' in r.stdout and '"v1": {"predictions": [1, 1]}' in r.stdout, r.stdout


def test_same_answers_as_mlserver(builtin_same_training, mlserver_iris):
    builtin = builtin_same_training
    rows = IRIS_ROWS + [[5.1, 3.5, 1.4, 0.2], [7.7, 3.0, 6.1, 2.3], [5.9, 3.0, 5.1, 1.8]]
    body = {"inputs": [{"name": "input-0", "shape": [len(rows), 4], "datatype": "FP32", "data": rows}],
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}
    ml = requests.post(mlserver_iris.infer_url(), json=body, timeout=10).json()
    ml_out = {o["name"]: o for o in ml["outputs"]}
    ours = requests.post(f"{builtin.url}/v2/models/iris/infer", headers=bearer(builtin.key), timeout=5,
                         json={"inputs": [{"name": "input", "shape": [len(rows), 4], "datatype": "FP32", "data": rows}]}).json()
    our_out = {o["name"]: o for o in ours["outputs"]}
    assert our_out["label"]["data"] == ml_out["predict"]["data"]
    np.testing.assert_allclose(np.array(our_out["probabilities"]["data"]).reshape(-1, 3),
                               np.array(ml_out["predict_proba"]["data"]).reshape(-1, 3), atol=1e-6)


@pytest.mark.parametrize("payload,needle", [
    ({"inputs": [{"name": "input", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]}, "input"),
    ({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "BYTES", "data": ["a"] * 8}]}, "input"),
    ({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": ["NaN", 1, 2, 3]}]}, "input"),
    ({"inputs": [{"name": "input", "shape": [0, 4], "datatype": "FP32", "data": []}]}, "input"),
    ({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3]}]}, "input"),
    # One tensor is taken under any name (test_seed_bodies.py); with two, names must match.
    ({"inputs": [{"name": "nope", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
                 {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}, "nope"),
    ({"inputs": "x"}, ""),
])
def test_bad_tensors_are_400(builtin, payload, needle):
    r = requests.post(f"{builtin.url}/v2/models/iris/infer", json=payload, headers=bearer(builtin.key), timeout=5)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]


def test_large_body_is_413(builtin):
    big = b'{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [' + b"1.0," * 2_600_000 + b"1.0]}]}"
    assert len(big) > 10_000_000
    r = requests.post(f"{builtin.url}/v2/models/iris/infer", data=big, headers={**bearer(builtin.key), "Content-Type": "application/json"}, timeout=20)
    assert r.status_code == 413
    assert requests.post(f"{builtin.url}/v2/models/iris/infer", json=V2, headers=bearer(builtin.key), timeout=5).status_code == 200


def test_model_file_reload_under_load_loses_nothing(builtin, tmp_path):
    """Replace model.onnx (with a broken file, then the good one again) while
    requests run: every request succeeds, the broken file is refused, and
    requests keep completing before, during and after (a few in each phase;
    how many is a matter of machine speed, not asserted)."""
    stop = threading.Event()
    statuses: list[int] = []

    def load():
        s = requests.Session()
        while not stop.is_set():
            statuses.append(s.post(f"{builtin.url}/v2/models/iris/infer", json=V2, headers=bearer(builtin.key), timeout=10).status_code)

    def flowing(n: int, phase: str) -> None:
        """Wait (with a deadline) until n more requests have completed."""
        want = len(statuses) + n
        deadline = time.monotonic() + 30
        while len(statuses) < want and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(statuses) >= want, f"requests stopped flowing {phase}"

    def wait_log(needle: str) -> None:
        deadline = time.monotonic() + 10
        while needle not in builtin.stderr()[mark:] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert needle in builtin.stderr()[mark:]

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        good = (builtin.model_dir / "model.onnx").read_bytes()
        mark = len(builtin.stderr())
        flowing(5, "before the change")
        tmp = builtin.model_dir / "model.onnx.tmp"
        tmp.write_bytes(b"not an onnx model")
        tmp.rename(builtin.model_dir / "model.onnx")
        wait_log("does not load")  # the broken file is refused...
        flowing(5, "with the broken file on disk")  # ...and the loaded model keeps serving
        tmp.write_bytes(good)
        tmp.rename(builtin.model_dir / "model.onnx")
        wait_log("reloaded")
        flowing(5, "after the reload")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert set(statuses) == {200}, set(statuses)
