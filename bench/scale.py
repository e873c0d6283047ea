"""Scale with keys (issue 14 items 6 and P5): idle RSS and start-up with one
key, then a generated key file of 1,000,000 keys (the `modelgate keys` file
format: id + SHA-256 of the whole key): time from start to ready, RSS, and a
request with one of the keys. Scenario `scale` in bench/bench.py.

The cost of 1,000 models + 1,000 policies per request is counted under
callgrind by the `instructions` scenario (bench/callgrind.py)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import peers
import results

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEYS = int(os.environ.get("BENCH_KEYS", "1000000"))


def b62(n: int, width: int) -> str:
    s = []
    for _ in range(width):
        n, r = divmod(n, 62)
        s.append(ALPHABET[r])
    return "".join(reversed(s))


def write_key_file(path: Path, n: int) -> str:
    """A key file of `n` keys (`k000123`, all models); returns the last key in plaintext."""
    secret = "S" * 43
    with open(path, "w") as f:
        f.write('{"version":1,"keys":[\n')
        for i in range(n):
            kid = b62(i * 7919 + 1, 12)
            key = f"mgk_{kid}_{secret}"
            sha = hashlib.sha256(key.encode()).hexdigest()
            sep = "," if i + 1 < n else ""
            f.write(f'{{"name":"k{i:07d}","id":"{kid}","sha256":"{sha}","models":["*"],"created_at":"2026-01-01T00:00:00Z"}}{sep}\n')
        f.write("]}\n")
    return key


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start(work: Path, keys: Path, upstream: str) -> tuple[peers.Modelgate, float]:
    cfg = f"""
listen: {{address: "__LISTEN__"}}
admin: {{address: "__ADMIN__"}}
auth:
  api_keys: {{file: "{keys}"}}
log: {{decisions: "{work}/decisions.jsonl", level: warn}}
models:
  - {{name: fast, protocols: [v1], upstream: {{url: "{upstream}"}}}}
"""
    mg = peers.start_modelgate(work, cfg, wait_ready=False)
    while peers.http_status(f"{mg.admin_url}/readyz", timeout=0.5) != 200:
        if not mg.alive() or time.monotonic() - mg.started_at > 120:
            raise RuntimeError(f"modelgate did not become ready\n{mg.log_tail()}")
        time.sleep(0.005)
    return mg, time.monotonic() - mg.started_at


def run(work: Path, static_block: str) -> str:
    import requests

    work.mkdir(parents=True, exist_ok=True)
    up = peers.start_nginx(work / "static", static_block, worker_processes=1)
    try:
        small = work / "keys-1.json"
        one = write_key_file(small, 1)
        mg, small_ready = start(work / "mg-1", small, up.url)
        time.sleep(0.5)
        idle = rss_mb(mg.pid)
        mg.stop()
        t = time.monotonic()
        big = work / "keys-1m.json"
        last = write_key_file(big, KEYS)
        gen_s = time.monotonic() - t
        mg, big_ready = start(work / "mg-1m", big, up.url)
        try:
            time.sleep(0.5)
            big_rss = rss_mb(mg.pid)
            r = requests.post(f"{mg.url}/v1/models/fast:predict", data="{}", timeout=10,
                              headers={"Authorization": f"Bearer {last}", "Content-Type": "application/json"})
            bad = requests.post(f"{mg.url}/v1/models/fast:predict", data="{}", timeout=10,
                                headers={"Authorization": f"Bearer {last[:-1]}T", "Content-Type": "application/json"})
        finally:
            mg.stop()
    finally:
        up.stop()
    del one
    size_mb = big.stat().st_size / 1e6
    met = idle <= 20 and big_rss <= 300 and small_ready <= 0.1 and big_ready < 2
    results.set_target("P5", f"{idle:.1f} MB / {big_rss:.0f} MB / {small_ready * 1000:.0f} ms (1M keys ready in {big_ready:.2f} s)",
                       met, "bench/run.sh scale")
    la = os.getloadavg()
    return "\n".join([
        "## Scenario `scale` (keys, issue 14 item 6 and P5)",
        "",
        f"Measured {results.now()} (load average {la[0]:.1f}). Start-up is from process start to `/readyz` answering 200,",
        "polled by the harness (so an upper bound).",
        "",
        "| measure | value | target |",
        "|---|---:|---:|",
        f"| idle RSS, 1 key | {idle:.1f} MB | ≤ 20 MB |",
        f"| start-up to ready, 1 key | {small_ready * 1000:.0f} ms | ≤ 100 ms |",
        f"| key file of {KEYS:,} keys | {size_mb:.0f} MB (generated in {gen_s:.1f} s) | - |",
        f"| start-up to ready, {KEYS:,} keys | {big_ready:.2f} s | < 2 s |",
        f"| RSS with {KEYS:,} keys | {big_rss:.0f} MB | < 300 MB |",
        f"| a request with the last key / a wrong secret | {r.status_code} / {bad.status_code} | 200 / 401 |",
        "",
        "Lookups are one SHA-256 of the presented key, one open-addressing probe by its digest and a constant-time compare (O(1)).",
    ]) + "\n"
