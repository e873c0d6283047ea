"""bench/RESULTS.md, one section per scenario.

Each scenario owns the text between `<!-- BEGIN name -->` and
`<!-- END name -->`; a run replaces only the sections of the scenarios it
ran and keeps everything else (other scenarios' latest numbers, notes written
by hand). Issue 14's targets (P1 … P5) are kept in bench/targets.json, one
latest figure per id with its date, and the targets section is rebuilt from it
on every run, so `bench/run.sh instructions` does not erase P3.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import subprocess
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# BENCH_RESULTS_DIR: write RESULTS.md and targets.json there instead (a
# training run for profile-guided optimisation, scripts/pgo-train.sh, must not
# overwrite the recorded figures).
_OUT = Path(os.environ.get("BENCH_RESULTS_DIR") or BENCH)
RESULTS = _OUT / "RESULTS.md"
TARGETS = _OUT / "targets.json"
HEADER = (
    "# Benchmark results\n\n"
    "Produced by `bench/run.sh`: each scenario rewrites only its own section (between its\n"
    "`BEGIN`/`END` markers); the targets table is rebuilt from `bench/targets.json`.\n"
)

# id, measure, target text (issue 14's table)
TARGET_ROWS = [
    ("P1", "JWT-checked path vs nginx plain proxy, same fast upstream (req/s)", "≥ 1.0× (≥ 0.9× with reasons)"),
    ("P1b", "instructions per request vs nginx plain proxy (callgrind, API key)", "≤ 2.0×"),
    ("P2", "added latency over direct at 1k req/s (API key), p50 / p99", "p50 ≤ 0.05 ms, p99 ≤ 0.2 ms"),
    ("P3", "built-in iris V2 REST vs MLServer direct", "≥ 50×"),
    ("P4", "modelgate → MLServer vs direct", "≥ 0.98×"),
    ("P5", "idle RSS / 1M keys RSS / startup", "≤ 20 MB / ≤ 300 MB / ≤ 100 ms"),
]


FLOORS = (("hyper", "bare hyper server + hyper client (floor)"),
          ("lean", "bare hyper server + lean client (floor)"))


def floors(wanted) -> tuple[str, list[tuple[str, str]]] | None:
    """The floor binary (`crates/modelgate-upstream/examples/bare_proxy.rs`,
    MODELGATE_BARE_PROXY_BIN as run.sh builds it) and the (mode, row label)
    pairs `wanted` keeps; None when the binary is not there."""
    real = os.environ.get("MODELGATE_BARE_PROXY_BIN", "")
    if not real or not Path(real).exists():
        return None
    return real, [(mode, label) for mode, label in FLOORS if wanted(label)]


@contextlib.contextmanager
def floor_server(argv: list[str], port: int, mode: str, wait_s: float):
    """Runs one floor proxy (`argv`, listening on `port`) until the block
    ends; stops it by PID."""
    import peers  # tests/e2e, on the path of every bench script

    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + wait_s
        while not peers.port_open(port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"bare_proxy {mode} did not start")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def floor_proxies(wanted, upstream: str, wait_s: float, wrap=lambda mode, real: real):
    """Each floor proxy `wanted` keeps, in turn, in front of `upstream`:
    yields (process, mode, row label, predict URL) while it runs. `wrap(mode,
    binary)` may return another command to start (callgrind's wrapper)."""
    import peers

    found = floors(wanted)
    if not found:
        return
    real, modes = found
    target = upstream.removeprefix("http://").rstrip("/")
    for mode, label in modes:
        port = peers.free_port()
        argv = [str(wrap(mode, real)), f"127.0.0.1:{port}", target, mode]
        with floor_server(argv, port, mode, wait_s) as proc:
            yield proc, mode, label, f"http://127.0.0.1:{port}/v1/models/fast:predict"


def build() -> str:
    """Which cargo profile the measured modelgate binary was built with
    (`dist`, `release`, ...): the name of the folder holding `MODELGATE_BIN`."""
    named = os.environ.get("MODELGATE_BENCH_BUILD", "")
    if named:
        return f"`{named}` build"
    parent = Path(os.environ.get("MODELGATE_BIN", "")).parent.name
    return f"`{parent}` build" if parent else "build not named (MODELGATE_BIN unset)"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def load_targets() -> dict:
    try:
        return json.loads(TARGETS.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def set_target(tid: str, value: str, met: bool | None, source: str) -> None:
    """Record the latest measured figure for target `tid`."""
    t = load_targets()
    t[tid] = {"value": value, "met": met, "source": source, "at": now()}
    TARGETS.write_text(json.dumps(t, indent=1, ensure_ascii=False) + "\n")


def targets_table() -> str:
    t = load_targets()
    lines = ["| id | measure | target | measured | met | when, by |", "|---|---|---|---|---|---|"]
    for tid, measure, target in TARGET_ROWS:
        m = t.get(tid)
        if m:
            met = {True: "yes", False: "no", None: "-"}[m.get("met")]
            lines.append(f"| {tid} | {measure} | {target} | {m['value']} | {met} | {m['at']}, `{m['source']}` |")
        else:
            lines.append(f"| {tid} | {measure} | {target} | not measured | - | - |")
    return "\n".join(lines) + "\n"


def replace_section(name: str, body: str) -> None:
    """Replace (or append) the section `name` in RESULTS.md."""
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    pat = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pat.search(text):
        text = pat.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def write_targets_section() -> str:
    table = targets_table()
    replace_section("targets", "## Issue 14 targets (latest figure for each)\n\n" + table)
    return table
