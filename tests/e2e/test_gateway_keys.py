"""API keys live: created, rotated with a grace period, revoked and expired
while modelgate runs; configuration reloads keep the old config on error."""

from __future__ import annotations

import json
import os
import time

import requests

from gw import V2_BODY, bearer, create_key, gateway_config, model

def config(keys, url: str) -> str:
    return gateway_config(keys, model("iris", "v2", url))


def status(mg, key, model="iris"):
    return requests.post(f"{mg.url}/v2/models/{model}/infer", json=V2_BODY, headers=bearer(key), timeout=10).status_code


def wait_status(mg, key, want, timeout=5.0, model="iris"):
    deadline = time.monotonic() + timeout
    while True:
        s = status(mg, key, model)
        if s == want or time.monotonic() > deadline:
            assert s == want, f"expected {want}, got {s}"
            return
        time.sleep(0.1)


def test_keys_are_picked_up_rotated_and_revoked_live(tmp_path, run_modelgate, start_modelgate, mlserver_iris):
    keys = tmp_path / "keys.json"
    mg = start_modelgate(config(keys, mlserver_iris.rest_url))
    # The key file did not exist at start; a key created now works within a second or two.
    k1 = create_key(run_modelgate, keys, "svc")
    wait_status(mg, k1, 200)

    r = run_modelgate(["keys", "--file", keys, "rotate", "svc", "--grace", "3s"])
    assert r.returncode == 0, r.stderr
    k2 = r.stdout.strip()
    wait_status(mg, k2, 200)
    assert status(mg, k1) == 200, "the old key works during the grace period"
    wait_status(mg, k1, 401, timeout=6)
    assert status(mg, k2) == 200

    listed = json.loads(run_modelgate(["keys", "--file", keys, "list", "--json"]).stdout)
    assert [(k["name"], k["status"]) for k in listed] == [("svc", "active")]
    assert k2 not in json.dumps(listed) and k2.rsplit("_", 1)[1] not in keys.read_text()

    assert run_modelgate(["keys", "--file", keys, "revoke", "svc"]).returncode == 0
    wait_status(mg, k2, 401)
    assert 'modelgate_keystore_reloads_total{result="ok"}' in requests.get(f"{mg.admin_url}/metrics", timeout=5).text


def test_no_request_fails_while_keys_change(tmp_path, run_modelgate, start_modelgate, mlserver_iris):
    """Rewriting the key file (atomic rename) under load never drops a request
    with a valid key."""
    keys = tmp_path / "keys.json"
    stable = create_key(run_modelgate, keys, "stable")
    mg = start_modelgate(config(keys, mlserver_iris.rest_url))
    session = requests.Session()
    statuses = []
    for i in range(30):
        create_key(run_modelgate, keys, f"churn-{i}")
        statuses.append(session.post(f"{mg.url}/v2/models/iris/infer", json=V2_BODY, headers=bearer(stable), timeout=10).status_code)
    assert set(statuses) == {200}


def test_expired_key_is_refused(tmp_path, run_modelgate, start_modelgate, mlserver_iris):
    keys = tmp_path / "keys.json"
    short = create_key(run_modelgate, keys, "short", expires="2s")
    mg = start_modelgate(config(keys, mlserver_iris.rest_url))
    assert status(mg, short) == 200
    wait_status(mg, short, 401, timeout=5)
    r = requests.post(f"{mg.url}/v2/models/iris/infer", json=V2_BODY, headers=bearer(short), timeout=10)
    assert r.headers["x-ext-auth-reason"] == "the API Key provided is invalid"


def test_corrupt_key_file_keeps_old_keys(tmp_path, run_modelgate, start_modelgate, mlserver_iris):
    keys = tmp_path / "keys.json"
    k = create_key(run_modelgate, keys, "a")
    mg = start_modelgate(config(keys, mlserver_iris.rest_url))
    mark = len(mg.stderr())
    # Replaced in one step (as Kubernetes swaps a Secret's files): an in-place
    # write could be read half-done (empty, then cut off) and counted twice.
    bad = tmp_path / "keys.json.new"
    bad.write_text('{"version": 1, "keys": [')
    os.replace(bad, keys)
    deadline = time.monotonic() + 5
    while "API-key store reload rejected" not in mg.stderr()[mark:] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "API-key store reload rejected" in mg.stderr()[mark:]
    assert status(mg, k) == 200
    assert 'modelgate_keystore_reloads_total{result="error"} 1' in requests.get(f"{mg.admin_url}/metrics", timeout=5).text


def test_config_reload_applies_and_rejects(tmp_path, run_modelgate, start_modelgate, mlserver_iris, kserve_iris):
    keys = tmp_path / "keys.json"
    k = create_key(run_modelgate, keys, "a")
    mg = start_modelgate(config(keys, mlserver_iris.rest_url))
    text = mg.config_path.read_text()
    assert status(mg, k, "sklearn-iris") == 404
    # Add a model and reload with SIGHUP.
    mg.config_path.write_text(text + f'  - name: sklearn-iris\n    protocols: [v2]\n    upstream: {{url: "{kserve_iris.rest_url}"}}\n')
    mg.reload()
    wait_status(mg, k, 200, model="sklearn-iris")
    # An invalid file is refused with a log line naming the key; the running config stays.
    mark = len(mg.stderr())
    mg.config_path.write_text(text.replace("protocols: [v2]", "protocols: [v9]"))
    deadline = time.monotonic() + 5
    while "configuration reload rejected" not in mg.stderr()[mark:] and time.monotonic() < deadline:
        time.sleep(0.1)
    err = mg.stderr()[mark:]
    assert "configuration reload rejected" in err and "models[0].protocols[0]" in err
    assert status(mg, k, "sklearn-iris") == 200
    assert status(mg, k, "iris") == 200


def test_validate_reports_every_error(tmp_path, run_modelgate):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("""
listen: {address: "0.0.0.0:8080", max_body: 1}
models:
  - name: iris
    upstream: {url: "http://127.0.0.1:1", timout: 5s}
  - name: "a/b"
    builtin: {dir: x}
loging: {}
""")
    r = run_modelgate(["validate", "--config", cfg])
    assert r.returncode == 2
    for needle in ["listen.max_body", "models[0].upstream.timout", "did you mean `timeout`", "models[1].name", "loging", "did you mean `log`"]:
        assert needle in r.stderr, (needle, r.stderr)
    ok = tmp_path / "ok.yaml"
    ok.write_text('listen: {address: "127.0.0.1:0"}\nmodels: [{name: iris, upstream: {url: "http://127.0.0.1:1"}}]\n')
    r = run_modelgate(["validate", "--config", ok])
    assert r.returncode == 0 and "OK" in r.stdout


def test_serve_refuses_invalid_config(tmp_path, run_modelgate):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text('listen: {address: "127.0.0.1:0"}\nmodels: [{name: iris, upstream: {url: "ftp://x"}}]\n')
    r = run_modelgate(["serve", "--config", cfg], timeout=10)
    assert r.returncode == 2
    assert "models[0].upstream.url" in r.stderr and "fix:" in r.stderr
