"""Instructions per request under callgrind (issue 14, items 1 and 7).

Throughput on 2 shared cores moves from run to run; instruction counts do not.
modelgate (one I/O thread) and nginx (one worker, as a plain proxy) each run
under `valgrind --tool=callgrind --cache-sim=yes --instr-atstart=no` in front of the same
nginx `return 200` upstream. For each path: a warm-up with instrumentation
off, then `callgrind_control -i on` + `-z` (zero), a fixed number of requests
(`oha -n N -c 4`, or `h2load --h1` when oha is missing), and `-d` (dump).
The dump holds only the measured requests, so start-up and warm-up are not
counted; instructions / N is the cost of one request, every thread of the
process included (the decision-log writer too).

Scenario `instructions` in bench/bench.py; `bench/callgrind.sh` runs it and
leaves callgrind's output files (for `callgrind_annotate`) in bench/callgrind/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path

import peers
import results

N = int(os.environ.get("BENCH_CALLGRIND_REQUESTS", "3000"))
WARMUP = 300
CONC = 4
OUT = Path(__file__).resolve().parent / "callgrind"
OHA = os.environ.get("MODELGATE_OHA", str(Path.home() / ".cargo" / "bin" / "oha"))
# Only the rows whose label contains this (e.g. "built-in"): a quicker loop while working on one path.
ONLY = os.environ.get("BENCH_CALLGRIND_ONLY", "")


def wanted(label: str) -> bool:
    return not ONLY or ONLY in label


def wrapper(work: Path, name: str, real: str) -> Path:
    """A script that runs `real` under callgrind (but not for `nginx -t`)."""
    out = work / f"callgrind.{name}.%p"
    p = work / f"vg-{name}.sh"
    p.write_text(f"""#!/bin/sh
