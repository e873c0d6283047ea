"""LLM upstream side (issue 13 items 1 and 2), against real peers:

- LiteLLM's proxy run WITH a master key: only the key modelgate injects
  (`upstream.headers`) is accepted; the client's modelgate key never reaches it.
- Aliases (`upstream.model`): client model `chat` served by LiteLLM's `granite`
  (a second LiteLLM: the session's litellm_mock), with two upstream URLs of
  which one is dead (connection refused); V2 `iris-alias` → MLServer's `iris`,
  over REST and gRPC (tritonclient). Answers name the client's model: the
  OpenAI JSON `model`, every streamed chunk's `model` (openai SDK), and the V2
  REST and gRPC `model_name`.
- Streaming through a small SSE server, a labelled stand-in for vLLM (vLLM
  needs a GPU): events arrive one by one, a client that goes away closes the
  upstream connection, and a stalled stream is ended by the idle timeout.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import numpy as np
import openai
import pytest
import requests

from gw import bearer, create_key, gateway_config
from peers import IRIS_LABELS, IRIS_ROWS, LOCALHOST, free_port, start_litellm
from sse_upstream import SseUpstream

MASTER_KEY = "sk-litellm-master-0123456789"
MSG = [{"role": "user", "content": "hi"}]


def client(mg, key, **kw):
    return openai.OpenAI(base_url=f"{mg.url}/v1", api_key=key, max_retries=0, **kw)


@pytest.fixture(scope="module")
def litellm_locked(tmp_path_factory):
    srv = start_litellm(tmp_path_factory.mktemp("litellm-locked"), model="llama3", master_key=MASTER_KEY)
    yield srv
    srv.stop()


@pytest.fixture
def sse():
    srv = SseUpstream(interval=0.2)
    yield srv
    srv.stop()


def _gateway(tmp_path, run_modelgate, start_modelgate, models: str, env=None):
    keys = tmp_path / "keys.json"
    mg = start_modelgate(gateway_config(keys, models), env=env)
    mg.key = create_key(run_modelgate, keys, "llm-user", "*")
    mg.wait_ready(lambda: requests.get(f"{mg.url}/v1/models", headers=bearer(mg.key), timeout=5).status_code == 200,
                  5, "keys")
    return mg


def test_master_key_is_injected_and_the_client_key_never_reaches_litellm(
        tmp_path, run_modelgate, start_modelgate, litellm_locked):
    mg = _gateway(tmp_path, run_modelgate, start_modelgate, f"""
  - name: llama3
    protocols: [openai]
    upstream:
      url: "{litellm_locked.url}"
      headers: {{Authorization: "Bearer ${{LITELLM_KEY}}"}}
""", env={"LITELLM_KEY": MASTER_KEY})
    # LiteLLM refuses anything but its master key, the modelgate key included
    # (with no database it answers 400 "No connected db." for other keys).
    direct = openai.OpenAI(base_url=litellm_locked.base_url, api_key=mg.key, max_retries=0)
    with pytest.raises((openai.AuthenticationError, openai.BadRequestError)):
        direct.chat.completions.create(model="llama3", messages=MSG)
    c = client(mg, mg.key)
    out = c.chat.completions.create(model="llama3", messages=MSG)
    assert out.choices[0].message.content == litellm_locked.mock_text
    chunks = list(c.chat.completions.create(model="llama3", messages=MSG, stream=True))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == litellm_locked.mock_text

    async def async_call():
        ac = openai.AsyncOpenAI(base_url=f"{mg.url}/v1", api_key=mg.key, max_retries=0)
        r = await ac.chat.completions.create(model="llama3", messages=MSG)
        await ac.close()
        return r.choices[0].message.content

    assert asyncio.run(async_call()) == litellm_locked.mock_text
    # The master key itself is no modelgate key: modelgate refuses it (401).
    with pytest.raises(openai.AuthenticationError):
        client(mg, MASTER_KEY).chat.completions.create(model="llama3", messages=MSG)
    # The secret is nowhere in modelgate's output.
    assert MASTER_KEY not in mg.log() and MASTER_KEY not in mg.stderr()


def test_alias_and_failover_to_the_live_upstream(tmp_path, run_modelgate, start_modelgate, litellm_mock):
    dead = f"http://{LOCALHOST}:{free_port()}"  # nothing listens: a killed upstream
    mg = _gateway(tmp_path, run_modelgate, start_modelgate, f"""
  - name: chat
    protocols: [openai]
    upstream:
      urls: ["{dead}", "{litellm_mock.url}"]
      model: {litellm_mock.second_model}
      retries: 1
      cooloff: 30s
