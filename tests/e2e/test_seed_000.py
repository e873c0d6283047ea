"""Seed 000 (OpenShift AI + Authorino in front of vLLM's OpenAI API), replayed
through modelgate with the configuration `modelgate import` makes from the
InferenceService and the AuthConfig odh-model-controller generates for it
(tests/fixtures/derived; the seed prints no YAML). The LiteLLM mock stands in
for vLLM, which needs a GPU; the kube stub stands in for the API server's
TokenReview. The seed's rotation section ("the NEW_TOKEN is the new API Key
… Check the Authorino documentation Api Key") is replayed with the API-key
form of the AuthConfig (tests/fixtures/derived/000-authconfig-apikey.yaml):
the token lives in a labelled Secret served by the kube API stand-in
(tests/e2e/kube_api_stub.py — there is no kube-apiserver here), watched live,
and rotated by patching the Secret as the seed does."""

from __future__ import annotations

import time

import pytest
import requests

from kube_api_stub import KubeApiStub
from seed_import import import_config, serve_imported

FILES = ["derived/000-inferenceservice.yaml", "derived/000-authconfig.yaml"]
GATEWAY_TOKEN = "modelgate-own-token"
SA_TOKEN = "sa-token-llama3"
ROTATED_TOKEN = "sa-token-llama3-rotated"
NO_ACCESS_TOKEN = "sa-token-other"
# The RBAC grant enable-auth relies on: llama3-sa may `get` its InferenceService.
ACCESS = [{"user": "system:serviceaccount:demo-rhoai-secured:llama3-sa", "namespace": "demo-rhoai-secured",
           "verb": "get", "group": "serving.kserve.io", "resource": "inferenceservices", "name": "llama3"}]

# The seed's request bodies, exactly.
COMMON = {
    "model": "llama3", "prompt": "What is Kubernetes?", "temperature": 1, "top_p": 1, "n": 1,
    "stream": False, "logprobs": 0, "echo": False, "stop": ["string"], "presence_penalty": 0,
    "frequency_penalty": 0, "best_of": 1, "user": "string", "top_k": -1, "ignore_eos": False,
    "use_beam_search": False, "stop_token_ids": [0], "skip_special_tokens": True,
    "spaces_between_special_tokens": True, "repetition_penalty": 1, "min_p": 0,
    "include_stop_str_in_output": False, "length_penalty": 1,
}
WITH_TOKEN = {**COMMON, "max_tokens": 128}
WITHOUT_TOKEN = {**COMMON, "max_tokens": 512}


@pytest.fixture
def gate(run_modelgate, start_modelgate, start_kube_stub, litellm_mock, tmp_path):
    user = {"username": "system:serviceaccount:demo-rhoai-secured:llama3-sa", "groups": ["system:serviceaccounts"],
            "audiences": ["https://kubernetes.default.svc"]}
    other = {**user, "username": "system:serviceaccount:demo-rhoai-secured:other"}
    stub = start_kube_stub({SA_TOKEN: user, ROTATED_TOKEN: user, NO_ACCESS_TOKEN: other}, GATEWAY_TOKEN, access=ACCESS)
    token_file = tmp_path / "gateway-token"
    token_file.write_text(GATEWAY_TOKEN)
    config, report = import_config(run_modelgate, FILES, "--upstream", f"llama3={litellm_mock.url}")
    assert "kubernetesSubjectAccessReview — models[llama3].kubernetes_access" in report, report
    env = {"KUBERNETES_API_SERVER": stub.url, "KUBERNETES_TOKEN_FILE": str(token_file)}
    return serve_imported(run_modelgate, start_modelgate, tmp_path, config, env)


