"""Every refusal and failure: the right status, the protocol's error shape,
Authorino's headers, one decision record — and nothing forwarded that should
not be. Upstreams are real MLServer and nginx."""

from __future__ import annotations

import json
import time

import pytest
import requests

from gw import V2_BODY, bearer, create_key, raw_request, silent_server

ECHO_LOG_FORMAT = (
    "log_format hdrs escape=json '{\"uri\":\"$request_uri\",\"host\":\"$host\",\"userid\":\"$http_kubeflow_userid\","
    "\"groups\":\"$http_kubeflow_groups\",\"fwd_user\":\"$http_x_forwarded_user\",\"auth_req\":\"$http_x_auth_request_email\","
    "\"authz\":\"$http_authorization\",\"apikey\":\"$http_x_api_key\",\"xff\":\"$http_x_forwarded_for\","
    "\"rid\":\"$http_x_request_id\",\"tp\":\"$http_traceparent\",\"len\":\"$content_length\"}';\n"
    "    underscores_in_headers on;"
)
ECHO_SERVER = """
server {
    listen 127.0.0.1:__PORT__;
    access_log __WORK__/logs/hdrs.log hdrs;
    location / {
        default_type application/json;
        return 200 '{"predictions":[1,1]}';
    }
}
"""


@pytest.fixture
def echo(start_nginx):
    srv = start_nginx(ECHO_SERVER, http_extra=ECHO_LOG_FORMAT)
    log = srv.root.parent / "logs" / "hdrs.log"

    def hdrs(wait: float = 5.0):
        # nginx writes the access-log line after it has sent the response:
        # wait (bounded) for a line to appear instead of racing it.
        end = time.monotonic() + wait
        while True:
            lines = [json.loads(l) for l in (log.read_text() if log.exists() else "").splitlines() if l]
            if lines or time.monotonic() > end:
                return lines
            time.sleep(0.02)

    srv.hdrs = hdrs
    return srv


@pytest.fixture
def gateway(tmp_path, run_modelgate, start_modelgate, mlserver_iris, echo, litellm_mock):
    keys = tmp_path / "keys.json"
    key = create_key(run_modelgate, keys, "alice", "*")
    silent, silent_addr = silent_server()
    dead = f"127.0.0.1:{__import__('peers').free_port()}"
    mg = start_modelgate(f"""
listen:
  address: "__LISTEN__"
  max_body_bytes: 64KiB
admin: {{address: "__ADMIN__"}}
auth:
  realm: kubernetes-user
  api_keys: {{file: "{keys}"}}
  identity_header: kubeflow-userid
  public_paths: [/v2/health/live]
models:
  - name: iris
    protocols: [v2]
    upstream: {{url: "{mlserver_iris.rest_url}"}}
    public_operations: [model_ready]
  - name: echo
    protocols: [v1, v2]
    upstream: {{url: "{echo.url}"}}
  - name: slow
    protocols: [v2]
    upstream: {{url: "http://{silent_addr}", timeout: 1s}}
  - name: down
    protocols: [v2]
    upstream: {{url: "http://{dead}", connect_timeout: 1s}}
  - name: llama3
    protocols: [openai]
    upstream: {{url: "{litellm_mock.url}"}}
""")
    mg.key = key
    yield mg
    silent.close()


def test_no_credential_is_authorino_401(gateway):
    r = requests.post(f"{gateway.url}/v2/models/iris/infer", json=V2_BODY, timeout=10)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="kubernetes-user"'
    assert r.headers["x-ext-auth-reason"] == "credential not found"
    assert r.json() == {"error": "credential not found"}
    d = gateway.wait_decisions(1)[-1]
    assert (d["status"], d["decision"], d["authorized"], d["response"]) == (401, "deny", False, "UNAUTHENTICATED")
    assert d["reason"] == "credential not found" and d["model"] == "iris" and d["protocol"] == "v2"


