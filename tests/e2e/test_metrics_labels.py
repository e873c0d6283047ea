"""/metrics carries no label value taken from unauthenticated input: requests
for random unknown model names (with and without a credential, with `"`,
newlines, unicode, very long names) add no series, every unknown model is
counted under one fixed `model="(unknown)"` value, and the exposition still
parses with a real Prometheus text parser (prometheus_client)."""

from __future__ import annotations

import random
import socket
import string
import time
from urllib.parse import quote

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from gw import bearer, builtin_iris, create_key, gateway_config, model, raw_request


@pytest.fixture
def gateway(tmp_path, run_modelgate, start_modelgate):
    keys = tmp_path / "keys.json"
    mg = start_modelgate(gateway_config(keys, model("iris", None, builtin=builtin_iris(tmp_path))))
    mg.key = create_key(run_modelgate, keys, "iris-user", "*")
    mg.wait_ready(lambda: requests.get(f"{mg.url}/v2/models/iris/ready", headers=bearer(mg.key), timeout=5).status_code == 200, 5, "key")
    return mg


def scrape(mg) -> tuple[str, list]:
    text = requests.get(f"{mg.admin_url}/metrics", timeout=5).text
    samples = [s for fam in text_string_to_metric_families(text) for s in fam.samples]
    return text, samples


def raw_get(addr: str, target: bytes, headers: bytes = b"") -> bytes:
    """One request with the target bytes exactly as given; returns the status line."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: " + addr.encode() + b"\r\n" + headers + b"Connection: close\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n", 1)[0]


def hostile_names(seed: int) -> list[str]:
    rnd = random.Random(seed)
    odd = ['a"b', "x\ny", "back\\slash", "\U0001F600", "L" * 5000, "} 1\nfake_metric 2", "", ".", "%"]
    names = [f"{n}{seed}" for n in odd] + odd
    names += ["".join(rnd.choices(string.ascii_letters + string.digits + '"\\{}=,', k=rnd.randint(1, 40))) for _ in range(150)]
    return names


def send_unknown(mg, seed: int) -> int:
    """Requests for unknown models, without and with a credential; returns how many."""
    auth = f"Authorization: Bearer {mg.key}\r\n".encode()
    sent = 0
    for name in hostile_names(seed):
        quoted = quote(name, safe="")
        for headers in (b"", auth):
            raw_get(mg.listen, f"/v2/models/{quoted}/ready".encode(), headers)
        requests.post(f"{mg.url}/v2/models/{quoted}/infer", json={}, timeout=5)
        requests.post(f"{mg.url}/v2/models/{quoted}/infer", json={}, headers=bearer(mg.key), timeout=5)
        sent += 4
    # Raw bytes a client may put in the target itself: a quote, a backslash, UTF-8.
    for target in (f'/v2/models/a"b{seed}/ready', f"/v2/models/a\\b{seed}/ready", f"/v2/models/\u00e9\U0001F600{seed}/ready"):
        raw_get(mg.listen, target.encode())
        raw_get(mg.listen, target.encode(), auth)
        sent += 2
    return sent


def label_sets(samples) -> set:
    return {frozenset(s.labels.items()) | {("__name__", s.name)} for s in samples}


def test_unknown_models_add_no_series_and_metrics_still_parse(gateway):
    mg = gateway
    assert requests.post(f"{mg.url}/v2/models/iris/infer", headers=bearer(mg.key), timeout=5,
                         json={"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}).status_code == 200
    send_unknown(mg, 1)
    _, first = scrape(mg)
    sent = send_unknown(mg, 2)  # other names, same kinds: no new series
    text, after = scrape(mg)
    assert label_sets(after) == label_sets(first), sorted(label_sets(after) ^ label_sets(first))[:5]
    assert len(after) == len(first)
    models = {s.labels.get("model") for s in after if "model" in s.labels}
    assert models <= {"iris", "", "(unknown)"}, models
    def count(samples, model=None):
        return sum(s.value for s in samples if s.name == "modelgate_requests_total"
                   and (model is None or s.labels.get("model") == model))
    assert count(after) - count(first) == sent  # every request counted once...
    # ...under "(unknown)", or "" when refused before routing (an encoded '\\').
    assert count(after, "(unknown)") - count(first, "(unknown)") >= sent // 2
    assert 'a"b' not in text and "LLLLLLLL" not in text and "fake_metric" not in text


def test_a_configured_model_keeps_its_own_label(gateway):
    mg = gateway

    def iris(status: str) -> float:
        return sum(s.value for s in scrape(mg)[1] if s.name == "modelgate_requests_total"
                   and s.labels.get("model") == "iris" and s.labels["status"] == status)

    before = iris("401"), iris("200")
    requests.get(f"{mg.url}/v2/models/iris/ready", timeout=5)
    requests.get(f"{mg.url}/v2/models/iris/ready", headers=bearer(mg.key), timeout=5)
    assert (iris("401"), iris("200")) == (before[0] + 1, before[1] + 1)


def test_raw_request_helper_target_is_verbatim(gateway):
    """The raw target with `"` reaches modelgate (not refused by the client)."""
    status, _, _ = raw_request(gateway.listen, "GET", '/v2/models/a"b/ready')
    assert status in (400, 401, 404)


def test_a_reload_drops_the_series_of_a_removed_model(tmp_path, run_modelgate, start_modelgate, free_port):
    """Series of a model the reloaded configuration lacks leave /metrics;
    the other models keep their counts."""
    keys = tmp_path / "keys.json"
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: each call is a 502

    def config(names):
        return gateway_config(keys, *(model(n, None, dead) for n in names))

    mg = start_modelgate(config(["keep", "gone"]))
    key = create_key(run_modelgate, keys, "u", "*")
    mg.wait_ready(lambda: requests.get(f"{mg.url}/v2/models/keep/ready", headers=bearer(key),
                                       timeout=5).status_code != 401, 5, "key")

    def requests_of(name: str) -> float:
        return sum(s.value for s in scrape(mg)[1] if s.name == "modelgate_requests_total"
                   and s.labels.get("model") == name)

    for name in ("keep", "gone", "keep"):
        requests.get(f"{mg.url}/v2/models/{name}/ready", headers=bearer(key), timeout=5)
    kept = requests_of("keep")
    text, _ = scrape(mg)
    assert 'model="gone"' in text and kept >= 2, text
    assert 'modelgate_upstream_errors_total{model="gone"' in text, text

    mark = len(mg.stderr())
    running = mg.config_path.read_text()
    gone = model("gone", None, dead)
    assert gone in running
    mg.config_path.write_text(running.replace(gone, ""))
    mg.reload()
    deadline = time.monotonic() + 10
    while "configuration reloaded" not in mg.stderr()[mark:] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "configuration reloaded" in mg.stderr()[mark:], mg.stderr()[mark:]
    text, samples = scrape(mg)
    ours = ("modelgate_requests", "modelgate_request_duration_seconds",
            "modelgate_upstream_duration_seconds", "modelgate_upstream_errors")
    left = [s for s in samples if s.name.startswith(ours) and s.labels.get("model") == "gone"]
    assert left == [], text
    assert requests_of("keep") == kept, text
    requests.get(f"{mg.url}/v2/models/keep/ready", headers=bearer(key), timeout=5)
    assert requests_of("keep") == kept + 1