""")
    c = client(mg, mg.key)
    for _ in range(4):
        out = c.chat.completions.create(model="chat", messages=MSG)
        assert out.choices[0].message.content == litellm_mock.second_mock_text
        assert out.model == "chat"  # the client's name, not the upstream's
    chunks = list(c.chat.completions.create(model="chat", messages=MSG, stream=True))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == litellm_mock.second_mock_text
    # Every streamed chunk names the client's model; LiteLLM itself names its own.
    assert chunks and {ch.model for ch in chunks} == {"chat"}
    direct = openai.OpenAI(base_url=litellm_mock.base_url, api_key="sk-any", max_retries=0)
    direct_models = {ch.model for ch in direct.chat.completions.create(
        model=litellm_mock.second_model, messages=MSG, stream=True)}
    assert direct_models and "chat" not in direct_models
    metrics = requests.get(f"{mg.admin_url}/metrics", timeout=5).text
    attempts = {line.split(" ")[0]: float(line.split(" ")[1]) for line in metrics.splitlines()
                if line.startswith("modelgate_upstream_attempts_total{")}
    # The dead endpoint failed once and was then skipped for its cool-off.
    assert attempts.get('modelgate_upstream_attempts_total{model="chat",upstream="0",result="connect"}') == 1.0
    assert attempts.get('modelgate_upstream_attempts_total{model="chat",upstream="1",result="ok"}') == 5.0
    assert 'modelgate_gen_ai_server_time_to_first_token_seconds_count{model="chat"} 5' in metrics


def test_v2_alias_through_mlserver_rest_and_grpc(tmp_path, run_modelgate, start_modelgate, mlserver_iris):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    mg = _gateway(tmp_path, run_modelgate, start_modelgate, f"""
  - name: iris-alias
    protocols: [v2, grpc]
    upstream:
      url: "{mlserver_iris.rest_url}"
      grpc_url: "http://{mlserver_iris.grpc_addr}"
      model: iris