@pytest.mark.parametrize("header", [
    {"Authorization": "Bearer mgk_AAAAAAAAAAAA_" + "A" * 43},
    {"Authorization": "Bearer not-a-key"},
    {"x-api-key": "mgk_garbage"},
    {"Authorization": "APIKEY wrong"},
])
def test_invalid_keys_get_one_answer(gateway, header):
    r = requests.post(f"{gateway.url}/v2/models/iris/infer", json=V2_BODY, headers=header, timeout=10)
    assert r.status_code == 401
    assert r.headers["x-ext-auth-reason"] == "the API Key provided is invalid"
    assert r.headers["www-authenticate"] == 'Bearer realm="kubernetes-user", error="invalid_token"'


def test_key_sent_three_ways(gateway):
    for h in ({"Authorization": f"Bearer {gateway.key}"}, {"Authorization": f"APIKEY {gateway.key}"}, {"x-api-key": gateway.key}):
        r = requests.post(f"{gateway.url}/v2/models/iris/infer", json=V2_BODY, headers=h, timeout=10)
        assert r.status_code == 200, (h.keys(), r.text)


def test_unknown_paths_are_404_and_never_forwarded(gateway, mlserver_iris):
    mark = mlserver_iris.log_mark()
    for path in ["/v2/repository/models/iris/load", "/v2/repository/index", "/metrics", "/tokenize", "/invocations", "/v2/models/iris/infer/x"]:
        r = requests.post(f"{gateway.url}{path}", headers=bearer(gateway.key), json={}, timeout=10)
        assert r.status_code == 404, path
        assert r.json() == {"error": "no route for this path"}
    r = requests.post(f"{gateway.url}/v2/models/iris/infer", headers=bearer(gateway.key), json=V2_BODY, timeout=10)
    assert r.status_code == 200
    mlserver_iris.wait_for_log("/v2/models/iris/infer", since=mark)
    for path in ["/v2/repository", "/metrics", "/tokenize", "/invocations", "/infer/x"]:
        assert not mlserver_iris.saw_path(path, since=mark), path


def test_upstream_down_is_502(gateway):
    r = requests.post(f"{gateway.url}/v2/models/down/infer", json=V2_BODY, headers=bearer(gateway.key), timeout=10)
    assert r.status_code == 502
    assert r.json() == {"error": "upstream unavailable"}
    d = gateway.wait_decisions(1)[-1]
    assert d["status"] == 502 and d["authorized"] is True and "connect" in d["reason"]


def test_upstream_timeout_is_504(gateway):
    t0 = time.monotonic()
    r = requests.post(f"{gateway.url}/v2/models/slow/infer", json=V2_BODY, headers=bearer(gateway.key), timeout=10)
    assert r.status_code == 504
    assert r.json() == {"error": "upstream request timeout"}
    assert 0.9 < time.monotonic() - t0 < 5


