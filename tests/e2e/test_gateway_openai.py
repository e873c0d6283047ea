"""OpenAI-compatible upstream (LiteLLM's proxy with mock responses) behind
modelgate: the `openai` client with a modelgate key, model taken from the
body, streaming passed through, grants enforced."""

from __future__ import annotations

import openai
import pytest
import requests

from gw import bearer, create_key


@pytest.fixture
def gateway(tmp_path, run_modelgate, start_modelgate, litellm_mock):
    keys = tmp_path / "keys.json"
    mg = start_modelgate(f"""
listen: {{address: "__LISTEN__"}}
admin: {{address: "__ADMIN__"}}
auth:
  realm: kubernetes-user
  api_keys: {{file: "{keys}"}}
models:
  - name: llama3
    protocols: [openai]
    upstream: {{url: "{litellm_mock.url}"}}
  - name: {litellm_mock.embedding_model}
    protocols: [openai]
    upstream: {{url: "{litellm_mock.url}"}}
""")
    mg.llama = create_key(run_modelgate, keys, "llama-user", "llama3")
    mg.all = create_key(run_modelgate, keys, "all", "*")
    mg.wait_ready(lambda: requests.get(f"{mg.url}/v1/models", headers=bearer(mg.all), timeout=5).status_code == 200, 5, "keys")
    return mg


def client(mg, key):
    return openai.OpenAI(base_url=f"{mg.url}/v1", api_key=key, max_retries=0)


def test_seed_000_completions_with_and_without_token(gateway, litellm_mock):
    body = {"model": "llama3", "prompt": "What is Kubernetes?", "max_tokens": 128, "temperature": 1, "top_p": 1,
            "n": 1, "stream": False, "logprobs": 0, "echo": False, "stop": ["string"], "user": "string"}
    mark = gateway.log_mark()
    r = requests.post(f"{gateway.url}/v1/completions", json=body, timeout=20)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="kubernetes-user"'
    assert r.headers["x-ext-auth-reason"] == "credential not found"
    r = requests.post(f"{gateway.url}/v1/completions", json=body, headers=bearer(gateway.llama), timeout=20)
    assert r.status_code == 200, r.text
    assert r.json()["object"] == "text_completion"
    gateway.wait_ready(lambda: len([x for x in gateway.decisions(since=mark) if x["path"] == "/v1/completions"]) >= 2, 5, "decisions")
    d = [x for x in gateway.decisions(since=mark) if x["path"] == "/v1/completions"]
    assert [(x["status"], x["authorized"], x["response"]) for x in d[-2:]] == [(401, False, "UNAUTHENTICATED"), (200, True, "OK")]
    assert d[-1]["model"] == "llama3" and d[-1]["protocol"] == "openai" and d[-1]["operation"] == "completions"


def test_chat_and_stream_with_openai_client(gateway, litellm_mock):
    c = client(gateway, gateway.llama)
    out = c.chat.completions.create(model="llama3", messages=[{"role": "user", "content": "hi"}])
    assert out.choices[0].message.content == litellm_mock.mock_text
    chunks = list(c.chat.completions.create(model="llama3", messages=[{"role": "user", "content": "hi"}], stream=True))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == litellm_mock.mock_text


def test_model_grants_apply_to_body_model(gateway, litellm_mock):
    c = client(gateway, gateway.llama)
    with pytest.raises(openai.PermissionDeniedError):
        c.embeddings.create(model=litellm_mock.embedding_model, input="x")
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
    e = client(gateway, gateway.all).embeddings.create(model=litellm_mock.embedding_model, input="x")
    assert len(e.data[0].embedding) > 0


def test_model_list_is_filtered(gateway, litellm_mock):
    ids = [m.id for m in client(gateway, gateway.llama).models.list()]
    assert ids == ["llama3"]
    ids = sorted(m.id for m in client(gateway, gateway.all).models.list())
    assert ids == sorted(["llama3", litellm_mock.embedding_model])
