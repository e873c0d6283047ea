"""Kubernetes SubjectAccessReview (issue 15 item 3), seed 001 style: what
Open Data Hub's `enable-auth` AuthConfig does — kubernetesTokenReview, then
kubernetesSubjectAccessReview `get` on `inferenceservices.serving.kserve.io`
`authorino-test/iris` for the TokenReview username — through the real binary
in front of real MLServer (fixture mlserver_iris), with the seed's V2 body.

No kube-apiserver can run here: tests/e2e/kube_stub.py is a labelled
STAND-IN speaking the real authentication.k8s.io/v1 and
authorization.k8s.io/v1 JSON shapes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import time

import requests

from seed_import import SEEDS

BODY = (SEEDS / "iris-input-v2.json").read_bytes()
GATEWAY_TOKEN = "modelgate-own-token"
RIGHT = "right-person-token"
WRONG = "wrong-person-token"
AUDIENCE = "https://kubernetes.default.svc"
TOKENS = {
    RIGHT: {"username": "system:serviceaccount:authorino-test:right-person",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:authorino-test"], "audiences": [AUDIENCE]},
    WRONG: {"username": "system:serviceaccount:authorino-test:wrong-person",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:authorino-test"], "audiences": [AUDIENCE]},
}
# The RBAC the seed's cluster has: right-person may `get` the iris InferenceService.
ACCESS = [{"user": "system:serviceaccount:authorino-test:right-person", "namespace": "authorino-test",
           "verb": "get", "group": "serving.kserve.io", "resource": "inferenceservices", "name": "iris"}]


def gateway(start_modelgate, stub, mlserver, tmp_path):
    (tmp_path / "gw-token").write_text(GATEWAY_TOKEN)
    access = "{namespace: authorino-test, verb: get, group: serving.kserve.io, resource: inferenceservices}"
    return start_modelgate(f"""
listen: {{address: __LISTEN__}}
admin: {{address: __ADMIN__}}
models:
  - {{name: iris, upstream: {{url: "{mlserver.rest_url}"}}, kubernetes_access: {access}}}
  - name: iris2
    upstream: {{url: "{mlserver.rest_url}"}}
    kubernetes_access: {{namespace: authorino-test, name: iris2}}
auth:
  realm: modelgate-test
  kubernetes:
    token_review: {{api_server: "{stub.url}", token_file: "{tmp_path / 'gw-token'}", audiences: ["{AUDIENCE}"], cache_ttl: 60s}}
policies:
  - name: any-verified-identity
    rules:
      - from: [{{source: {{requestPrincipals: ["*"]}}}}]
""")


def infer(mg, token, model="iris"):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(f"{mg.url}/v2/models/{model}/infer", data=BODY, headers=headers, timeout=30)


def counts(stub) -> dict:
    return requests.get(f"{stub.url}/stub/counts", timeout=5).json()


def test_allowed_denied_and_unreachable(start_modelgate, start_kube_stub, mlserver_iris, tmp_path):
    stub = start_kube_stub(TOKENS, GATEWAY_TOKEN, access=ACCESS)
    mg = gateway(start_modelgate, stub, mlserver_iris, tmp_path)
    assert infer(mg, None).status_code == 401
    # Allowed: the stand-in's RBAC lets right-person get iris.
    r = infer(mg, RIGHT)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    # MLServer answers shape [2, 1] where the seed's KServe answers [2]; the labels are the seed's.
    assert (r.json()["model_name"], out["data"]) == ("iris", [1, 1])
    # Denied: wrong-person is authenticated but RBAC does not allow it.
    mark = mg.log_mark()
    r = infer(mg, WRONG)
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "Kubernetes SubjectAccessReview denied access to this model"
    # The record names the review's refusal, not the ALLOW policy before it.
    deadline = time.monotonic() + 5
    while not (refused := [d for d in mg.decisions(mark) if d["status"] == 403]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert refused and refused[-1]["basis"] == "access_review" and "policy" not in refused[-1], refused
    # The review carried the enable-auth attributes and the TokenReview username.
    log = stub.log()
    assert log.count("POST /apis/authorization.k8s.io/v1/subjectaccessreviews") == 2
    # Cached: repeating the allowed request asks nobody.
    before = counts(stub)
    assert infer(mg, RIGHT).status_code == 200
    assert counts(stub) == before
    # Unreachable: the API server goes away. The cached TokenReview verdict
    # still authenticates, but iris2's review cannot be made: fail closed.
    stub.stop()
    r = infer(mg, RIGHT, "iris2")
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "Kubernetes SubjectAccessReview is unavailable"
    assert infer(mg, RIGHT).status_code == 200, "a cached allow still holds"
    metrics = requests.get(f"{mg.admin_url}/metrics", timeout=5).text
    assert 'source="subjectaccessreview",result="error"' in metrics


def test_fifty_concurrent_identical_requests_make_one_call_each(start_modelgate, start_kube_stub, mlserver_iris,
                                                               tmp_path):
    # The stand-in holds each review 0.5 s so the 50 requests overlap.
    stub = start_kube_stub(TOKENS, GATEWAY_TOKEN, access=ACCESS, sar_delay=0.5)
    mg = gateway(start_modelgate, stub, mlserver_iris, tmp_path)
    with ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(lambda _: infer(mg, RIGHT).status_code, range(50)))
    assert statuses == [200] * 50
    assert counts(stub) == {"tokenreviews": 1, "subjectaccessreviews": 1}