""")
    h = bearer(mg.key)
    body = {"inputs": [{"name": "predict", "shape": [2, 4], "datatype": "FP32", "data": IRIS_ROWS}]}
    r = requests.post(f"{mg.url}/v2/models/iris-alias/infer", json=body, headers=h, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == IRIS_LABELS
    # The answer names the client's model; MLServer's own answer names `iris`.
    assert r.json()["model_name"] == "iris-alias"
    assert int(r.headers["content-length"]) == len(r.content)
    direct = requests.post(f"{mlserver_iris.rest_url}/v2/models/iris/infer", json=body, timeout=10)
    assert direct.json()["model_name"] == "iris"
    assert requests.get(f"{mg.url}/v2/models/iris-alias/ready", headers=h, timeout=5).status_code == 200
    # The upstream's own name is not a model here.
    assert requests.post(f"{mg.url}/v2/models/iris/infer", json=body, headers=h, timeout=5).status_code == 404
    hc = httpclient.InferenceServerClient(url=mg.listen)
    assert hc.is_model_ready("iris-alias", headers=h)
    g = grpcclient.InferenceServerClient(url=mg.listen)
    gh = {"authorization": f"Bearer {mg.key}"}
    assert g.is_model_ready("iris-alias", headers=gh)
    assert g.get_model_metadata("iris-alias", headers=gh).name == "iris"  # the upstream's answer
    inp = grpcclient.InferInput("predict", [2, 4], "FP32")
    inp.set_data_from_numpy(np.array(IRIS_ROWS, dtype=np.float32))
    res = g.infer("iris-alias", [inp], headers=gh)
    assert res.as_numpy(res.get_response().outputs[0].name).flatten().tolist() == IRIS_LABELS
    assert res.get_response().model_name == "iris-alias"
    direct = grpcclient.InferenceServerClient(url=mlserver_iris.grpc_addr).infer("iris", [inp])
    assert direct.get_response().model_name == "iris"
    # An error answer (trailers only) still comes through as the upstream's error.
    bad = grpcclient.InferInput("predict", [2, 3], "FP32")
    bad.set_data_from_numpy(np.zeros((2, 3), dtype=np.float32))
    from tritonclient.utils import InferenceServerException
    with pytest.raises(InferenceServerException):
        g.infer("iris-alias", [bad], headers=gh)


def _sse_gateway(tmp_path, run_modelgate, start_modelgate, sse, extra=""):
    return _gateway(tmp_path, run_modelgate, start_modelgate, f"""
  - name: chat
    protocols: [openai]
    upstream:
      url: "{sse.url}"
      model: standin-llm
      timeout: 1s
      headers: {{Authorization: "Bearer upstream-secret"}}
{extra}
""")


def _arrivals(stream, models=None):
    t0 = time.monotonic()
    times, texts = [], []
    for ch in stream:
        times.append(time.monotonic() - t0)
        texts.append(ch.choices[0].delta.content)
        if models is not None:
            models.append(ch.model)
    return times, texts


def test_stream_arrives_event_by_event(tmp_path, run_modelgate, start_modelgate, sse):
    mg = _sse_gateway(tmp_path, run_modelgate, start_modelgate, sse)
    mark = mg.log_mark()
    # 10 events 200 ms apart (~1.8 s) under a 1 s request timeout: the
    # timeout ends with the response headers, the stream goes on.
    models = []
    times, texts = _arrivals(client(mg, mg.key).chat.completions.create(
        model="chat", messages=MSG, stream=True, max_tokens=10), models)
    assert texts == [f"t{i} " for i in range(10)]
    # Each event names the client's model (the upstream's chunks say `standin-llm`).
    assert models == ["chat"] * 10
    assert times[0] < times[-1] / 2, times  # the first event came long before the last
    seen = sse.requests[-1]
    assert seen.model == "standin-llm" and seen.authorization == "Bearer upstream-secret"
    # Direct, for comparison (printed: time to first event through modelgate vs direct).
    d_times, d_texts = _arrivals(openai.OpenAI(base_url=f"{sse.url}/v1", api_key="x", max_retries=0)
                                 .chat.completions.create(model="standin-llm", messages=MSG, stream=True,
                                                          max_tokens=10))
    assert d_texts == texts
    # The record is written when the stream ends, with its timing.
    rec = [d for d in mg.wait_decisions(1, since=mark) if d["path"] == "/v1/chat/completions"][-1]
    assert rec["status"] == 200 and rec["model"] == "chat"
    assert 0 < rec["upstream_ttfb_ms"] and rec["upstream_ttfb_ms"] < rec["total_ms"]
    assert 0 < rec["stream_ms"] < rec["total_ms"]
    metrics = requests.get(f"{mg.admin_url}/metrics", timeout=5).text
    assert 'modelgate_gen_ai_server_request_duration_seconds_count{model="chat"} 1' in metrics
    print(f"\nfirst event after headers: via modelgate {times[0] * 1000:.1f} ms, direct {d_times[0] * 1000:.1f} ms; "
          f"last: {times[-1] * 1000:.0f} ms vs {d_times[-1] * 1000:.0f} ms")
    # Time to first event from the request's start, 15 samples each way (printed, not asserted).
    def ttfb(c, model):
        t0 = time.monotonic()
        s = c.chat.completions.create(model=model, messages=MSG, stream=True, max_tokens=1)
        next(iter(s))
        t = time.monotonic() - t0
        s.close()
        return t * 1000
    via = sorted(ttfb(client(mg, mg.key), "chat") for _ in range(15))
    direct = sorted(ttfb(openai.OpenAI(base_url=f"{sse.url}/v1", api_key="x", max_retries=0), "standin-llm")
                    for _ in range(15))
    print(f"TTFB p50: via modelgate {via[7]:.1f} ms, direct {direct[7]:.1f} ms; "
          f"max: {via[-1]:.1f} vs {direct[-1]:.1f} ms")


def test_client_disconnect_closes_the_upstream_request(tmp_path, run_modelgate, start_modelgate, sse):
    mg = _sse_gateway(tmp_path, run_modelgate, start_modelgate, sse)
    body = json.dumps({"model": "chat", "messages": MSG, "stream": True, "max_tokens": 200}).encode()
    host, port = mg.listen.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: {mg.listen}\r\nAuthorization: Bearer {mg.key}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    got = b""
    while got.count(b"data: ") < 3:
        got += sock.recv(65536)
    assert got.startswith(b"HTTP/1.1 200")
    sock.close()  # the client goes away mid-stream
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sse.requests[-1].closed_at is None:
        time.sleep(0.1)
    seen = sse.requests[-1]
    assert seen.closed_at is not None, "the upstream never saw the connection close"
    assert seen.sent < 200 and not seen.finished
    # The request is still logged, when the client went away.
    recs = [d for d in mg.decisions() if d["path"] == "/v1/chat/completions"]
    assert recs and recs[-1]["status"] == 200 and "stream_ms" in recs[-1]


def test_idle_timeout_ends_a_stalled_stream_cleanly(tmp_path, run_modelgate, start_modelgate, sse):
    mg = _sse_gateway(tmp_path, run_modelgate, start_modelgate, sse, "      stream_idle_timeout: 1s")
    stream = client(mg, mg.key, timeout=30).chat.completions.create(
        model="chat", messages=MSG, stream=True, max_tokens=10, user="stall")
    texts = []
    with pytest.raises(openai.APIError) as e:
        for ch in stream:
            texts.append(ch.choices[0].delta.content)
    assert texts == ["t0 ", "t1 "]
    assert "stream_idle_timeout" in str(e.value)
