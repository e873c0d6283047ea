"""API keys from labelled Kubernetes Secrets (issue 12, Authorino's model;
seed 000 rotates by patching the Secret), watched live by the real binary.

There is no kube-apiserver here: the Secret list + watch is served by
tests/e2e/kube_api_stub.py (a labelled stand-in with the API server's JSON
shapes, resourceVersions, bookmarks, 410 Gone and dropped connections), and
modelgate reaches it through a kubeconfig file, as it would a real cluster.
The model behind the gateway is a real MLServer.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
import requests

from gw import V2_BODY, bearer, create_key
from kube_api_stub import KubeApiStub

NS = "demo-rhoai-secured"
LABELS = {"authorino.kuadrant.io/managed-by": "authorino"}
CONFIG = """
listen: {{address: "__LISTEN__"}}
admin: {{address: "__ADMIN__"}}
auth:
  api_keys:
    file: "{keys}"
    kubernetes:
      kubeconfig: "{kubeconfig}"
      selector: {{matchLabels: {{authorino.kuadrant.io/managed-by: authorino}}}}
      key_field: {field}
      default_models: [iris]
      rotation_grace: {grace}
models:
  - name: iris
    protocols: [v2]
    upstream: {{url: "{url}"}}
  - name: other
    protocols: [v2]
    upstream: {{url: "{url}"}}
