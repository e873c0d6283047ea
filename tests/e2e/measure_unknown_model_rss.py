"""Measures modelgate's RSS while clients ask for random unknown models
without a credential (`GET /v2/models/<random>/ready`), and the size of
/metrics. Before issue 9 each name added a labelled series (~47 lines):
300 requests grew RSS from 14 MB to 25 MB. Not a pytest test (it takes
minutes); run:

  MODELGATE_BIN=/work/tgt/NAME/debug/modelgate ~/.cache/modelgate/venv/bin/python \
      tests/e2e/measure_unknown_model_rss.py [REQUESTS] [THREADS]
"""

from __future__ import annotations

import http.client
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def hammer(addr: str, count: int) -> None:
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    for _ in range(count):
        conn.request("GET", f"/v2/models/{secrets.token_hex(12)}/ready")
        resp = conn.getresponse()
        resp.read()
        if resp.status != 401:
            raise RuntimeError(f"unexpected status {resp.status}")


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    work = Path(tempfile.mkdtemp(prefix="mg-rss-"))
    model_dir = work / "models" / "iris"
    model_dir.mkdir(parents=True)
    (model_dir / "model.onnx").write_bytes((ROOT / "examples/models/iris/model.onnx").read_bytes())
    keys = work / "keys.json"
    peers.run_modelgate(["keys", "--file", str(keys), "create", "--name", "k", "--models", "iris"], check=True)
    mg = peers.start_modelgate(work, f"""
listen: {{address: "__LISTEN__"}}
admin: {{address: "__ADMIN__"}}
auth: {{api_keys: {{file: "{keys}"}}}}
log: {{decisions: "off"}}
models:
  - name: iris
    builtin: {{dir: "{model_dir}"}}
""")
    try:
        hammer(mg.listen, 100)  # warm: the (unknown) series exist
        base = rss_kib(mg.pid)
        print(f"start: RSS {base / 1024:.1f} MiB")
        done, step, start = 0, max(total // 10, 1), time.monotonic()
        while done < total:
            n = min(step, total - done)
            ts = [threading.Thread(target=hammer, args=(mg.listen, n // threads)) for _ in range(threads)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            done += (n // threads) * threads
            print(f"{done:>7} requests: RSS {rss_kib(mg.pid) / 1024:.1f} MiB ({time.monotonic() - start:.0f} s)")
        metrics = http.client.HTTPConnection(*mg.admin.rsplit(":", 1), timeout=10)
        metrics.request("GET", "/metrics")
        body = metrics.getresponse().read().decode()
        lines = [l for l in body.splitlines() if not l.startswith("#")]
        print(f"after {done} requests: RSS {rss_kib(mg.pid) / 1024:.1f} MiB (start {base / 1024:.1f}); "
              f"/metrics {len(body)} bytes, {len(lines)} sample lines")
    finally:
        mg.stop()


if __name__ == "__main__":
    main()