def test_without_token_401_credential_not_found(gate):
    mark = gate.log_mark()
    r = requests.post(f"{gate.url}/v1/completions", json=WITHOUT_TOKEN, timeout=20,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="kubernetes-user"'
    assert r.headers["x-ext-auth-reason"] == "credential not found"
    # Authorino's decision log line, as modelgate writes it.
    d = gate.wait_decisions(1, since=mark)[-1]
    assert (d["authorized"], d["response"]) == (False, "UNAUTHENTICATED")


def test_token_review_and_subject_access_review_200(gate):
    r = requests.post(f"{gate.url}/v1/completions", json=WITH_TOKEN, timeout=30,
                      headers={"Authorization": f"Bearer {SA_TOKEN}", "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["object"], body["model"]) == ("text_completion", "llama3")
    assert body["choices"][0]["text"]


def test_token_without_rbac_grant_is_refused(gate):
    # A valid TokenReview alone never reaches the model: the review denies.
    r = requests.post(f"{gate.url}/v1/completions", json=WITH_TOKEN, timeout=30,
                      headers={"Authorization": f"Bearer {NO_ACCESS_TOKEN}", "Content-Type": "application/json"})
    assert r.status_code == 403, r.text
    assert "SubjectAccessReview denied" in r.text, r.text


NS = "demo-rhoai-secured"
SECRET = "llama3auth-llama3-sa"  # $TOKEN_NAME-$MODEL_SERVER-sa, as the seed's `kubectl patch secret` names it
LABELS = {"authorino.kuadrant.io/managed-by": "authorino", "opendatahub.io/dashboard": "true"}
KEY = "ndyBzreUzF4zqDQsqSPMHkRhriEOtcRx"
NEW_KEY = "q8Jd0vWm3KcT7yXbR2nLf5HsA9pGzE1u"  # same format/length, as the seed's NOTE asks


@pytest.fixture
def key_gate(run_modelgate, start_modelgate, litellm_mock, tmp_path):
    stub = KubeApiStub(token="gateway-sa-token", bookmark_every=0.5)
    try:
        stub.put(NS, SECRET, KEY, LABELS)
        stub.put(NS, "unlabelled", "not-a-key-0000000000000000000000", {"app": "x"})
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(stub.kubeconfig(NS))
        config, report = import_config(run_modelgate, ["derived/000-inferenceservice.yaml",
                                                       "derived/000-authconfig-apikey.yaml"],
                                       "--upstream", f"llama3={litellm_mock.url}")
        assert "opendatahub.io/dashboard" in config and "auth.api_keys.kubernetes" in report, config + report
        yield stub, serve_imported(run_modelgate, start_modelgate, tmp_path, config, {"KUBECONFIG": str(kubeconfig)})
    finally:
        stub.stop()


def complete(mg, token):
    return requests.post(f"{mg.url}/v1/completions", json=WITH_TOKEN, timeout=30,
                         headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})


def test_with_token_200_completion(key_gate):
    _, mg = key_gate
    r = complete(mg, KEY)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["object"], body["model"]) == ("text_completion", "llama3")
    assert body["choices"][0]["text"]
    r = complete(mg, "not-a-key-0000000000000000000000")  # an unlabelled Secret is no key
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith('Bearer realm="kubernetes-user"')


def test_rotated_token_works(key_gate):
    stub, mg = key_gate
    assert complete(mg, KEY).status_code == 200
    # kubectl patch secret $TOKEN_NAME-$MODEL_SERVER-sa --type=json -p '[{"op":"replace","path":"/data/api_key",...}]'
    stub.patch_data(NS, SECRET, "api_key", NEW_KEY)
    end = time.monotonic() + 5
    while complete(mg, NEW_KEY).status_code != 200:
        assert time.monotonic() < end, "the rotated key was not accepted within 5 s"
        time.sleep(0.1)
    r = complete(mg, NEW_KEY)
    assert r.status_code == 200, r.text
    assert complete(mg, KEY).status_code == 401  # the replaced key stops working (no rotation grace imported)


def test_rotated_service_account_token_200(gate):
    # The rotation itself (patching the token Secret) is the API server's, seen through TokenReview.
    r = requests.post(f"{gate.url}/v1/completions", json=WITH_TOKEN, timeout=30,
                      headers={"Authorization": f"Bearer {ROTATED_TOKEN}", "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