"""


@pytest.fixture
def kube_api():
    stub = KubeApiStub(token="gateway-sa-token", bookmark_every=0.5)
    yield stub
    stub.stop()


def start(start_modelgate, tmp_path, stub, upstream, grace="0s", field="api_key"):
    kc = tmp_path / "kubeconfig"
    kc.write_text(stub.kubeconfig(NS))
    text = CONFIG.format(keys=tmp_path / "keys.json", kubeconfig=kc, url=upstream, grace=grace, field=field)
    return start_modelgate(text, env={"KUBECONFIG": "/nonexistent"})


def status(mg, key, model="iris", session=requests):
    return session.post(f"{mg.url}/v2/models/{model}/infer", json=V2_BODY, headers=bearer(key), timeout=10).status_code


def wait_status(mg, key, want, timeout=3.0, model="iris"):
    start = time.monotonic()
    while True:
        s = status(mg, key, model)
        if s == want:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            pytest.fail(f"expected {want} within {timeout}s, still {s}")
        time.sleep(0.02)


def metric(mg, name) -> float:
    text = requests.get(f"{mg.admin_url}/metrics", timeout=5).text
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


def wait_metric(mg, name, pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        v = metric(mg, name)
        if pred(v):
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"{name} = {v} after {timeout}s")
        time.sleep(0.05)


def test_secret_keys_created_patched_deleted_live(tmp_path, kube_api, start_modelgate, run_modelgate, mlserver_iris):
    kube_api.put(NS, "llama3auth-iris-sa", "ndyBzreUzF4zqDQsqSPMHkRhriEOtcRx", LABELS,
                 {"modelgate.io/name": "team-a", "modelgate.io/models": "iris"})
    kube_api.put(NS, "unlabelled", "not-a-key-0000000000000000000000", {"app": "x"})
    kube_api.put("other-ns", "elsewhere", "other-namespace-key-000000000000", LABELS)
    file_key = create_key(run_modelgate, tmp_path / "keys.json", "file-svc", models="iris")
    mg = start(start_modelgate, tmp_path, kube_api, mlserver_iris.rest_url)

    # Listed before ready: works at once, next to the key file's keys.
    assert status(mg, "ndyBzreUzF4zqDQsqSPMHkRhriEOtcRx") == 200
    assert status(mg, file_key) == 200
    assert status(mg, "ndyBzreUzF4zqDQsqSPMHkRhriEOtcRx", model="other") == 403, "grant from the annotation"
    assert status(mg, "not-a-key-0000000000000000000000") == 401, "label selector is honoured"
    assert status(mg, "other-namespace-key-000000000000") == 401, "only the context's namespace is watched"
    assert any(r.startswith("WATCH ") and "allowWatchBookmarks=true" in r for r in kube_api.requests)

    # Create: a plain Authorino Secret (no annotations) works within a second,
    # as its own name, with the configured default grants.
    kube_api.put(NS, "api-key-2", "second-key-abcdefghijklmnopqrstuv", LABELS)
    took = wait_status(mg, "second-key-abcdefghijklmnopqrstuv", 200, timeout=1.0)
    print(f"created Secret key accepted after {took * 1000:.0f} ms")
    assert status(mg, "second-key-abcdefghijklmnopqrstuv", model="other") == 403

    # Rotate by patching data.api_key (seed 000): new works, old refused (no grace).
    kube_api.patch_data(NS, "llama3auth-iris-sa", "api_key", "rotated-key-abcdefghijklmnopqrstu")
    wait_status(mg, "rotated-key-abcdefghijklmnopqrstu", 200, timeout=1.0)
    assert status(mg, "ndyBzreUzF4zqDQsqSPMHkRhriEOtcRx") == 401

    # Delete: refused within a second.
    kube_api.delete(NS, "api-key-2")
    wait_status(mg, "second-key-abcdefghijklmnopqrstuv", 401, timeout=1.0)
    assert status(mg, "rotated-key-abcdefghijklmnopqrstu") == 200

    # A Secret with a bad key is skipped and said so; the key never reaches the log.
    kube_api.put(NS, "broken", "has a space", LABELS)
    wait_metric(mg, "modelgate_kube_secrets_skipped_total", lambda v: v >= 1)
    assert metric(mg, "modelgate_kube_watch_up") == 1
    assert metric(mg, "modelgate_kube_secret_keys") == 1
    log = mg.log() + mg.stderr()
    assert "Secret selected for API keys gives no key" in log
    for secret in ("ndyBzreUzF4zqDQsqSPMHkRhriEOtcRx", "rotated-key-abcdefghijklmnopqrstu", "has a space"):
        assert secret not in log


def test_broken_watch_keeps_the_last_good_keys(tmp_path, kube_api, start_modelgate, mlserver_iris):
    kube_api.put(NS, "k1", "first-key-abcdefghijklmnopqrstuvw", LABELS)
    mg = start(start_modelgate, tmp_path, kube_api, mlserver_iris.rest_url)
    assert status(mg, "first-key-abcdefghijklmnopqrstuvw") == 200
    assert metric(mg, "modelgate_kube_watch_up") == 1

    kube_api.set_down(True)  # open watches cut, every new connection closed unanswered
    wait_metric(mg, "modelgate_kube_watch_up", lambda v: v == 0)
    errors = wait_metric(mg, "modelgate_kube_watch_errors_total", lambda v: v >= 2)
    assert status(mg, "first-key-abcdefghijklmnopqrstuvw") == 200, "last good set stays in force"
    assert "Secret watch broken; the last good API keys stay in force" in mg.stderr()

    # Changes made while the watch was down arrive with the relist.
    kube_api.put(NS, "k2", "second-key-bcdefghijklmnopqrstuvw", LABELS)
    kube_api.set_down(False)
    wait_metric(mg, "modelgate_kube_watch_up", lambda v: v == 1)
    wait_status(mg, "second-key-bcdefghijklmnopqrstuvw", 200, timeout=1.0)
    assert metric(mg, "modelgate_kube_watch_errors_total") >= errors


def test_dropped_connection_and_410_gone_relist(tmp_path, kube_api, start_modelgate, mlserver_iris):
    kube_api.put(NS, "k1", "first-key-abcdefghijklmnopqrstuvw", LABELS)
    mg = start(start_modelgate, tmp_path, kube_api, mlserver_iris.rest_url)
    assert status(mg, "first-key-abcdefghijklmnopqrstuvw") == 200

    # A watch stream cut mid-way: the watch resumes from its last
    # resourceVersion (no relist), and what happened meanwhile is replayed.
    lists, watches = kube_api.count("LIST "), kube_api.count("WATCH ")
    kube_api.drop_connections()
    kube_api.delete(NS, "k1")
    wait_status(mg, "first-key-abcdefghijklmnopqrstuvw", 401)
    assert kube_api.count("WATCH ") > watches and kube_api.count("LIST ") == lists
    assert metric(mg, "modelgate_kube_watch_up") == 1

    # 410 Gone (expired resourceVersion): relist, no error, changes still arrive.
    lists = kube_api.count("LIST ")
    errors = metric(mg, "modelgate_kube_watch_errors_total")
    kube_api.expire()
    wait_metric(mg, "modelgate_kube_watch_relists_total", lambda v: v >= 1)
    kube_api.put(NS, "k3", "third-key-abcdefghijklmnopqrstuvw", LABELS)
    wait_status(mg, "third-key-abcdefghijklmnopqrstuvw", 200)
    assert kube_api.count("LIST ") > lists
    assert metric(mg, "modelgate_kube_watch_errors_total") == errors
    assert metric(mg, "modelgate_kube_watch_up") == 1


def test_seed000_rotation_by_patch_drops_no_request_under_load(tmp_path, kube_api, start_modelgate, mlserver_iris):
    """Seed 000: `kubectl patch secret ... /data/token` rotates the key. With a
    rotation grace the old key keeps working until clients have moved; clients
    switch once they have seen the new key work. Not one request fails."""
    old, new = "seed000-old-token-abcdefghijklmno", "seed000-new-token-abcdefghijklmno"
    kube_api.put(NS, "llama3auth-llama3-sa", old, LABELS, field="token")
    mg = start(start_modelgate, tmp_path, kube_api, mlserver_iris.rest_url, grace="4s", field="token")
    current = {"key": old}
    results: list[tuple[str, int]] = []
    stop = threading.Event()

    def client():
        s = requests.Session()
        while not stop.is_set():
            key = current["key"]
            results.append((key, status(mg, key, session=s)))

    workers = [threading.Thread(target=client) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        time.sleep(0.5)
        kube_api.patch_data(NS, "llama3auth-llama3-sa", "token", new)
        wait_status(mg, new, 200, timeout=1.0)  # a client sees the new key work ...
        current["key"] = new  # ... and all switch
        time.sleep(0.5)
    finally:
        stop.set()
        for w in workers:
            w.join()
    failures = [r for r in results if r[1] != 200]
    used = {k for k, _ in results}
    print(f"{len(results)} requests across the rotation, {len(failures)} failed")
    assert used == {old, new} and len(results) >= 20
    assert failures == []
    # The grace ends: the old key is refused from then on.
    wait_status(mg, old, 401, timeout=8.0)
    assert status(mg, new) == 200
