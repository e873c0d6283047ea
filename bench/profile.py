"""bench/profile.sh's body: modelgate (API key) → nginx `return 200` under wrk,
`perf record` on modelgate's PID, a flame graph by inferno, the top functions.

Writes bench/flamegraph-api-key.svg, bench/profile-top.txt and the `profile`
section of bench/RESULTS.md (self-time shares of the top functions)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import bench
import results

HERE = Path(__file__).resolve().parent
SVG = HERE / "flamegraph-api-key.svg"
TOP = HERE / "profile-top.txt"
FREQ = os.environ.get("BENCH_PERF_FREQ", "499")


def record(pid: int, data: Path, seconds: int) -> subprocess.Popen:
    """perf record on `pid`, with hardware cycles if allowed, else cpu-clock."""
    for event in ([], ["-e", "cpu-clock"]):
        probe = subprocess.run(["perf", "record", *event, "-o", os.devnull, "--", "true"], capture_output=True)
        if probe.returncode == 0:
            return subprocess.Popen(["perf", "record", *event, "-F", FREQ, "--call-graph", "dwarf,16384", "-p", str(pid),
                                     "-o", str(data), "--", "sleep", str(seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    raise SystemExit("perf cannot record here (perf_event_paranoid?); use bench/callgrind.sh and callgrind_annotate instead")


def top_functions(data: Path, n: int = 25) -> str:
    out = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", "dso,symbol", "--stdio",
                          "--percent-limit", "0.7", "-g", "none"], capture_output=True, text=True).stdout
    rows = [re.sub(r"(\s+-)+\s*$", "", " ".join(line.split())) for line in out.splitlines()
            if line.strip() and not line.startswith("#")]
    return "\n".join(rows[:n])


def main() -> None:
    up = bench.nginx(bench.STATIC_BLOCK, workers=1, name="static-prof")
    mg, key = bench.modelgate(f'  - {{name: fast, protocols: [v1], upstream: {{url: "{up.url}"}}}}')
    data = bench.WORK / "perf.data"
    try:
        body = json.dumps({"instances": bench.peers.IRIS_ROWS})
        h = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        u = f"{mg.url}/v1/models/fast:predict"
        rec = record(mg.pid, data, bench.DURATION)
        row = bench.wrk(u, "POST", body, h, bench.expect_ok(u, "POST", body, h))
        _, err = rec.communicate(timeout=bench.DURATION + 120)
        if rec.returncode != 0:
            raise SystemExit(f"perf record failed: {err.decode(errors='replace')[-500:]}")
    finally:
        mg.stop()
        up.stop()
    script = subprocess.run(["perf", "script", "-i", str(data)], capture_output=True, check=True).stdout
    folded = subprocess.run(["inferno-collapse-perf"], input=script, capture_output=True, check=True).stdout
    SVG.write_bytes(subprocess.run(["inferno-flamegraph", "--title", "modelgate, API key path, nginx upstream"],
                                   input=folded, capture_output=True, check=True).stdout)
    top = top_functions(data)
    TOP.write_text(top + "\n")
    kernel = sum(float(l.split("%")[0]) for l in top.splitlines() if "[kernel" in l)
    text = "\n".join([
        "## Scenario `profile` (bench/profile.sh, perf + inferno)",
        "",
        f"Measured {results.now()}: modelgate (API key, 2 I/O threads) → nginx `return 200` under wrk "
        f"-t{bench.THREADS} -c{bench.CONNS} for {bench.DURATION} s ({row['rps']:.0f} req/s during the profile, "
        f"load average {os.getloadavg()[0]:.1f}). Flame graph: `bench/flamegraph-api-key.svg`. "
        f"Top self-time entries (perf report --no-children; kernel rows sum to {kernel:.1f}% of the listed):",
        "",
        "```",
        top,
        "```",
    ])
    print(text)
    results.replace_section("profile", text + "\n")


if __name__ == "__main__":
    sys.modules.setdefault("bench", bench)
    main()