def test_body_too_large_is_413(gateway, echo):
    big = b'{"instances": [' + b"1.0," * 40000 + b"1.0]}"
    r = requests.post(f"{gateway.url}/v1/models/echo:predict", data=big, headers={**bearer(gateway.key), "Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 413
    assert "larger than the limit of 65536 bytes" in r.json()["error"]

    def chunks():
        for _ in range(40):
            yield b"x" * 4096

    # Chunked, no Content-Length: the limit trips while the body streams to an
    # upstream that reads it (MLServer; nginx's `return` would answer first).
    r = requests.post(f"{gateway.url}/v2/models/iris/infer", data=chunks(), headers={**bearer(gateway.key), "Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 413
    # A small body still passes.
    r = requests.post(f"{gateway.url}/v1/models/echo:predict", json={"instances": [[1, 2, 3, 4]]}, headers=bearer(gateway.key), timeout=10)
    assert r.status_code == 200


def test_spoofed_identity_headers_are_stripped(gateway, echo):
    spoof = {
        "kubeflow-userid": "admin@example.com",
        "kubeflow_userid": "admin@example.com",
        "KUBEFLOW-GROUPS": "admins",
        "X-Forwarded-User": "root",
        "x-auth-request-email": "root@example.com",
        "X-Forwarded-For": "6.6.6.6",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "x-request-id": "client-chosen-id-1",
    }
    r = requests.post(f"{gateway.url}/v1/models/echo:predict", json={"instances": [[1]]}, headers={**spoof, **bearer(gateway.key)}, timeout=10)
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "client-chosen-id-1"
    seen = echo.hdrs()[-1]
    assert seen["userid"] == "alice"          # the verified identity, not the spoofed one
    assert seen["groups"] == "" and seen["fwd_user"] == "" and seen["auth_req"] == ""
    assert seen["authz"] == "" and seen["apikey"] == ""   # the credential never reaches the upstream
    assert seen["xff"] == "127.0.0.1"          # client-sent X-Forwarded-For is not trusted
    assert seen["rid"] == "client-chosen-id-1"
    assert seen["tp"] == spoof["traceparent"]
    d = gateway.wait_decisions(1)[-1]
    assert d["request_id"] == "client-chosen-id-1" and d["identity"] == "alice"


def test_public_paths_and_operations_need_no_key(gateway, mlserver_iris):
    assert requests.get(f"{gateway.url}/v2/health/live", timeout=5).json() == {"live": True}
    r = requests.get(f"{gateway.url}/v2/models/iris/ready", timeout=5)
    assert r.status_code == 200, r.text
    # Public is per path/operation: inference on the same model still needs the key.
    assert requests.post(f"{gateway.url}/v2/models/iris/infer", json=V2_BODY, timeout=5).status_code == 401


def test_bad_paths_are_400(gateway):
    for target in ["/v2/models/iris%2Finfer", "/v2/models/iris%00/infer", "/v2/models/iris;x=1/infer"]:
        status, _, body = raw_request(gateway.listen, "POST", target, bearer(gateway.key), b"{}")
        assert status == 400, (target, body)


def test_openai_errors_in_openai_shape(gateway):
    import openai

    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="mgk_AAAAAAAAAAAA_" + "A" * 43, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        client.chat.completions.create(model="llama3", messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["type"] == "authentication_error"
    r = requests.post(f"{gateway.url}/v1/chat/completions", json={"model": "llama3", "messages": []}, timeout=10)
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "credential not found"
    r = requests.post(f"{gateway.url}/v1/chat/completions", data=b"{not json", headers=bearer(gateway.key), timeout=10)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = requests.post(f"{gateway.url}/v1/chat/completions", json={"messages": []}, headers=bearer(gateway.key), timeout=10)
    assert r.status_code == 400 and "model" in r.json()["error"]["message"]


def test_secrets_never_logged(gateway):
    requests.post(f"{gateway.url}/v2/models/iris/infer", json=V2_BODY, headers=bearer(gateway.key), timeout=10)
    requests.post(f"{gateway.url}/v2/models/iris/infer", json=V2_BODY, headers=bearer(gateway.key + "x"), timeout=10)
    gateway.wait_decisions(2)
    secret = gateway.key.rsplit("_", 1)[1]
    assert secret not in gateway.stdout() and secret not in gateway.stderr()


def test_metrics_count_decisions(gateway):
    requests.post(f"{gateway.url}/v2/models/iris/infer", json=V2_BODY, timeout=10)
    requests.post(f"{gateway.url}/v2/models/iris/infer", json=V2_BODY, headers=bearer(gateway.key), timeout=10)
    text = requests.get(f"{gateway.admin_url}/metrics", timeout=5).text
    assert 'modelgate_requests_total{model="iris",protocol="v2",decision="deny",status="401"} 1' in text
    assert 'modelgate_requests_total{model="iris",protocol="v2",decision="allow",status="200"} 1' in text
    assert 'modelgate_auth_failures_total{reason="credential_not_found"} 1' in text
    assert "modelgate_upstream_duration_seconds_bucket" in text
    assert "modelgate_keystore_keys 1" in text
