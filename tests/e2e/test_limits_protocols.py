"""Request limits (`rps`, `rpm`, `max_concurrent`) on KServe V1 / Open
Inference V2 requests, not only OpenAI's (issue 13 item 3): real MLServer
behind modelgate, V2 REST with `requests` and V2 gRPC with `tritonclient`.
Refusals come in each protocol's own shape (REST 429 `{"error": …}` with
Retry-After; gRPC RESOURCE_EXHAUSTED with the message). Token limits and
budgets are OpenAI-only: they never refuse a tensor request."""

from __future__ import annotations

import time

import numpy as np
import pytest
import requests

from gw import bearer, create_key, gateway_config, model
from peers import IRIS_LABELS, IRIS_ROWS

BODY = {"inputs": [{"name": "predict", "shape": [2, 4], "datatype": "FP32", "data": IRIS_ROWS}]}


def gateway(tmp_path, run_modelgate, start_modelgate, mlserver, limits: str):
    keys = tmp_path / "keys.json"
    mg = start_modelgate(gateway_config(
        keys, model("iris", "v2, grpc", mlserver.rest_url, f"http://{mlserver.grpc_addr}"),
        extra=f"limits:\n{limits}\n"))
    mg.key = create_key(run_modelgate, keys, "tensors", "*")
    mg.wait_ready(lambda: requests.get(f"{mg.url}/v2/models/iris/ready", headers=bearer(mg.key),
                                       timeout=5).status_code == 200, 5, "keys")
    return mg


def away_from_minute_end(margin: float = 15.0) -> None:
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.5)


def grpc_infer(mg):
    import tritonclient.grpc as grpcclient
    g = grpcclient.InferenceServerClient(url=mg.listen)
    inp = grpcclient.InferInput("predict", [2, 4], "FP32")
    inp.set_data_from_numpy(np.array(IRIS_ROWS, dtype=np.float32))
    return g.infer("iris", [inp], headers={"authorization": f"Bearer {mg.key}"})


def rest_infer(mg):
    return requests.post(f"{mg.url}/v2/models/iris/infer", json=BODY, headers=bearer(mg.key), timeout=10)


def test_rpm_counts_rest_and_grpc_inference_together_and_refuses_in_each_shape(
        tmp_path, run_modelgate, start_modelgate, mlserver_iris):
    from tritonclient.utils import InferenceServerException

    # A tiny token limit and budget too: tensors have no tokens, they never refuse.
    mg = gateway(tmp_path, run_modelgate, start_modelgate, mlserver_iris,
                 "  per_key: {rpm: 4, tpm: 1, budget_daily: 0.000001}")
    away_from_minute_end()
    h = bearer(mg.key)
    # Readiness and metadata are not counted.
    for _ in range(6):
        assert requests.get(f"{mg.url}/v2/models/iris/ready", headers=h, timeout=5).status_code == 200
    r = rest_infer(mg)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == IRIS_LABELS
    assert r.headers["x-ratelimit-limit-requests"] == "4"
    assert r.headers["x-ratelimit-remaining-requests"] == "3"
    assert rest_infer(mg).status_code == 200
    res = grpc_infer(mg)
    assert res.as_numpy(res.get_response().outputs[0].name).flatten().tolist() == IRIS_LABELS
    grpc_infer(mg)
    # The fifth inference of the minute, on either protocol, is refused.
    r = rest_infer(mg)
    assert r.status_code == 429, r.text
    assert set(r.json()) == {"error"}
    assert "requests per minute for this key (limit 4)" in r.json()["error"]
    assert 1 <= int(r.headers["retry-after"]) <= 60
    with pytest.raises(InferenceServerException) as e:
        grpc_infer(mg)
    assert "RESOURCE_EXHAUSTED" in str(e.value.status())
    assert "requests per minute for this key (limit 4)" in e.value.message()
    # Not counted either: readiness still answers.
    assert requests.get(f"{mg.url}/v2/models/iris/ready", headers=h, timeout=5).status_code == 200


def test_concurrency_lease_is_released_after_each_answer(tmp_path, run_modelgate, start_modelgate, mlserver_iris):
    from tritonclient.utils import InferenceServerException

    # One at a time, per model: sequential requests pass only if the previous
    # one's lease was released when its answer (body, trailers) ended. The
    # release is applied just after the answer's end: allow it a moment.
    mg = gateway(tmp_path, run_modelgate, start_modelgate, mlserver_iris,
                 "  per_model: {iris: {max_concurrent: 1}}")

    def soon(call):
        deadline = time.monotonic() + 2
        while True:
            try:
                return call()
            except InferenceServerException as e:
                assert "RESOURCE_EXHAUSTED" in str(e.status()) and time.monotonic() < deadline, e
            time.sleep(0.02)

    def rest():
        r = rest_infer(mg)
        if r.status_code == 429:
            raise InferenceServerException(msg=r.text, status="StatusCode.RESOURCE_EXHAUSTED")
        return r

    for _ in range(5):
        r = soon(rest)
        assert r.status_code == 200, r.text
        res = soon(lambda: grpc_infer(mg))
        assert res.get_response().model_name == "iris"


def test_rps_per_model_refuses_a_burst(tmp_path, run_modelgate, start_modelgate, mlserver_iris):
    import concurrent.futures as cf

    mg = gateway(tmp_path, run_modelgate, start_modelgate, mlserver_iris, "  per_model: {iris: {rps: 2}}")
    with cf.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: rest_infer(mg).status_code, range(8)))
    # At most 2 per second (the burst may straddle a second's edge: 4).
    assert codes.count(429) >= 4 and set(codes) <= {200, 429}, codes