for a in "$@"; do [ "$a" = "-t" ] && exec {real} "$@"; done
# nginx: one process (no master), so the worker is the process measured.
for a in "$@"; do shift; [ "$a" = "daemon off;" ] && a="daemon off; master_process off;"; set -- "$@" "$a"; done
exec valgrind --tool=callgrind --cache-sim=yes --I1=32768,8,64 --D1=32768,8,64 --LL=33554432,16,64 --instr-atstart=no --callgrind-out-file={out} {real} "$@"
""")
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return p


def load(url: str, n: int, method: str = "GET", body: str = "", headers: dict[str, str] | None = None) -> int:
    """Sends exactly `n` requests on CONC connections; returns how many got a 2xx."""
    headers = headers or {}
    if Path(OHA).exists():
        args = [OHA, "-n", str(n), "-c", str(CONC), "--no-tui", "--output-format", "json", "-m", method]
        if body:
            args += ["-d", body]
        for k, v in headers.items():
            args += ["-H", f"{k}: {v}"]
        out = subprocess.run([*args, url], capture_output=True, text=True, timeout=600).stdout
        codes = json.loads(out).get("statusCodeDistribution", {})
        return sum(int(c) for s, c in codes.items() if s.startswith("2"))
    args = ["h2load", "--h1", "-n", str(n), "-c", str(CONC)]
    if body:
        f = Path(os.environ.get("TMPDIR", "/tmp")) / f"cg-body-{os.getpid()}"
        f.write_text(body)
        args += ["-d", str(f)]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=600).stdout
    m = re.search(r"status codes: (\d+) 2xx", out)
    return int(m.group(1)) if m else 0


def load_grpc(url: str, n: int, body: Path, headers: dict[str, str]) -> int:
    """Sends exactly `n` gRPC calls (h2c, CONC connections, one stream each) with
    the framed message in `body`; returns how many got HTTP 200 (the caller checks
    grpc-status once beforehand: h2load does not read trailers)."""
    args = ["h2load", "-n", str(n), "-c", str(CONC), "-m", "1", "-d", str(body)]
    for k, v in {"content-type": "application/grpc", "te": "trailers", **headers}.items():
        args += ["-H", f"{k}: {v}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=600).stdout
    m = re.search(r"status codes: (\d+) 2xx", out)
    return int(m.group(1)) if m else 0


def control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], capture_output=True, check=True, timeout=120)


def dumps(work: Path, name: str) -> set[Path]:
    return set(work.glob(f"callgrind.{name}.*"))


def totals(path: Path) -> dict[str, int]:
    """The dump's event totals by name: Ir (instructions) and, from the cache
    simulation, I1mr (L1 instruction-cache misses), D1mr + D1mw (L1 data)."""
    events: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        if line.startswith(("totals:", "summary:")):
            return dict(zip(events or ["Ir"], (int(v) for v in line.split()[1:])))
    return {}


def measure(work: Path, name: str, pids: list[int], label: str, url: str, method="GET", body="", headers=None,
            grpc: Path | None = None) -> dict:
    """Instructions per request of the processes `pids` for N requests to `url`
    (gRPC calls with the framed message in `grpc` when given)."""
    def send(n: int) -> int:
        if grpc is not None:
            return load_grpc(url, n, grpc, headers or {})
        return load(url, n, method, body, headers)

    ok = send(WARMUP)
    if ok != WARMUP:
        raise RuntimeError(f"{label}: {ok}/{WARMUP} warm-up requests answered 2xx")
    for pid in pids:
        control(pid, "-i", "on")
        control(pid, "-z")
    before = dumps(work, name)
    ok = send(N)
    time.sleep(0.1)  # let the decision-log writer flush its batch
    for pid in pids:
        control(pid, "-d")
        control(pid, "-i", "off")
    new = sorted(dumps(work, name) - before)
    counts = [totals(p) for p in new]
    total = sum(c.get("Ir", 0) for c in counts)
    i1 = sum(c.get("I1mr", 0) for c in counts)
    d1 = sum(c.get("D1mr", 0) + c.get("D1mw", 0) for c in counts)
    OUT.mkdir(exist_ok=True)
    keep = OUT / f"{label.replace(' ', '-').replace('/', '-')}.callgrind"
    if new:
        shutil.copy(max(new, key=lambda p: p.stat().st_size), keep)
    row = {"label": label, "requests": N, "ok": ok, "instructions": total, "per_request": total / N, "file": keep.name,
           "i1_per_request": i1 / N, "d1_per_request": d1 / N}
    print(f"  {label:<44} {total / N:>10.0f} instructions/request, L1i misses {i1 / N:.0f}, L1d misses {d1 / N:.0f}"
          f"  ({ok}/{N} 2xx)", flush=True)
    return row


def run(work: Path, static_block: str, proxy_block, modelgate_cfg, many_cfg=None) -> tuple[list[dict], str]:
    """Returns the rows and the section text for RESULTS.md."""
    work.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    up = peers.start_nginx(work / "static", static_block, worker_processes=1)
    body = json.dumps({"instances": peers.IRIS_ROWS})
    hdr = {"Content-Type": "application/json"}
    real_nginx = peers.NGINX_BIN
    try:
        if wanted("nginx plain proxy"):
            peers.NGINX_BIN = str(wrapper(work, "nginx", real_nginx))
            ng = peers.start_nginx(work / "nginx", proxy_block(up.url), worker_processes=1, timeout=60)
            peers.NGINX_BIN = real_nginx
            time.sleep(1.0)
            procs = [ng.pid, *_children(ng.pid)]
            rows.append(measure(work, "nginx", procs, "nginx plain proxy", f"{ng.url}/v1/models/fast:predict", "POST", body, hdr))
            ng.stop()
        rows += _bare(work, up.url, body, hdr)
        rows += _modelgate(work, up.url, body, hdr, modelgate_cfg)
        if many_cfg and wanted("modelgate API key, 1,000 models + 1,000 policies"):
            rows.append(_many(work, up.url, body, hdr, many_cfg))
    finally:
        peers.NGINX_BIN = real_nginx
        up.stop()
    return rows, section(rows)


def _bare(work: Path, upstream: str, body: str, hdr: dict) -> list[dict]:
    """The floor: a bare hyper HTTP/1 server forwarding with hyper's pooled
    client, then with modelgate's lean client (`examples/bare_proxy.rs`, built
    by run.sh; skipped when MODELGATE_BARE_PROXY_BIN is not there)."""
    rows = []
    def wrap(mode: str, real: str) -> Path:
        return wrapper(work, f"bare-{mode}", real)

    for proc, mode, label, url in results.floor_proxies(wanted, upstream, 60, wrap):
        rows.append(measure(work, f"bare-{mode}", [proc.pid], label, url, "POST", body, hdr))
    return rows


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _modelgate(work: Path, upstream: str, body: str, hdr: dict, modelgate_cfg) -> list[dict]:
    real = os.environ["MODELGATE_BIN"]
    os.environ["MODELGATE_BIN"] = str(wrapper(work, "modelgate", real))
    os.environ.setdefault("MODELGATE_START_TIMEOUT", "120")
    try:
        mg, key, idp, iris_body, grpc_body = modelgate_cfg(work, upstream)
    finally:
        os.environ["MODELGATE_BIN"] = real
    rows = []
    try:
        u = f"{mg.url}/v1/models/fast:predict"
        auth = {"Authorization": f"Bearer {key}"}
        if wanted("modelgate API key"):
            rows.append(measure(work, "modelgate", [mg.pid], "modelgate API key", u, "POST", body, {**hdr, **auth}))
        if wanted("modelgate JWT RS256"):
            jwt = idp.token("urn:modelgate:rs256")
            rows.append(measure(work, "modelgate", [mg.pid], "modelgate JWT RS256", u, "POST", body, {**hdr, "Authorization": f"Bearer {jwt}"}))
        if wanted("modelgate built-in iris V2"):
            rows.append(measure(work, "modelgate", [mg.pid], "modelgate built-in iris V2", f"{mg.url}/v2/models/iris/infer", "POST", iris_body,
                                {**hdr, **auth}))
        if wanted("modelgate built-in iris V2 gRPC"):
            grpc_url = f"{mg.url}/inference.GRPCInferenceService/ModelInfer"
            _check_grpc(grpc_url, grpc_body, {"authorization": auth["Authorization"]})
            rows.append(measure(work, "modelgate", [mg.pid], "modelgate built-in iris V2 gRPC", grpc_url,
                                headers={"authorization": auth["Authorization"]}, grpc=grpc_body))
    finally:
        mg.stop()
        idp.stop()
    return rows


def _check_grpc(url: str, body: Path, headers: dict[str, str]) -> None:
    """One call with grpcio (raises unless grpc-status is 0), so the row counts
    answers, not gRPC errors in HTTP 200s."""
    import grpc

    addr, method = url.removeprefix("http://").split("/", 1)
    with grpc.insecure_channel(addr) as ch:
        call = ch.unary_unary(f"/{method}", request_serializer=None, response_deserializer=None)
        out = call(body.read_bytes()[5:], metadata=list(headers.items()), timeout=30)
    if not out:
        raise RuntimeError("gRPC check: empty ModelInferResponse")


def _many(work: Path, upstream: str, body: str, hdr: dict, many_cfg) -> dict:
    """The API-key path with 1,000 models and 1,000 model-scoped policies configured."""
    real = os.environ["MODELGATE_BIN"]
    os.environ["MODELGATE_BIN"] = str(wrapper(work, "many", real))
    try:
        mg, key = many_cfg(work, upstream)
    finally:
        os.environ["MODELGATE_BIN"] = real
    try:
        return measure(work, "many", [mg.pid], "modelgate API key, 1,000 models + 1,000 policies",
                       f"{mg.url}/v1/models/fast:predict", "POST", body, {**hdr, "Authorization": f"Bearer {key}"})
    finally:
        mg.stop()


def section(rows: list[dict]) -> str:
    by = {r["label"]: r for r in rows}
    base = by.get("nginx plain proxy")
    gen = "oha" if Path(OHA).exists() else "h2load --h1"
    la = os.getloadavg()
    lines = [
        "## Scenario `instructions` (callgrind, issue 14 items 1 and 7)",
        "",
        f"Measured {results.now()} (modelgate {results.build()}): {N} requests after {WARMUP} warm-up, {gen} -c {CONC}, each server under",
        "`valgrind --tool=callgrind` (modelgate with `runtime.io_threads: 1`, nginx with one worker), nginx",
        "`return 200` upstream. Counts are of the whole server process (all its threads) between",
        f"`callgrind_control -z` and `-d`; load does not change them (load average {la[0]:.1f} at the end).",
        "",
        "The cache columns come from callgrind's cache simulation (`--cache-sim=yes`, 32 KiB 8-way L1i and L1d):",
        "misses per request, also independent of load. They show the working set: an L1 miss costs",
        "about 10-15 cycles more than a hit, so they explain most of the gap between the instruction",
        "ratio and the CPU-time ratio measured under wrk (`spine-fast`, `jwt-fast`).",
        "",
        "| path | instructions / request | vs nginx plain proxy | L1i misses / request | L1d misses / request | 2xx |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"{r['per_request'] / base['per_request']:.2f}×" if base and base["per_request"] else "-"
        lines.append(f"| {r['label']} | {r['per_request']:.0f} | {ratio} | {r.get('i1_per_request', 0):.0f} | "
                     f"{r.get('d1_per_request', 0):.0f} | {r['ok']}/{r['requests']} |")
    key = by.get("modelgate API key")
    if base and key and base["per_request"]:
        v = key["per_request"] / base["per_request"]
        results.set_target("P1b", f"{v:.2f}× ({key['per_request'] / 1000:.1f}k vs {base['per_request'] / 1000:.1f}k)", v <= 2.0,
                           "bench/run.sh instructions")
    many = by.get("modelgate API key, 1,000 models + 1,000 policies")
    if many and key and key["per_request"]:
        lines += ["", f"1,000 models + 1,000 policies cost {many['per_request'] / key['per_request']:.3f}× the API-key path with",
                  "2 models and 1 policy (target: within 10%)."]
    lines += ["", "Per-function costs: `callgrind_annotate bench/callgrind/<path>.callgrind` (files from the latest run, not committed)."]
    return "\n".join(lines) + "\n"
