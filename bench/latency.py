"""Added latency at a fixed rate (issue 14 item 4, target P2): direct, nginx
as a plain proxy, modelgate with an API key and with a JWT, all in front of the
same nginx `return 200` upstream, at 1k and 5k req/s with
`oha -q RATE --latency-correction`. Reports p50, p99 and p99.9 and what each
proxy adds over direct. Scenario `latency` in bench/bench.py."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import results

RATES = [int(r) for r in os.environ.get("BENCH_RATES", "1000,5000").split(",")]
SECONDS = int(os.environ.get("BENCH_LATENCY_SECONDS", "10"))
OHA = os.environ.get("MODELGATE_OHA", str(Path.home() / ".cargo" / "bin" / "oha"))


def oha(url: str, rate: int, headers: dict[str, str], body: str) -> dict:
    args = [OHA, "--no-tui", "--output-format", "json", "-z", f"{SECONDS}s", "-q", str(rate), "--latency-correction", "-c", "16", "-m", "POST", "-d", body]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    warm = [a if a != f"{SECONDS}s" else "2s" for a in args]
    subprocess.run([*warm, url], capture_output=True, timeout=120)  # warm-up
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=SECONDS + 120).stdout
    d = json.loads(out)
    pct = {k: v * 1000 for k, v in d.get("latencyPercentiles", {}).items() if v is not None}
    return {"p50": pct.get("p50"), "p99": pct.get("p99"), "p999": pct.get("p99.9"), "codes": d.get("statusCodeDistribution", {})}


def run(targets: list[tuple[str, str, dict[str, str]]], body: str) -> str:
    """`targets`: (label, url, headers), the first being direct."""
    la0 = os.getloadavg()[0]
    rows = []
    for rate in RATES:
        for label, url, headers in targets:
            r = oha(url, rate, headers, body)
            rows.append((rate, label, r))
            print(f"  {rate:>5}/s {label:<36} p50 {r['p50'] or 0:.3f} p99 {r['p99'] or 0:.3f} p99.9 {r['p999'] or 0:.3f} ms {r['codes']}", flush=True)
    lines = [
        "## Scenario `latency` (fixed rate, issue 14 item 4, P2)",
        "",
        f"Measured {results.now()} (modelgate {results.build()}): `oha -q RATE --latency-correction -c 16 -z {SECONDS}s` after a 2 s warm-up, all",
        f"rows in one run on the same 2 cores (load average {la0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end).",
        "Added = the row's percentile minus direct's at the same rate.",
        "",
        "| rate | path | p50 ms | p99 ms | p99.9 ms | added p50 | added p99 | added p99.9 | responses |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]

    def f(v):
        return f"{v:.3f}" if v is not None else "-"

    for rate, label, r in rows:
        d = next(x for rt, lb, x in rows if rt == rate and lb == targets[0][0])
        add = {k: (r[k] - d[k]) if r[k] is not None and d[k] is not None else None for k in ("p50", "p99", "p999")}
        lines.append(f"| {rate} | {label} | {f(r['p50'])} | {f(r['p99'])} | {f(r['p999'])} | "
                     f"{f(add['p50'])} | {f(add['p99'])} | {f(add['p999'])} | {json.dumps(r['codes'])} |")
        if rate == 1000 and label.startswith("modelgate (API key)") and add["p50"] is not None and add["p99"] is not None:
            results.set_target("P2", f"+{add['p50']:.3f} ms p50, +{add['p99']:.3f} ms p99",
                               add["p50"] <= 0.05 and add["p99"] <= 0.2, "bench/run.sh latency")
    return "\n".join(lines) + "\n"
