"""The real peers work on their own (no modelgate in the path).

If one of these fails, the end-to-end tests that put modelgate in front of the
same peer cannot be trusted either.
"""

from __future__ import annotations

import json

import numpy as np
import requests

from peers import IRIS_LABELS, IRIS_ROWS

V2_BODY = {
    "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": IRIS_ROWS}],
}


def test_iris_onnx_matches_sklearn(iris_model_dir):
    import joblib
    import onnxruntime as ort

    rows = np.array(IRIS_ROWS, dtype=np.float32)
    assert joblib.load(iris_model_dir / "model.joblib").predict(rows).tolist() == IRIS_LABELS
    sess = ort.InferenceSession(str(iris_model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"]
    assert [o.name for o in sess.get_outputs()] == ["label", "probabilities"]
    label, probs = sess.run(None, {"input": rows})
    assert label.tolist() == IRIS_LABELS
    assert isinstance(probs, list) and set(probs[0]) == {0, 1, 2}


def test_mlserver_v2_rest(mlserver_iris):
    mark = mlserver_iris.log_mark()  # the server is shared: look at this test's lines only
    url = mlserver_iris.infer_url()
    r = requests.post(url, json=V2_BODY, timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    out = body["outputs"][0]
    assert out["name"] == "predict"
    assert out["datatype"] == "INT64"
    assert out["shape"] == [2, 1]
    assert out["data"] == IRIS_LABELS
    assert body["model_name"] == "iris"
    # Without Content-Type: application/json MLServer answers 422.
    r = requests.post(url, data=json.dumps(V2_BODY), headers={"Content-Type": "text/plain"}, timeout=10)
    assert r.status_code == 422
    # The request shows up in MLServer's access log.
    mlserver_iris.wait_for_log('"POST /v2/models/iris/infer HTTP/1.1" 422', since=mark)


def test_mlserver_v2_grpc(mlserver_iris):
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url=mlserver_iris.grpc_addr)
    try:
        assert client.is_server_ready()
        assert client.is_model_ready("iris")
        inp = grpcclient.InferInput("input-0", [2, 4], "FP32")
        inp.set_data_from_numpy(np.array(IRIS_ROWS, dtype=np.float32))
        res = client.infer(model_name="iris", inputs=[inp])
        assert res.as_numpy("predict").reshape(-1).tolist() == IRIS_LABELS
    finally:
        client.close()


def test_mlserver_metrics(mlserver_iris):
    r = requests.get(mlserver_iris.metrics_url, timeout=10)
    assert r.status_code == 200
    assert "# TYPE" in r.text


def test_kserve_v1_predict(kserve_iris):
    mark = kserve_iris.log_mark()
    r = requests.post(kserve_iris.predict_url(), json={"instances": IRIS_ROWS}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": IRIS_LABELS}
    # uvicorn's access log percent-encodes the colon: saw_path() matches both.
    kserve_iris.wait_for_log("/v1/models/sklearn-iris:predict", since=mark)
    assert not kserve_iris.saw_path("/v1/models/sklearn-iris:explain", since=mark)


def test_kserve_v2_infer(kserve_iris):
    r = requests.post(kserve_iris.infer_url(), json=V2_BODY, timeout=10)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["data"] == IRIS_LABELS
    assert out["datatype"] == "INT64"


def test_kserve_v2_grpc(kserve_iris):
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url=kserve_iris.grpc_addr)
    try:
        inp = grpcclient.InferInput("input-0", [2, 4], "FP32")
        inp.set_data_from_numpy(np.array(IRIS_ROWS, dtype=np.float32))
        res = client.infer(model_name="sklearn-iris", inputs=[inp])
        out = res.get_response().outputs[0].name
        assert res.as_numpy(out).reshape(-1).tolist() == IRIS_LABELS
    finally:
        client.close()


def test_litellm_chat_completion(litellm_mock):
    from openai import OpenAI

    client = OpenAI(base_url=litellm_mock.base_url, api_key="sk-anything", max_retries=0, timeout=30)
    resp = client.chat.completions.create(model="llama3", messages=[{"role": "user", "content": "hi"}])
    assert resp.choices[0].message.content == litellm_mock.mock_text
    assert resp.model == "llama3"


def test_litellm_streaming(litellm_mock):
    from openai import OpenAI

    client = OpenAI(base_url=litellm_mock.base_url, api_key="sk-anything", max_retries=0, timeout=30)
    stream = client.chat.completions.create(
        model="llama3", messages=[{"role": "user", "content": "hi"}], stream=True)
    chunks = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert len(chunks) > 1
    assert "".join(chunks) == litellm_mock.mock_text
    # The raw wire format is SSE ending with [DONE].
    with requests.post(f"{litellm_mock.url}/v1/chat/completions", stream=True, timeout=30,
                       json={"model": "llama3", "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [ln for ln in r.iter_lines(decode_unicode=True) if ln]
    assert lines[-1] == "data: [DONE]"


def test_litellm_completions_and_embeddings(litellm_mock):
    from openai import OpenAI

    client = OpenAI(base_url=litellm_mock.base_url, api_key="sk-anything", max_retries=0, timeout=30)
    comp = client.completions.create(model="llama3", prompt="hi")
    assert comp.choices[0].text == litellm_mock.mock_text
    emb = client.embeddings.create(model=litellm_mock.embedding_model, input="hi", encoding_format="float")
    assert emb.data[0].embedding == [0.125, -0.25, 0.5, 1.0]
    models = {m.id for m in client.models.list()}
    assert {"llama3", litellm_mock.embedding_model} <= models


def test_redis_ping(redis_server):
    assert redis_server.ping()
    assert redis_server.command("SET", "k", "v") == "OK"
    assert redis_server.command("GET", "k") == "v"
    assert redis_server.command("CONFIG", "GET", "save") == ["save", ""]


def test_nginx_static_json(start_nginx):
    srv = start_nginx("""
    server {
        listen 127.0.0.1:__PORT__;
        location / { root __ROOT__; }
    }
    """)
    (srv.root / "hello.json").write_text('{"hello":"nginx"}')
    r = requests.get(f"{srv.url}/hello.json", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"hello": "nginx"}
    assert requests.get(f"{srv.url}/missing", timeout=10).status_code == 404
    assert any('"GET /hello.json HTTP/1.1" 200' in ln for ln in srv.access_lines())


def test_nginx_proxy_to_mlserver(start_nginx, mlserver_iris):
    srv = start_nginx(f"""
    server {{
        listen 127.0.0.1:__PORT__;
        location / {{ proxy_pass {mlserver_iris.rest_url}; }}
    }}
    """)
    r = requests.post(f"{srv.url}/v2/models/iris/infer", json=V2_BODY, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == IRIS_LABELS


# --- the modelgate fixtures themselves, against a stand-in binary -------------
# (the real binary is exercised by the other e2e test files; this proves the
# factory's plumbing: config file, address tokens, /readyz wait, stdout as the
# JSON decision log, stop by SIGTERM, run_modelgate for CLI subcommands)
FAKE_MODELGATE = r'''
import http.server, json, re, sys, threading
args = sys.argv[1:]
if args[:1] != ["serve"]:
    print("fake modelgate " + " ".join(args)); sys.exit(3 if args[:1] == ["fail"] else 0)
text = open(args[args.index("--config") + 1]).read()
admin = re.search(r"admin:\s*\{address:\s*([\d.]+):(\d+)", text)
listen = re.search(r"listen:\s*\{address:\s*([\d.]+):(\d+)", text)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
        if self.server.server_port == int(listen.group(2)):
            print(json.dumps({"path": self.path, "decision": "allow"}), flush=True)
    def log_message(self, *a):
        sys.stderr.write("access %s\n" % (a,))
srv = http.server.HTTPServer((admin.group(1), int(admin.group(2))), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
http.server.HTTPServer((listen.group(1), int(listen.group(2))), H).serve_forever()
'''


def _fake_binary(tmp_path, monkeypatch):
    import sys

    fake = tmp_path / "fake-modelgate"
    fake.write_text(f"#!{sys.executable}\n{FAKE_MODELGATE}")
    fake.chmod(0o755)
    monkeypatch.setenv("MODELGATE_BIN", str(fake))
    return fake


def test_modelgate_fixture_plumbing(tmp_path, monkeypatch, start_modelgate, run_modelgate):
    _fake_binary(tmp_path, monkeypatch)
    mg = start_modelgate("listen: {address: __LISTEN__}\nadmin: {address: __ADMIN__}\n")
    assert mg.url.startswith("http://127.0.0.1:") and mg.admin_url != mg.url
    assert requests.get(f"{mg.admin_url}/readyz", timeout=5).status_code == 200
    requests.get(f"{mg.url}/v1/models/iris", timeout=5)
    assert mg.wait_decisions(1)[0] == {"path": "/v1/models/iris", "decision": "allow"}
    assert "access" in mg.stderr()
    assert mg.stop() is not None and not mg.alive()
    cp = run_modelgate(["keys", "create", "--name", "x"])
    assert cp.returncode == 0 and cp.stdout.strip() == "fake modelgate keys create --name x"
    assert run_modelgate(["fail"]).returncode == 3


def test_modelgate_missing_binary_is_a_clear_error(tmp_path, monkeypatch):
    import peers
    import pytest

    monkeypatch.setenv("MODELGATE_BIN", str(tmp_path / "nope"))
    with pytest.raises(peers.PeerError, match="Build it first"):
        peers.start_modelgate(tmp_path, "admin: {address: __ADMIN__}\n")
