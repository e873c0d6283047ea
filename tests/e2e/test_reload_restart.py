"""A reload that changes a key read only at start (listener settings such as
`trusted_proxies` and `istio_compat`, `log.level`, …) warns with the key's
name, sets `modelgate_config_restart_required`, keeps the running value, and
`modelgate validate --running` lists the same keys (issue 9 item 9)."""

from __future__ import annotations

import re
import time

import requests

from gw import V2_BODY

CONFIG = """
listen: {address: "__LISTEN__"}
admin: {address: "__ADMIN__"}
models:
  - name: iris
    protocols: [v2]
    upstream: {url: "http://127.0.0.1:9"}
"""


def gauge(mg) -> float:
    text = requests.get(f"{mg.admin_url}/metrics", timeout=5).text
    m = re.search(r"^modelgate_config_restart_required (\S+)$", text, re.M)
    assert m, text
    return float(m.group(1))


def wait_for(mg, needle: str, mark: int) -> str:
    deadline = time.monotonic() + 10
    while needle not in mg.stderr()[mark:] and time.monotonic() < deadline:
        time.sleep(0.1)
    return mg.stderr()[mark:]


def test_reload_of_pinned_keys_says_restart(tmp_path, start_modelgate, run_modelgate):
    mg = start_modelgate(CONFIG)
    original = mg.config_path.read_text()
    started = tmp_path / "started.yaml"
    started.write_text(original)
    assert gauge(mg) == 0
    anon = requests.post(f"{mg.url}/v2/models/iris/infer", json=V2_BODY, timeout=10)
    assert anon.status_code == 401

    changed = re.sub(
        r'listen: \{address: "([^"]+)"\}',
        r'listen: {address: "\1", trusted_proxies: [10.0.0.0/8], istio_compat: true}',
        original,
    ) + "log: {level: debug}\n"
    assert changed != original
    mark = len(mg.stderr())
    mg.config_path.write_text(changed)
    mg.reload()
    err = wait_for(mg, "configuration reloaded", mark)
    for key in ["listen[0].trusted_proxies", "listen[0].istio_compat", "log.level"]:
        assert f"{key} changed, but it is read only at start: restart modelgate" in err, err
    assert gauge(mg) == 3
    # The running value stays: without a credential it is still 401, not an
    # istio_compat anonymous evaluation.
    anon = requests.post(f"{mg.url}/v2/models/iris/infer", json=V2_BODY, timeout=10)
    assert anon.status_code == 401

    r = run_modelgate(["validate", "--config", mg.config_path, "--running", started])
    assert r.returncode == 0, r.stderr
    for key in ["listen[0].trusted_proxies", "listen[0].istio_compat", "log.level"]:
        assert f"needs a restart: {key}" in r.stdout, r.stdout
    r = run_modelgate(["validate", "--config", started, "--running", started])
    assert r.returncode == 0 and "a reload applies every change" in r.stdout, r.stdout

    # Back to what runs: nothing pending.
    mark = len(mg.stderr())
    mg.config_path.write_text(original)
    mg.reload()
    wait_for(mg, "configuration reloaded", mark)
    deadline = time.monotonic() + 5
    while gauge(mg) != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gauge(mg) == 0
