"""System calls and context switches per request (issue 14, P1/P2/P3: the kernel side).

About 58% of the proxy's CPU time is in the kernel (bench/RESULTS.md, `profile`), so
syscalls and wake-ups per request are a lever that instruction counts do not show.
Counted with tracepoints (`perf stat -e syscalls:sys_enter_* -p PIDS`: in-kernel
counters, no per-call trap to a tracer as with strace, so the servers' batching is
not disturbed) over a fixed number of requests (`h2load --h1 -n N -c C`), divided
by N. Context switches come from `/proc/PID/task/*/status` (voluntary: a thread
blocked, i.e. slept and was woken again; involuntary: preempted) read before and
after. The counts depend a little on timing (how many ready sockets one
`epoll_wait` returns), hence two concurrencies: 1 (one request at a time, as in the
fixed-rate latency scenario) and 32 (saturation, as under wrk). CPU time (user +
sys from /proc/PID/stat) is printed too; it depends on the machine's load.

Scenario `syscalls` in bench/bench.py (`bench/run.sh syscalls`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import peers
import results

N = int(os.environ.get("BENCH_SYSCALL_REQUESTS", "20000"))
WARMUP = 2000
NEW_N = int(os.environ.get("BENCH_SYSCALL_NEW_CONNECTIONS", "3000"))
# 0: a new connection per request (oha --disable-keepalive), shows the per-connection calls.
CONCS = [int(c) for c in os.environ.get("BENCH_SYSCALL_CONNS", "1,32,0").split(",")]
OHA = os.environ.get("MODELGATE_OHA", str(Path.home() / ".cargo" / "bin" / "oha"))
ONLY = os.environ.get("BENCH_SYSCALL_ONLY", "")
# The calls a request path makes, each counted by name; everything else is in `other`.
NAMES = ["read", "recvfrom", "recvmsg", "readv", "write", "sendto", "sendmsg", "writev", "epoll_wait",
         "epoll_pwait", "epoll_pwait2", "epoll_ctl", "futex", "accept4", "close", "shutdown", "setsockopt",
         "getsockopt", "getsockname", "ioctl", "statx", "newfstatat", "openat", "sched_yield", "madvise", "mmap", "munmap",
         "getrandom", "connect", "socket", "clock_nanosleep", "inotify_add_watch"]
# Kernel work that is not a system call, counted the same way (in the context of the
# server's threads): wake-ups it causes (of any task: the upstream, the client, its own
# threads), inter-processor interrupts it sends (a VM exit each under virtualisation),
# and page faults.
KERNEL = {"sched:sched_waking": "wake-ups", "ipi:ipi_send_cpu": "IPIs", "exceptions:page_fault_user": "page faults"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def concurrencies() -> list[int]:
    return [c for c in CONCS if c or Path(OHA).exists()]


def wanted(label: str) -> bool:
    return not ONLY or ONLY in label


def load(url: str, n: int, conc: int, body: Path | None, headers: dict[str, str]) -> int:
    """Sends exactly `n` HTTP/1.1 requests on `conc` connections; returns the 2xx count.
    `conc` 0: one request per connection (oha --disable-keepalive, one at a time)."""
    if conc == 0:
        return load_new_connections(url, n, body, headers)
    args = ["h2load", "--h1", "-n", str(n), "-c", str(conc), "-t", "1"]
    if body is not None:
        args += ["-d", str(body)]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=600).stdout
    m = re.search(r"status codes: (\d+) 2xx", out)
    return int(m.group(1)) if m else 0


def load_new_connections(url: str, n: int, body: Path | None, headers: dict[str, str]) -> int:
    args = [OHA, "-n", str(n), "-c", "1", "--disable-keepalive", "--no-tui", "--output-format", "json"]
    if body is not None:
        args += ["-m", "POST", "-D", str(body)]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=600).stdout
    codes = json.loads(out).get("statusCodeDistribution", {})
    return sum(int(c) for s, c in codes.items() if s.startswith("2"))


def switches(pids: list[int]) -> tuple[int, int]:
    """Voluntary and involuntary context switches of every thread of `pids` so far."""
    vol = invol = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                text = (task / "status").read_text()
            except OSError:
                continue
            for line in text.splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    vol += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    invol += int(line.split()[1])
    return vol, invol


def tcp_out_segments() -> int:
    """TCP segments sent by the whole machine (/proc/net/snmp `Tcp: OutSegs`)."""
    lines = [ln.split() for ln in Path("/proc/net/snmp").read_text().splitlines() if ln.startswith("Tcp:")]
    return int(lines[1][lines[0].index("OutSegs")])


def cpu_ticks(pids: list[int]) -> tuple[int, int]:
    user = sys_ = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        user, sys_ = user + int(fields[11]), sys_ + int(fields[12])
    return user, sys_


def measure(pids: list[int], label: str, url: str, conc: int, body: Path | None, headers: dict[str, str]) -> dict:
    # A connection per request leaves a port in TIME_WAIT each: fewer of them.
    n, warm = (N, WARMUP) if conc else (NEW_N, 200)
    ok = load(url, warm, conc, body, headers)
    if ok != warm:
        raise RuntimeError(f"{label}: {ok}/{warm} warm-up requests answered 2xx")
    events = ",".join(["raw_syscalls:sys_enter", *(f"syscalls:sys_enter_{n}" for n in NAMES), *KERNEL])
    perf = subprocess.Popen(["perf", "stat", "-x", ",", "-e", events, "-p", ",".join(map(str, pids))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # perf attaches to every thread
    sw0, cpu0, seg0, t0 = switches(pids), cpu_ticks(pids), tcp_out_segments(), time.monotonic()
    ok = load(url, n, conc, body, headers)
    elapsed = time.monotonic() - t0
    sw1, cpu1, seg1 = switches(pids), cpu_ticks(pids), tcp_out_segments()
    time.sleep(0.1)
    perf.send_signal(signal.SIGINT)
    _, err = perf.communicate(timeout=60)
    counts: dict[str, int] = {}
    kernel: dict[str, float] = {}
    for line in err.splitlines():
        parts = line.split(",")
        if len(parts) > 2 and parts[0].isdigit():
            if parts[2] in KERNEL:
                kernel[KERNEL[parts[2]]] = int(parts[0]) / n
            else:
                counts[parts[2].split(":")[-1].removeprefix("sys_enter_")] = int(parts[0])
    total = counts.pop("sys_enter", 0)
    per = {k: v / n for k, v in counts.items() if v}
    row = {
        "label": label, "conc": conc, "ok": ok, "requests": n,
        "syscalls": total / n, "by_call": per, "other": (total - sum(counts.values())) / n,
        "vol": (sw1[0] - sw0[0]) / n, "invol": (sw1[1] - sw0[1]) / n,
        "user_us": (cpu1[0] - cpu0[0]) / CLK_TCK / n * 1e6, "sys_us": (cpu1[1] - cpu0[1]) / CLK_TCK / n * 1e6,
        "rps": n / elapsed, "kernel": kernel, "segments": (seg1 - seg0) / n,
    }
    top = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1]) if v >= 0.01)
    print(f"  {label:<42} c={conc:<3} {row['syscalls']:5.2f} syscalls/req ({top}); switches vol {row['vol']:.2f} "
          f"invol {row['invol']:.2f}; " + ", ".join(f"{k} {v:.2f}" for k, v in kernel.items()) + f"; TCP segments {row['segments']:.2f}; cpu {row['user_us']:.1f}+{row['sys_us']:.1f} us/req, {row['rps']:.0f} req/s ({ok}/{n} 2xx)", flush=True)
    return row


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def run(work: Path, static_block: str, proxy_block, modelgate_cfg) -> str:
    """Every path at every concurrency; returns the section text for RESULTS.md.
    `modelgate_cfg(work, upstream)` -> (modelgate, api_key, iris_v2_body)."""
    work.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    up = peers.start_nginx(work / "static", static_block, worker_processes=1)
    body = work / "body.json"
    body.write_text(json.dumps({"instances": peers.IRIS_ROWS}))
    hdr = {"Content-Type": "application/json"}
    try:
        if wanted("nginx plain proxy"):
            ng = peers.start_nginx(work / "nginx", proxy_block(up.url), worker_processes="auto")
            try:
                for c in concurrencies():
                    rows.append(measure([ng.pid, *_children(ng.pid)], "nginx plain proxy", f"{ng.url}/v1/models/fast:predict",
                                        c, body, hdr))
            finally:
                ng.stop()
        rows += _bare(up.url, body, hdr)
        rows += _modelgate(work, up.url, body, hdr, modelgate_cfg)
    finally:
        up.stop()
    return section(rows)


def _bare(upstream: str, body: Path, hdr: dict) -> list[dict]:
    rows = []
    for proc, _mode, label, url in results.floor_proxies(wanted, upstream, 30):
        for c in concurrencies():
            rows.append(measure([proc.pid], label, url, c, body, hdr))
    return rows


def _modelgate(work: Path, upstream: str, body: Path, hdr: dict, modelgate_cfg) -> list[dict]:
    if not (wanted("modelgate API key") or wanted("modelgate built-in iris V2 REST")):
        return []
    mg, key, iris_body = modelgate_cfg(work, upstream)
    iris = work / "iris.json"
    iris.write_text(iris_body)
    auth = {**hdr, "Authorization": f"Bearer {key}"}
    rows = []
    try:
        for c in concurrencies():
            if wanted("modelgate API key"):
                rows.append(measure([mg.pid], "modelgate API key", f"{mg.url}/v1/models/fast:predict", c, body, auth))
            if wanted("modelgate built-in iris V2 REST"):
                rows.append(measure([mg.pid], "modelgate built-in iris V2 REST", f"{mg.url}/v2/models/iris/infer", c, iris, auth))
    finally:
        mg.stop()
    return rows


def section(rows: list[dict]) -> str:
    la = os.getloadavg()
    lines = [
        "## Scenario `syscalls` (system calls and context switches per request, issue 14 P1/P2/P3)",
        "",
        f"Measured {results.now()} (modelgate {results.build()}): {N} requests after {WARMUP} warm-up, `h2load --h1 -c C` (C = 0: {NEW_N} requests,",
        "each on a new connection, one at a time, `oha --disable-keepalive`), counted with",
        "`perf stat -e syscalls:sys_enter_*` on the server's process (every thread) and its `/proc` context-switch",
        "counters. modelgate and nginx run as in `jwt-fast` (2 I/O threads / `worker_processes auto`, decision log",
        "on); the floor (`bare_proxy`) runs one thread; upstream: nginx `return 200`. Wake-ups (of any task) and",
        "IPIs are those the server's threads cause; TCP segments are the whole machine's. Counts depend little on",
        f"load; CPU µs and req/s do (load average {la[0]:.1f} at the end).",
        "",
        "| path | C | syscalls / req | by call (≥ 0.01 / req) | ctx switches vol / invol | " + " | ".join(KERNEL.values())
        + " | TCP segments | CPU µs/req user + sys | req/s | 2xx |",
        "|---|---:|---:|---|---:|" + "---:|" * len(KERNEL) + "---:|---:|---:|---:|",
    ]
    paths = list(dict.fromkeys(r["label"] for r in rows))
    for r in sorted(rows, key=lambda r: (paths.index(r["label"]), CONCS.index(r["conc"]) if r["conc"] in CONCS else 0)):
        calls = sorted(r["by_call"].items(), key=lambda kv: -kv[1])
        by = ", ".join(f"{k} {v:.2f}" for k, v in calls if v >= 0.01)
        if r["other"] >= 0.01:
            by += f", other {r['other']:.2f}"
        kern = " | ".join(f"{r['kernel'].get(k, 0):.2f}" for k in KERNEL.values())
        lines.append(f"| {r['label']} | {r['conc']} | {r['syscalls']:.2f} | {by} | {r['vol']:.2f} / {r['invol']:.2f} | {kern} | "
                     f"{r['segments']:.2f} | {r['user_us']:.1f} + {r['sys_us']:.1f} | {r['rps']:.0f} | {r['ok']}/{r['requests']} |")
    return "\n".join(lines) + "\n"
