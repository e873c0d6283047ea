"""ext_authz scenario for bench/bench.py: Envoy's `Check` (gRPC) against
modelgate's ext_authz listener, driven by h2load with a CheckRequest built
from Envoy's protos (crates/modelgate-extauthz/examples/check_request.rs),
with an API key and with an ES256 JWT (verified once, then from the
verified-token cache, as Envoy's jwt_cache does). h2load reports mean latency
only; the in-process p99 comes from `cargo bench -p modelgate-extauthz
--bench decide` (run by bench/run.sh and appended to the table)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import peers

CHECK = "/envoy.service.auth.v3.Authorization/Check"


def _h2load(url: str, body: Path, duration: int, threads: int, conns: int = 16, streams: int = 8) -> dict:
    args = ["h2load", "-t", str(threads), "-c", str(conns), "-m", str(streams), "-d", str(body),
            "-H", "content-type: application/grpc", "-H", "te: trailers"]
    subprocess.run([*args, "-D", "2", url], capture_output=True, check=True)  # warm-up
    out = subprocess.run([*args, "-D", str(duration), url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out).group(1))
    m = re.search(r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    mean = float(m.group(5)) * scale[m.group(6)] if m else None
    failed = int(re.search(r"(\d+) failed", out).group(1))
    return {"rps": rps, "p50": mean, "p99": None, "non2xx": failed, "mean_only": True}


def _check_body(example: Path, out: Path, path: str, auth: str) -> Path:
    subprocess.run([str(example), str(out), path, auth], check=True)
    return out


def run(record, work: Path, duration: int, threads: int) -> None:
    print("ext_authz: Envoy Check (gRPC) with an API key and a JWT, h2load", flush=True)
    example = Path(os.environ.get("MODELGATE_CHECK_REQUEST_BIN", ""))
    if not example.is_file():
        print("  skipped: MODELGATE_CHECK_REQUEST_BIN not built", flush=True)
        return
    w = work / "ext-authz"
    w.mkdir(exist_ok=True)
    keys = w / "keys.json"
    key = peers.run_modelgate(["keys", "--file", keys, "create", "--name", "bench", "--models", "*"]).stdout.strip()
    idp = peers.start_oidc_provider(w / "oidc")
    ext = peers.free_addr()
    try:
        cfg = f"""
listen: {{address: "__LISTEN__"}}
admin: {{address: "__ADMIN__"}}
ext_authz: {{address: "{ext}"}}
auth:
  api_keys: {{file: "{keys}"}}
  identity_header: kubeflow-userid
  jwt:
    - issuer: {idp.issuer}
      audiences: [models]
log: {{decisions: "{w}/decisions.jsonl", level: warn}}
models:
  - {{name: iris, upstream: {{url: "http://127.0.0.1:9"}}}}
policies:
  - name: any-verified-identity
    rules: [{{from: [{{source: {{requestPrincipals: ["*"]}}}}]}}]
"""
        mg = peers.start_modelgate(w, cfg)
        try:
            url = f"http://{ext}{CHECK}"
            path = "/v2/models/iris/infer"
            body = _check_body(example, w / "check-key.bin", path, f"Bearer {key}")
            record("ext_authz", "ext_authz Check, API key (h2load)", _h2load(url, body, duration, threads))
            body = _check_body(example, w / "check-jwt.bin", path, f"Bearer {idp.token('urn:modelgate:es256')}")
            record("ext_authz", "ext_authz Check, JWT ES256 (h2load)", _h2load(url, body, duration, threads))
        finally:
            mg.stop()
    finally:
        idp.stop()


def in_process(record_line) -> None:
    """Runs the in-process decision timing loop and passes its table lines on."""
    out = subprocess.run(["cargo", "bench", "-q", "-p", "modelgate-extauthz", "--bench", "decide", "--locked"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("|"):
            record_line(line)
