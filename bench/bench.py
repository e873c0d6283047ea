"""Runs the benchmark scenarios and prints/writes the results table.

Every scenario starts its servers on 127.0.0.1, warms up, measures with wrk
or h2load for BENCH_DURATION seconds, and stops the servers by PID. Load
generator, proxies and upstreams share the machine's cores, so absolute
numbers are low; the ratios between rows measured in the same run are the
point.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import peers  # noqa: E402
import results  # noqa: E402  (bench/results.py)

DURATION = int(os.environ.get("BENCH_DURATION", "10"))
CONNS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
# Rounds of the interleaved scenarios (`jwt-fast`): each row's median round is reported.
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "3")))
WORK = Path(tempfile.mkdtemp(prefix="modelgate-bench-"))

V2_BODY = json.dumps({"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": peers.IRIS_ROWS}]})


def lua(method: str, body: str, headers: dict[str, str]) -> Path:
    p = WORK / f"req-{abs(hash((method, body, tuple(headers.items()))))}.lua"
    lines = [f'wrk.method = "{method}"', f"wrk.body = {json.dumps(body)}"]
    lines += [f'wrk.headers["{k}"] = {json.dumps(v)}' for k, v in headers.items()]
    p.write_text("\n".join(lines) + "\n")
    return p


def to_ms(v: str, unit: str) -> float:
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


CLK_TCK = os.sysconf("SC_CLK_TCK")


def group_cpu(pid: int) -> tuple[int, int]:
    """User and system CPU ticks of every thread of every process in `pid`'s
    process group (peers start each server with setsid: nginx's master and
    workers, modelgate's I/O and log threads)."""
    user = system = 0
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(stat[2]) == pid:  # field 5 (pgrp), counted after the ")"
            user += int(stat[11])
            system += int(stat[12])
    return user, system


def wrk(url: str, method: str = "GET", body: str = "", headers: dict[str, str] | None = None, check=None,
        cpu_of: int | None = None) -> dict:
    """wrk at saturation. With `cpu_of` (a server's pid), also the CPU that
    server's process group spent per request (user and system µs), which is
    what req/s ratios on shared cores come down to."""
    headers = headers or {}
    script = lua(method, body, headers)
    if check:
        check()
    subprocess.run(["wrk", "-t2", "-c8", "-d2s", "-s", str(script), url], capture_output=True, check=True)  # warm-up
    before = group_cpu(cpu_of) if cpu_of else None
    out = subprocess.run(["wrk", f"-t{THREADS}", f"-c{CONNS}", f"-d{DURATION}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    after = group_cpu(cpu_of) if cpu_of else None
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {m.group(1): to_ms(m.group(2), m.group(3)) for m in re.finditer(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)", out, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    cpu = {}
    if before and after and rps:
        per = 1e6 / CLK_TCK / (rps * DURATION)
        cpu = {"cpu_user_us": (after[0] - before[0]) * per, "cpu_sys_us": (after[1] - before[1]) * per}
    return {"rps": rps, "p50": lat.get("50"), "p99": lat.get("99"), "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(0) if errors else "", **cpu}


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def nginx(server_block: str, workers="auto", name="nginx") -> peers.Nginx:
    return peers.start_nginx(WORK / f"{name}-{time.monotonic_ns()}", server_block, worker_processes=workers)


def proxy_block(upstream: str) -> str:
    host_port = upstream.removeprefix("http://")
    return f"""
upstream backend {{ server {host_port}; keepalive 64; }}
server {{
    listen 127.0.0.1:__PORT__;
    access_log off;
    location / {{
        proxy_pass http://backend;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }}
}}
"""


STATIC_BLOCK = """
server {
    listen 127.0.0.1:__PORT__;
    access_log off;
    location / {
        default_type application/json;
        return 200 '{"predictions":[1,1]}';
    }
}
"""


ANY_IDENTITY_POLICY = """policies:
  - name: any-verified-identity
    rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]
"""


def modelgate(models_yaml: str, extra_yaml: str = "", auth_extra: str = "") -> tuple[peers.Modelgate, str]:
    work = WORK / f"mg-{time.monotonic_ns()}"
    work.mkdir()
    keys = work / "keys.json"
    r = peers.run_modelgate(["keys", "--file", keys, "create", "--name", "bench", "--models", "*"])
    key = r.stdout.strip()
    cfg = f"""
listen: {{address: "__LISTEN__"}}
admin: {{address: "__ADMIN__"}}
auth:
  api_keys: {{file: "{keys}"}}
{auth_extra}
log: {{decisions: "{work}/decisions.jsonl", level: warn}}
models:
{models_yaml}
{extra_yaml}
"""
    return peers.start_modelgate(work, cfg), key


def expect_ok(url, method="GET", body=None, headers=None):
    import requests

    def check():
        r = requests.request(method, url, data=body, headers=headers, timeout=10)
        assert r.status_code == 200, (url, r.status_code, r.text[:200])
    return check


ROWS: list[dict] = []


def record(group: str, name: str, result: dict, **extra):
    row = {"group": group, "name": name, **result, **extra}
    ROWS.append(row)
    p50 = f"{row['p50']:.2f}" if row.get("p50") is not None else "-"
    p99 = f"{row['p99']:.2f}" if row.get("p99") is not None else "-"
    print(f"  {name:<46} {row['rps']:>10.0f} req/s  p50 {p50:>7} ms  p99 {p99:>7} ms"
          + (f"  non-2xx {row['non2xx']}" if row.get("non2xx") else ""), flush=True)


def spine_mlserver():
    print("spine: iris V2 REST on MLServer", flush=True)
    ml = peers.start_mlserver(WORK / "mlserver", peers.write_iris_model(WORK / "iris") / "model.joblib", model_name="iris", parallel_workers=1)
    try:
        hdr = {"Content-Type": "application/json"}
        url = f"{ml.rest_url}/v2/models/iris/infer"
        record("mlserver", "MLServer direct", wrk(url, "POST", V2_BODY, hdr, expect_ok(url, "POST", V2_BODY, hdr)))
        ng = nginx(proxy_block(ml.rest_url))
        try:
            u = f"{ng.url}/v2/models/iris/infer"
            record("mlserver", "nginx → MLServer", wrk(u, "POST", V2_BODY, hdr, expect_ok(u, "POST", V2_BODY, hdr)))
        finally:
            ng.stop()
        mg, key = modelgate(f'  - {{name: iris, protocols: [v2], upstream: {{url: "{ml.rest_url}"}}}}')
        try:
            h = {**hdr, "Authorization": f"Bearer {key}"}
            u = f"{mg.url}/v2/models/iris/infer"
            record("mlserver", "modelgate (API key) → MLServer", wrk(u, "POST", V2_BODY, h, expect_ok(u, "POST", V2_BODY, h)))
        finally:
            mg.stop()
    finally:
        ml.stop()


def spine_fast_upstream():
    print("spine: fast upstream (nginx returning a small JSON)", flush=True)
    up = nginx(STATIC_BLOCK, workers=1, name="static")
    try:
        url = f"{up.url}/v1/models/fast:predict"
        body = json.dumps({"instances": peers.IRIS_ROWS})
        hdr = {"Content-Type": "application/json"}
        record("fast", "fast upstream direct", wrk(url, "POST", body, hdr, expect_ok(url, "POST", body, hdr)))
        ng = nginx(proxy_block(up.url))
        try:
            u = f"{ng.url}/v1/models/fast:predict"
            record("fast", "nginx → fast upstream", wrk(u, "POST", body, hdr, expect_ok(u, "POST", body, hdr), cpu_of=ng.pid))
        finally:
            ng.stop()
        mg, key = modelgate(f'  - {{name: fast, protocols: [v1], upstream: {{url: "{up.url}"}}}}')
        try:
            idle = rss_kb(mg.pid)
            h = {**hdr, "Authorization": f"Bearer {key}"}
            u = f"{mg.url}/v1/models/fast:predict"
            record("fast", "modelgate (API key) → fast upstream", wrk(u, "POST", body, h, expect_ok(u, "POST", body, h), cpu_of=mg.pid),
                   idle_rss_kb=idle, loaded_rss_kb=rss_kb(mg.pid))
        finally:
            mg.stop()
    finally:
        up.stop()


def interleaved(group: str, runs: list[tuple[str, Callable[[], dict]]]) -> None:
    """Measures each of `runs` (row name, measurement) once per round, in
    turn, for BENCH_ROUNDS rounds, so a neighbour's burst on the shared cores
    hits every row alike instead of one. Records each row's median round (by
    req/s) with every round's req/s, from which the report prints the
    per-round ratios."""
    got: dict[str, list[dict]] = {name: [] for name, _ in runs}
    for i in range(ROUNDS):
        for name, measure in runs:
            r = measure()
            got[name].append(r)
            print(f"    round {i + 1}/{ROUNDS} {name}: {r['rps']:.0f} req/s", flush=True)
    for name, _ in runs:
        ranked = sorted(got[name], key=lambda r: r["rps"])
        record(group, name, ranked[len(ranked) // 2], rounds=[r["rps"] for r in got[name]])


def jwt_fast_upstream():
    print(f"identity: JWT (RS256, ES256; cached JWKS) vs API key vs nginx, fast upstream, {ROUNDS} interleaved rounds", flush=True)
    up = nginx(STATIC_BLOCK, workers=1, name="static-jwt")
    idp = peers.start_oidc_provider(WORK / "oidc")
    ng = None
    try:
        body = json.dumps({"instances": peers.IRIS_ROWS})
        hdr = {"Content-Type": "application/json"}
        ng = nginx(proxy_block(up.url))
        mg, key = modelgate(
            f'  - {{name: fast, protocols: [v1], upstream: {{url: "{up.url}"}}}}',
            f"""policies:
  - name: any-verified-identity
    rules: [{{from: [{{source: {{requestPrincipals: ["*"]}}}}]}}]
""",
            auth_extra=f"""  jwt:
    - issuer: {idp.issuer}
      audiences: [models]
""")
        try:
            nu = f"{ng.url}/v1/models/fast:predict"
            u = f"{mg.url}/v1/models/fast:predict"
            runs = [("nginx → fast upstream (same run as JWT)",
                     lambda: wrk(nu, "POST", body, hdr, expect_ok(nu, "POST", body, hdr), cpu_of=ng.pid))]
            for label, token in [("API key", key), ("JWT RS256", idp.token("urn:modelgate:rs256")), ("JWT ES256", idp.token("urn:modelgate:es256"))]:
                h = {**hdr, "Authorization": f"Bearer {token}"}
                runs.append((f"modelgate ({label}, policy) → fast upstream",
                             lambda h=h: wrk(u, "POST", body, h, expect_ok(u, "POST", body, h), cpu_of=mg.pid)))
            interleaved("jwt", runs)
        finally:
            mg.stop()
    finally:
        if ng:
            ng.stop()
        idp.stop()
        up.stop()


def grpc_body(input_name: str) -> Path:
    """A gRPC-framed ModelInferRequest for iris (built with tritonclient's protobuf classes)."""
    from tritonclient.grpc import service_pb2

    req = service_pb2.ModelInferRequest(model_name="iris")
    t = req.inputs.add(name=input_name, datatype="FP32", shape=[2, 4])
    t.contents.fp32_contents.extend(v for row in peers.IRIS_ROWS for v in row)
    msg = req.SerializeToString()
    p = WORK / f"grpc-{input_name}.bin"
    p.write_bytes(b"\x00" + len(msg).to_bytes(4, "big") + msg)
    return p


def h2load(url: str, body: Path, headers: dict[str, str]) -> dict:
    args = ["h2load", "-t", str(THREADS), "-c", "16", "-m", "8", "-d", str(body)]
    for k, v in {"content-type": "application/grpc", "te": "trailers", **headers}.items():
        args += ["-H", f"{k}: {v}"]
    subprocess.run([*args, "-D", "2", url], capture_output=True, check=True)  # warm-up
    out = subprocess.run([*args, "-D", str(DURATION), url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out).group(1))
    m = re.search(r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)", out)
    mean = to_ms(m.group(5), m.group(6)) if m else None
    failed = int(re.search(r"(\d+) failed", out).group(1))
    return {"rps": rps, "p50": mean, "p99": None, "non2xx": failed, "mean_only": True}


def builtin_model():
    print("built-in iris (tract) vs MLServer, V2 REST and gRPC", flush=True)
    iris = peers.write_iris_model(WORK / "iris-b")
    ml = peers.start_mlserver(WORK / "mlserver-b", iris / "model.joblib", model_name="iris", parallel_workers=1)
    try:
        hdr = {"Content-Type": "application/json"}
        url = f"{ml.rest_url}/v2/models/iris/infer"
        record("builtin", "MLServer direct, V2 REST", wrk(url, "POST", V2_BODY, hdr, expect_ok(url, "POST", V2_BODY, hdr)))
        record("builtin", "MLServer direct, V2 gRPC (h2load)", h2load(f"http://{ml.grpc_addr}/inference.GRPCInferenceService/ModelInfer", grpc_body("input-0"), {}))
    finally:
        ml.stop()
    mg, key = modelgate(f'  - {{name: iris, builtin: {{dir: "{iris}"}}}}')
    try:
        body = json.dumps({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": peers.IRIS_ROWS}]})
        h = {**hdr, "Authorization": f"Bearer {key}"}
        u = f"{mg.url}/v2/models/iris/infer"
        record("builtin", "modelgate built-in (API key), V2 REST", wrk(u, "POST", body, h, expect_ok(u, "POST", body, h)))
        record("builtin", "modelgate built-in (API key), V2 gRPC (h2load)",
               h2load(f"{mg.url}/inference.GRPCInferenceService/ModelInfer", grpc_body("input"), {"authorization": f"Bearer {key}"}))
    finally:
        mg.stop()


EXTRA_TABLES: list[str] = []


def ext_authz_checks():
    import ext_authz_bench  # bench/ext_authz_bench.py

    ext_authz_bench.run(record, WORK, DURATION, THREADS)
    _forward_auth()  # nginx auth_request → modelgate, in the same run (issue 15)
    EXTRA_TABLES.append("")
    lines = ext_authz_bench.in_process(EXTRA_TABLES.append)
    EXTRA_TABLES.extend(ext_authz_bench.targets(ROWS, lines))


SCENARIOS = {
    "spine-mlserver": spine_mlserver,
    "spine-fast": spine_fast_upstream,
    "jwt-fast": jwt_fast_upstream,
    "builtin": builtin_model,
    "ext-authz": ext_authz_checks,
}


def _callgrind_modelgate(work: Path, upstream: str):
    """modelgate (one I/O thread) with an API key, a JWT issuer, a policy, the
    fast upstream and the built-in iris: every path `instructions` counts."""
    iris = peers.write_iris_model(work / "iris")
    idp = peers.start_oidc_provider(work / "oidc")
    mg, key = modelgate(
        f"""  - {{name: fast, protocols: [v1], upstream: {{url: "{upstream}"}}}}
  - {{name: iris, builtin: {{dir: "{iris}"}}}}""",
        """runtime: {io_threads: 1}
policies:
  - name: any-verified-identity
    rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]
""",
        auth_extra=f"""  jwt:
    - issuer: {idp.issuer}
      audiences: [models]
""")
    iris_body = json.dumps({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": peers.IRIS_ROWS}]})
    return mg, key, idp, iris_body, grpc_body("input")


def _callgrind_many(work: Path, upstream: str):
    """modelgate (one I/O thread) with 1,000 more models, each with its own
    scoped ALLOW policy, besides `fast` and the unscoped policy. `fast`, the
    model requested, is configured last: a per-request scan of the models
    would show here."""
    models = [f'  - {{name: m{i:04d}, protocols: [v1], upstream: {{url: "{upstream}"}}}}' for i in range(1000)]
    models += [f'  - {{name: fast, protocols: [v1], upstream: {{url: "{upstream}"}}}}']
    policies = [ANY_IDENTITY_POLICY.rstrip()]
    policies += [f'  - {{name: p{i:04d}, models: [m{i:04d}], rules: [{{from: [{{source: {{principals: ["k{i}"]}}}}]}}]}}'
                 for i in range(1000)]
    return modelgate("\n".join(models), "runtime: {io_threads: 1}\n" + "\n".join(policies) + "\n")


def instructions():
    import callgrind  # bench/callgrind.py

    print("instructions per request under callgrind (nginx plain proxy, modelgate API key / JWT / built-in)", flush=True)
    _, text = callgrind.run(WORK / "callgrind", STATIC_BLOCK, proxy_block, _callgrind_modelgate, _callgrind_many)
    EXTRA_TABLES.append(text)


SCENARIOS["instructions"] = instructions


def _syscalls_modelgate(work: Path, upstream: str):
    """modelgate as in `jwt-fast` (default I/O threads, decision log on, a policy)
    with the fast upstream and the built-in iris."""
    iris = peers.write_iris_model(work / "iris")
    mg, key = modelgate(
        f"""  - {{name: fast, protocols: [v1], upstream: {{url: "{upstream}"}}}}
  - {{name: iris, builtin: {{dir: "{iris}"}}}}""",
        ANY_IDENTITY_POLICY)
    iris_body = json.dumps({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": peers.IRIS_ROWS}]})
    return mg, key, iris_body


def syscalls():
    import syscalls as kernel_side  # bench/syscalls.py

    print("system calls and context switches per request (perf stat tracepoints, /proc)", flush=True)
    EXTRA_TABLES.append(kernel_side.run(WORK / "syscalls", STATIC_BLOCK, proxy_block, _syscalls_modelgate))


SCENARIOS["syscalls"] = syscalls


def scale():
    import scale as keys_scale  # bench/scale.py

    print("scale: idle RSS, start-up, 1,000,000 keys", flush=True)
    EXTRA_TABLES.append(keys_scale.run(WORK / "scale", STATIC_BLOCK))


SCENARIOS["scale"] = scale


def latency():
    import latency as fixed_rate  # bench/latency.py

    print("latency: direct vs nginx vs modelgate (API key, JWT) at fixed rates", flush=True)
    up = nginx(STATIC_BLOCK, workers=1, name="static-lat")
    idp = peers.start_oidc_provider(WORK / "oidc-lat")
    ng = nginx(proxy_block(up.url))
    try:
        mg, key = modelgate(
            f'  - {{name: fast, protocols: [v1], upstream: {{url: "{up.url}"}}}}',
            ANY_IDENTITY_POLICY,
            auth_extra=f"""  jwt:
    - issuer: {idp.issuer}
      audiences: [models]
""")
        body = json.dumps({"instances": peers.IRIS_ROWS})
        hdr = {"Content-Type": "application/json"}
        path = "/v1/models/fast:predict"
        token = idp.token("urn:modelgate:rs256")
        targets = [
            ("direct", up.url + path, hdr),
            ("nginx plain proxy", ng.url + path, hdr),
            ("modelgate (API key)", mg.url + path, {**hdr, "Authorization": f"Bearer {key}"}),
            ("modelgate (JWT RS256)", mg.url + path, {**hdr, "Authorization": f"Bearer {token}"}),
        ]
        EXTRA_TABLES.append(fixed_rate.run(targets, body))
    finally:
        ng.stop()
        idp.stop()
        up.stop()


SCENARIOS["latency"] = latency


def _forward_auth():
    # bench/forward_auth.py imports this module by name; run as a script it is __main__.
    sys.modules.setdefault("bench", sys.modules[__name__])
    import forward_auth

    forward_auth.forward_auth_fast_upstream()


SCENARIOS["fwdauth-fast"] = _forward_auth


def _llm():
    import llm  # bench/llm.py

    llm.run(sys.modules[__name__])


SCENARIOS["llm"] = _llm


def round_ratios(a: str, b: str) -> list[float]:
    """Round-by-round ratios of two rows measured by `interleaved`."""
    ra = next((r.get("rounds") for r in ROWS if r["name"] == a), None)
    rb = next((r.get("rounds") for r in ROWS if r["name"] == b), None)
    return [x / y for x, y in zip(ra, rb) if y] if ra and rb else []


def ratio(a: str, b: str) -> float | None:
    ra = next((r for r in ROWS if r["name"] == a), None)
    rb = next((r for r in ROWS if r["name"] == b), None)
    return ra["rps"] / rb["rps"] if ra and rb and rb["rps"] else None


RATIOS = [
    ("built-in iris V2 REST vs MLServer direct", "modelgate built-in (API key), V2 REST", "MLServer direct, V2 REST", 50.0),
    ("built-in iris V2 gRPC vs MLServer gRPC direct", "modelgate built-in (API key), V2 gRPC (h2load)", "MLServer direct, V2 gRPC (h2load)", None),
    ("JWT RS256 path vs nginx plain proxy", "modelgate (JWT RS256, policy) → fast upstream", "nginx → fast upstream (same run as JWT)", 1.0),
    ("JWT ES256 path vs nginx plain proxy", "modelgate (JWT ES256, policy) → fast upstream", "nginx → fast upstream (same run as JWT)", 1.0),
    ("JWT RS256 path vs API-key path", "modelgate (JWT RS256, policy) → fast upstream", "modelgate (API key, policy) → fast upstream", None),
    ("modelgate → MLServer vs MLServer direct", "modelgate (API key) → MLServer", "MLServer direct", 0.98),
    ("modelgate → MLServer vs nginx → MLServer", "modelgate (API key) → MLServer", "nginx → MLServer", None),
    ("modelgate (API key) vs nginx plain proxy, fast upstream", "modelgate (API key) → fast upstream", "nginx → fast upstream", 1.0),
    ("nginx auth_request → modelgate vs nginx plain proxy", "nginx auth_request → modelgate (API key) → fast upstream",
     "nginx → fast upstream (same run as auth_request)", None),
]


def load_note() -> str:
    """The machine's load while a scenario ran: other work on the same cores skews req/s."""
    la = os.getloadavg()
    return f"load average {la[0]:.1f} / {la[1]:.1f} / {la[2]:.1f} (1/5/15 min) at the end"


# Issue 14 targets measured by the req/s scenarios: (id, ratio label, minimum).
TARGET_RATIOS = [
    ("P1", "JWT RS256 path vs nginx plain proxy", 0.9),
    ("P3", "built-in iris V2 REST vs MLServer direct", 50.0),
    ("P4", "modelgate → MLServer vs MLServer direct", 0.98),
]


def report(scenario: str, rows: list[dict], extra: list[str]) -> str:
    if not rows:  # a scenario that writes its own section (instructions, scale, latency)
        return "\n".join(extra)
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")), "?")
    lines = [
        f"## Scenario `{scenario}`",
        "",
        f"Measured {results.now()} on {os.cpu_count()} cores ({cpu}), "
        f"{platform.system()} {platform.release()}; modelgate {results.build()}; wrk -t{THREADS} -c{CONNS} -d{DURATION}s on the same machine; {load_note()}.",
        "",
    ]
    with_cpu = any("cpu_user_us" in r for r in rows)
    if rows:
        lines += ["| scenario | req/s | p50 ms | p99 ms |" + (" proxy CPU µs/req (user + sys) |" if with_cpu else ""),
                  "|---|---:|---:|---:|" + ("---:|" if with_cpu else "")]
    for r in rows:
        p50 = f"{r['p50']:.2f}" if r.get("p50") is not None else "-"
        p99 = f"{r['p99']:.2f}" if r.get("p99") is not None else "-"
        if r.get("mean_only"):
            p50 = f"{p50} (mean)"
        cpu = ""
        if with_cpu:
            cpu = (f" {r['cpu_user_us']:.1f} + {r['cpu_sys_us']:.1f} = {r['cpu_user_us'] + r['cpu_sys_us']:.1f} |"
                   if "cpu_user_us" in r else " - |")
        lines.append(f"| {r['name']} | {r['rps']:.0f} | {p50} | {p99} |{cpu}")
    names = {r["name"] for r in rows}
    measured = [(label, ratio(a, b), target) for label, a, b, target in RATIOS if a in names and b in names]
    if measured:
        lines += ["", "| ratio (req/s) | value | target |", "|---|---:|---:|"]
    for label, v, target in measured:
        lines.append(f"| {label} | {v:.2f}× | {'≥ %.2f×' % target if target else '-'} |")
        for tid, tlabel, minimum in TARGET_RATIOS:
            if tlabel == label:
                results.set_target(tid, f"{v:.2f}×", v >= minimum, f"bench/run.sh {scenario}")
    rounds = [(label, round_ratios(a, b)) for label, a, b, _ in RATIOS if a in names and b in names]
    rounds = [(label, rr) for label, rr in rounds if rr]
    if rounds:
        lines += ["", f"Rows measured in {ROUNDS} interleaved rounds (every row once per round, in turn); each row above is "
                  "its median round, and each ratio above the ratio of those medians. Per round:", "",
                  "| ratio (req/s) | round by round |", "|---|---|"]
        lines += [f"| {label} | {', '.join(f'{x:.2f}×' for x in rr)} |" for label, rr in rounds]
    lines += extra
    rss = [r for r in rows if "idle_rss_kb" in r]
    if rss:
        idle = rss[0]["idle_rss_kb"] / 1024
        lines += ["", f"modelgate RSS: idle {idle:.1f} MB, after load {rss[0]['loaded_rss_kb'] / 1024:.1f} MB (target idle ≤ 20 MB)."]
    if rows:
        lines += [
            "",
            "Conditions: load generator (wrk/h2load), proxies and upstreams all share the same 2 cores, so every",
            "row competes for CPU with its neighbours; compare ratios within one run. nginx runs `worker_processes auto`",
            "with upstream keepalive; modelgate runs its default 2 I/O threads with the decision log on (to a file) and",
            "metrics on. MLServer runs with parallel_workers=1. h2load reports mean latency only.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    selected = [k for k in SCENARIOS if not argv or any(a in k for a in argv)]
    try:
        for name in selected:
            ROWS.clear()
            EXTRA_TABLES.clear()
            SCENARIOS[name]()
            text = report(name, list(ROWS), list(EXTRA_TABLES))
            print("\n" + text, flush=True)
            results.replace_section(name, text)
    finally:
        peers._stop_all()
    print("\nIssue 14 targets (latest figure for each, from bench/targets.json):\n")
    print(results.write_targets_section())


if __name__ == "__main__":
    main(sys.argv[1:])
