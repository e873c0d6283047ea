"""Helpers for end-to-end tests that put modelgate in front of real peers."""

from __future__ import annotations

import http.client
import re
import socket
import time
from pathlib import Path

import requests

from peers import IRIS_ROWS

ROOT = Path(__file__).resolve().parents[2]

V2_BODY = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": IRIS_ROWS}]}
V1_BODY = {"instances": IRIS_ROWS}

# The LLM tests' chat message, and the rate-limit step's input estimate for
# it: ceil(chars / 4) + 4 per message (max_tokens is added for the total).
PROMPT = "Say something about Kubernetes."
MSG = [{"role": "user", "content": PROMPT}]
INPUT_ESTIMATE = -(-len(PROMPT) // 4) + 4


def model(name: str, protocols: str | None = "v2", url: str | None = None, grpc_url: str | None = None,
          **fields: str) -> str:
    """One `models:` entry of a gateway config: its protocols (`"v2, grpc"`;
    None leaves the key out), its upstream, and `fields`, more of its keys
    each given as YAML text (`cost="{input_per_1k: 1}"`)."""
    lines = [f"  - name: {name}"]
    if protocols:
        lines.append(f"    protocols: [{protocols}]")
    if grpc_url:
        lines += ["    upstream:", f'      url: "{url}"', f'      grpc_url: "{grpc_url}"']
    elif url:
        lines.append(f'    upstream: {{url: "{url}"}}')
    lines += [f"    {key}: {value}" for key, value in fields.items()]
    return "\n".join(lines) + "\n"


def builtin_iris(tmp_path: Path) -> str:
    """The bundled iris ONNX model copied to a model directory under
    `tmp_path`, as the value of a model's `builtin:` key."""
    model_dir = tmp_path / "models" / "iris"
    model_dir.mkdir(parents=True)
    (model_dir / "model.onnx").write_bytes((ROOT / "examples/models/iris/model.onnx").read_bytes())
    return f'{{dir: "{model_dir}"}}'


def gateway_config(keys: Path, *models: str, extra: str = "", admin: str = "") -> str:
    """A gateway config for `start_modelgate`: listen and admin on the ports it
    picks, API keys from the file `keys`, the `models` entries (see `model`),
    then `extra`, more top-level YAML (`limits:`, `policies:`). `admin`: more
    keys of the admin block (`keys: [limited]`)."""
    admin_block = f'{{address: "__ADMIN__", {admin}}}' if admin else '{address: "__ADMIN__"}'
    head = (f'listen: {{address: "__LISTEN__"}}\nadmin: {admin_block}\n'
            f'auth:\n  api_keys: {{file: "{keys}"}}\nmodels:\n')
    return head + "".join(models) + extra


def create_key(run_modelgate, keys_file: Path, name: str, models: str = "*", expires: str | None = None,
               extra: tuple = ()) -> str:
    """`modelgate keys create`; `extra` adds flags such as `--tpm 2000`."""
    args = ["keys", "--file", str(keys_file), "create", "--name", name, "--models", models]
    if expires:
        args += ["--expires", expires]
    args += list(extra)
    r = run_modelgate(args)
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip()
    assert key.startswith("mgk_") and "\n" not in key
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def raw_request(addr: str, method: str, target: str, headers: dict[str, str] | None = None,
                body: bytes = b"", timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send a request with the target exactly as given (no client-side
    normalisation), over HTTP/1.1; returns status, headers, body."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
    hdrs = {"Host": addr, **(headers or {})}
    if body:
        hdrs.setdefault("Content-Length", str(len(body)))
    for k, v in hdrs.items():
        conn.putheader(k, v)
    conn.endheaders(body or None)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def silent_server() -> tuple[socket.socket, str]:
    """A TCP listener that accepts connections and never answers (to test
    upstream timeouts). Close the socket when done."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    return s, f"127.0.0.1:{s.getsockname()[1]}"


def chat_records(mg, mark: int, n: int) -> list[dict]:
    """The chat decision records since `mark`, once there are `n` (a stream's
    record is written when its body ends, just after the client's last read)."""
    deadline = time.monotonic() + 5
    while True:
        recs = [d for d in mg.decisions(mark) if d.get("path") == "/v1/chat/completions"]
        if len(recs) >= n or time.monotonic() > deadline:
            assert len(recs) >= n, recs
            return recs
        time.sleep(0.05)


def away_from_minute_end(margin: float = 15.0) -> None:
    """Per-minute counters reset at the minute: start early in a minute so a
    burst stays in one window."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.5)


def metric_value(mg, series: str) -> int:
    """The value of one series on the admin `/metrics` (`series` is a regex
    for the name and labels); 0 when absent."""
    text = requests.get(f"{mg.admin_url}/metrics", timeout=5).text
    m = re.search(rf"(?m)^{series} (\S+)$", text)
    return int(float(m.group(1))) if m else 0


def admin_usage(mg, key: str) -> dict:
    """`GET /admin/api/usage` by (scope, key/group/model, counter)."""
    r = requests.get(f"{mg.admin_url}/admin/api/usage", headers=bearer(key), timeout=5)
    assert r.status_code == 200, r.text
    return {(x["scope"], x.get("model") or x.get("group") or x["key"], x["counter"]): x for x in r.json()}
