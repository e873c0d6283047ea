"""Issue 9, items 4, 5 and 9 (Host): the model that is authorized is the model
that answers, against the real binary and real peers.

- OpenAI (real LiteLLM serving two chat models, llama3 and granite): LiteLLM
  takes `?model=` over the body and parses form content types as forms, so a
  key granted llama3 could be served granite. modelgate refuses any query on
  OpenAI endpoints, any content type but JSON, and any Content-Encoding.
- `seldon-model` on a public server-level path (real MLServer) is answered by
  modelgate itself and never reaches the model's upstream unauthenticated.
- `Host` with a trailing dot or userinfo names the same host for `hosts:`
  policies (real MLServer)."""

from __future__ import annotations

import json
import socket

import pytest
import requests

from gw import bearer, create_key, gateway_config, model


# --------------------------------------------------------------------------
# 4. OpenAI: the model in the body is the model that answers
# --------------------------------------------------------------------------
@pytest.fixture
def openai_gate(tmp_path, run_modelgate, start_modelgate, litellm_mock):
    keys = tmp_path / "keys.json"
    llama = create_key(run_modelgate, keys, "llama-only", "llama3")
    every = create_key(run_modelgate, keys, "all", "*")
    mg = start_modelgate(gateway_config(keys, model("llama3", "openai", litellm_mock.url),
                                        model(litellm_mock.second_model, "openai", litellm_mock.url)))
    mg.llama, mg.all = llama, every
    return mg


def chat(model: str) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}]}


def answer_text(r: requests.Response) -> str:
    return r.json()["choices"][0]["message"]["content"]


def assert_openai_400(r: requests.Response, litellm_mock) -> None:
    assert r.status_code == 400, r.text
    err = r.json()["error"]  # OpenAI's error shape
    assert err["message"] and err["type"], err
    assert litellm_mock.second_mock_text not in r.text


def test_litellm_really_takes_the_query_model(litellm_mock):
    """The attack is real: straight to LiteLLM, `?model=granite` beats the body."""
    r = requests.post(f"{litellm_mock.url}/v1/chat/completions?model={litellm_mock.second_model}",
                      json=chat("llama3"), headers=bearer("sk-anything"), timeout=30)
    assert r.status_code == 200, r.text
    assert answer_text(r) == litellm_mock.second_mock_text


def test_query_model_cannot_swap_the_authorized_model(openai_gate, litellm_mock):
    mark = litellm_mock.log_mark()
    url = f"{openai_gate.url}/v1/chat/completions"
    for key in (openai_gate.llama, openai_gate.all):
        for query in (f"model={litellm_mock.second_model}", f"MODEL={litellm_mock.second_model}",
                      f"api-version=1&model={litellm_mock.second_model}", "x=1"):
            r = requests.post(f"{url}?{query}", json=chat("llama3"), headers=bearer(key), timeout=30)
            assert_openai_400(r, litellm_mock)
    # Granted llama3 only: granite by body is forbidden, llama3 answers as llama3.
    r = requests.post(url, json=chat(litellm_mock.second_model), headers=bearer(openai_gate.llama), timeout=30)
    assert r.status_code == 403, r.text
    assert not litellm_mock.saw_path("/v1/chat/completions", since=mark), litellm_mock.log(mark)
    r = requests.post(url, json=chat("llama3"), headers=bearer(openai_gate.llama), timeout=30)
    assert r.status_code == 200, r.text
    assert answer_text(r) == litellm_mock.mock_text


