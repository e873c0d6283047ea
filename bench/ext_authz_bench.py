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


def _h2load(url: str, body: Path, duration: int, threads: int, conns: int = 16, streams: int = 8,
            rps_per_client: int | None = None) -> dict:
    """h2load with a per-request log (`--log-file`): req/s, and p50/p99 of
    each Check's time from its start to the end of its response. With
    `rps_per_client`, a fixed offered rate (latency), else as fast as it goes
    (throughput)."""
    log = body.with_suffix(f".{conns}x{streams}.{rps_per_client or 'max'}.log")
    args = ["h2load", "-t", str(threads), "-c", str(conns), "-m", str(streams), "-d", str(body),
            "-H", "content-type: application/grpc", "-H", "te: trailers"]
    if rps_per_client:
        args += ["--rps", str(rps_per_client)]
    subprocess.run([*args, "-D", "2", url], capture_output=True, check=True)  # warm-up
    out = subprocess.run([*args, "-D", str(duration), f"--log-file={log}", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out).group(1))
    failed = int(re.search(r"(\d+) failed", out).group(1))
    lat = sorted(int(line.split("\t")[2]) for line in log.read_text().splitlines() if line.count("\t") >= 2)
    q = lambda f: lat[min(len(lat) - 1, int(len(lat) * f))] / 1000.0 if lat else None  # noqa: E731  (µs → ms)
    return {"rps": rps, "p50": q(0.50), "p99": q(0.99), "non2xx": failed}


def _expect_allowed(addr: str, body: Path) -> None:
    """One Check with the same bytes h2load sends: it must be allowed
    (`ok_response`, field 3, and no `denied_response`, field 2), so the
    figures are of allowed checks, not of fast refusals."""
    import grpc

    raw = body.read_bytes()[5:]  # drop the gRPC frame header
    with grpc.insecure_channel(addr) as ch:
        resp = ch.unary_unary(CHECK)(raw, timeout=10)
    fields, i = set(), 0
    while i < len(resp):
        tag = resp[i]; i += 1  # noqa: E702  (all CheckResponse fields are length-delimited, tags < 128)
        n = shift = 0
        while True:
            b = resp[i]; i += 1  # noqa: E702
            n |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        fields.add(tag >> 3)
        i += n
    if 3 not in fields or 2 in fields:
        raise SystemExit(f"ext_authz bench: the Check was not allowed (fields {sorted(fields)}): fix the setup")


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
            key_body = _check_body(example, w / "check-key.bin", path, f"Bearer {key}")
            jwt_body = _check_body(example, w / "check-jwt.bin", path, f"Bearer {idp.token('urn:modelgate:es256')}")
            for label, body in (("API key", key_body), ("JWT ES256", jwt_body)):
                _expect_allowed(ext, body)
                record("ext_authz", f"ext_authz Check, {label}, throughput (h2load -c16 -m8)",
                       _h2load(url, body, duration, threads))
                # Latency at a fixed offered rate well below saturation: 4
                # connections x 2,500 checks/s (10k/s), one stream each.
                record("ext_authz", f"ext_authz Check, {label}, offered 10k/s (h2load -c4 --rps 2500)",
                       _h2load(url, body, duration, 1, conns=4, streams=1, rps_per_client=2500))
        finally:
            mg.stop()
    finally:
        idp.stop()


def in_process(record_line) -> list[str]:
    """Runs the in-process decision timing loop and passes its table lines on."""
    out = subprocess.run(["cargo", "bench", "-q", "-p", "modelgate-extauthz", "--bench", "decide", "--locked"],
                         capture_output=True, text=True, check=True).stdout
    lines = [line for line in out.splitlines() if line.startswith("|")]
    for line in lines:
        record_line(line)
    return lines


def targets(rows: list[dict], in_process_lines: list[str]) -> list[str]:
    """Issue 15's targets against this run's figures."""
    def row(prefix: str) -> dict | None:
        return next((r for r in rows if r["name"].startswith(prefix)), None)

    def p99_us(prefix: str) -> float | None:
        for line in in_process_lines:
            cells = [c.strip() for c in line.strip("|").split("|")]
            if cells and cells[0].startswith(prefix):
                return float(cells[3])
        return None

    out = ["", "| issue 15 target | measured | target | met |", "|---|---:|---:|---|"]
    for label in ("API key", "JWT ES256"):
        t = row(f"ext_authz Check, {label}, throughput")
        lat = row(f"ext_authz Check, {label}, offered 10k/s")
        if t:
            out.append(f"| Check/s, {label} (max) | {t['rps']:.0f} | ≥ 30000 | {'yes' if t['rps'] >= 30000 else 'no'} |")
        if lat and lat.get("p99") is not None:
            out.append(f"| Check p99, {label}, offered 10k/s ({lat['rps']:.0f}/s done) | {lat['p99']:.2f} ms"
                       f" | ≤ 1 ms | {'yes' if lat['p99'] <= 1.0 else 'no'} |")
        if t and t.get("p99") is not None:
            out.append(f"| Check p99, {label}, at max rate (128 in flight) | {t['p99']:.2f} ms | - | - |")
    for label, prefix, target in (("in-process decide p99, JWT ES256 verified", "JWT ES256, verified", 30.0),
                                  ("in-process decide p99, JWT RS256 verified", "JWT RS256", 30.0),
                                  ("in-process decide p99, JWT cached", "JWT ES256, cached", 5.0),
                                  ("in-process decide p99, API key", "API key", None)):
        v = p99_us(prefix)
        if v is not None:
            met = "-" if target is None else ("yes" if v <= target else "no")
            out.append(f"| {label} | {v:.1f} µs | {'≤ %.0f µs' % target if target else '-'} | {met} |")
    out += ["", "Check latencies here are per request, from h2load's `--log-file` (start to end of response), "
            "not h2load's mean. Figures taken while other work shares the 2 cores (see the load average above) "
            "are contention-bound: compare rows of one run."]
    return out