def test_only_plain_json_bodies_are_forwarded(openai_gate, litellm_mock):
    url = f"{openai_gate.url}/v1/chat/completions"
    # JSON that LiteLLM, reading it as a form, sees as `model=granite`.
    smuggled = json.dumps({"a": f"&model={litellm_mock.second_model}&", **chat("llama3")}).encode()
    mark = litellm_mock.log_mark()
    for ct in ("application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
               "application/json; x=form", "text/plain", None):
        headers = bearer(openai_gate.llama)
        if ct:
            headers["Content-Type"] = ct
        r = requests.post(url, data=smuggled, headers=headers, timeout=30)
        assert_openai_400(r, litellm_mock)
    r = requests.post(url, data=smuggled, timeout=30,
                      headers={**bearer(openai_gate.llama), "Content-Type": "application/json",
                               "Content-Encoding": "identity"})
    assert_openai_400(r, litellm_mock)
    assert not litellm_mock.saw_path("/v1/chat/completions", since=mark), litellm_mock.log(mark)
    r = requests.post(url, data=smuggled, timeout=30,
                      headers={**bearer(openai_gate.llama), "Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200, r.text
    assert answer_text(r) == litellm_mock.mock_text


# --------------------------------------------------------------------------
# 5. seldon-model on a public server-level path
# --------------------------------------------------------------------------
@pytest.fixture
def seldon_gate(tmp_path, run_modelgate, start_modelgate, mlserver_iris):
    keys = tmp_path / "keys.json"
    key = create_key(run_modelgate, keys, "alice", "*")
    mg = start_modelgate(f"""
listen: {{address: "__LISTEN__"}}
admin: {{address: "__ADMIN__"}}
auth:
  api_keys: {{file: "{keys}"}}
  public_paths: [/v2/health/live, /v2/health/ready]
models:
  - name: iris
    protocols: [v2]
    upstream: {{url: "{mlserver_iris.rest_url}"}}
""")
    mg.key = key
    return mg


def test_seldon_model_on_a_public_path_is_answered_locally(seldon_gate, mlserver_iris):
    mark = mlserver_iris.log_mark()
    for path, want in (("/v2/health/ready", {"ready": True}), ("/v2/health/live", {"live": True})):
        r = requests.get(f"{seldon_gate.url}{path}", headers={"seldon-model": "iris"}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json() == want  # modelgate's own answer (MLServer's has an empty body)
    # Not public: the header still routes, but only with a credential.
    r = requests.get(f"{seldon_gate.url}/v2", headers={"seldon-model": "iris"}, timeout=10)
    assert r.status_code == 401, r.text
    # The setup works: an authenticated model call reaches MLServer and is logged.
    r = requests.get(f"{seldon_gate.url}/v2/models/iris/ready", headers=bearer(seldon_gate.key), timeout=10)
    assert r.status_code == 200, r.text
    mlserver_iris.wait_for_log("/v2/models/iris/ready", since=mark)
    log = mlserver_iris.log(mark)
    assert "/v2/health/" not in log and "GET /v2 " not in log, log


# --------------------------------------------------------------------------
# 9. Host: a trailing dot or userinfo does not slip past a hosts rule
# --------------------------------------------------------------------------
@pytest.fixture
def host_gate(tmp_path, run_modelgate, start_modelgate, mlserver_iris):
    keys = tmp_path / "keys.json"
    key = create_key(run_modelgate, keys, "alice", "*")
    mg = start_modelgate(gateway_config(keys, model("iris", "v2", mlserver_iris.rest_url), extra="""policies:
  - name: no-blocked-host
    action: DENY
    rules: [{to: [{operation: {hosts: [blocked.example.com]}}]}]
"""))
    mg.key = key
    return mg


def get_with_host(addr: str, path: str, host: bytes, key: str) -> int:
    """GET with the Host header exactly as given (no client normalisation)."""
    h, port = addr.rsplit(":", 1)
    head = (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host + b"\r\nAuthorization: Bearer "
            + key.encode() + b"\r\nConnection: close\r\n\r\n")
    with socket.create_connection((h, int(port)), timeout=10) as s:
        s.sendall(head)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


def test_host_spellings_match_hosts_rules(host_gate, mlserver_iris):
    mark = mlserver_iris.log_mark()
    for host in (b"blocked.example.com", b"blocked.example.com.", b"Blocked.Example.COM.:8080",
                 b"user@blocked.example.com", b"u:p@blocked.example.com.", b"blocked.example.com.."):
        assert get_with_host(host_gate.listen, "/v2/models/iris/ready", host, host_gate.key) == 403, host
    assert not mlserver_iris.saw_path("/v2/models/iris/ready", since=mark), mlserver_iris.log(mark)
    # The setup works: another host (with a trailing dot) is let through to MLServer.
    assert get_with_host(host_gate.listen, "/v2/models/iris/ready", b"other.example.com.", host_gate.key) == 200
    mlserver_iris.wait_for_log("/v2/models/iris/ready", since=mark)
