"""`modelgate demo` — the README's first command: the printed lines work as printed."""

from __future__ import annotations

import subprocess
import time

from peers import free_addr, require_modelgate_bin


def test_demo_prints_working_curl_lines(tmp_path):
    listen, admin = free_addr(), free_addr()
    out, err = tmp_path / "demo.out", tmp_path / "demo.err"
    proc = subprocess.Popen([str(require_modelgate_bin()), "demo", "--listen", listen, "--admin", admin, "--data-dir", str(tmp_path / "data")],
                            stdout=out.open("w"), stderr=err.open("w"), start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while "Stop with Ctrl-C" not in out.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, err.read_text()
            time.sleep(0.1)
        text = out.read_text()
        lines = [l for l in text.splitlines() if l.startswith(("export ", "curl "))]
        assert lines[0].startswith("export MODELGATE_KEY=mgk_")
        assert sum(l.startswith("curl ") for l in lines) == 4
        # Run each curl line exactly as printed, in a shell that ran the export line.
        results = []
        for line in lines[1:]:
            r = subprocess.run(["bash", "-c", f"{lines[0]}\n{line}"], capture_output=True, text=True, timeout=20)
            results.append(r.stdout)
        assert results[0].startswith("HTTP/1.1 401") and "x-ext-auth-reason: credential not found" in results[0]
        assert results[1] == '{"predictions":[1,1]}'
        assert results[2].startswith("HTTP/1.1 401")
        assert '"name":"label"' in results[3] and '"data":[1,1]' in results[3]
        # The key is stored only as a digest.
        key = lines[0].split("=", 1)[1]
        assert key not in (tmp_path / "data" / "keys.json").read_text()
        assert key not in err.read_text()
    finally:
        proc.terminate()
        proc.wait(10)


def test_demo_again_gives_a_new_key(tmp_path, run_modelgate):
    """A second start rotates the demo key (a stored key cannot be shown again)."""
    data = tmp_path / "data"
    keys = []
    for _ in range(2):
        listen, admin = free_addr(), free_addr()
        out = tmp_path / "o.txt"
        p = subprocess.Popen([str(require_modelgate_bin()), "demo", "--listen", listen, "--admin", admin, "--data-dir", str(data)],
                             stdout=out.open("w"), stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while "export MODELGATE_KEY=" not in out.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
            keys.append(next(l for l in out.read_text().splitlines() if l.startswith("export")))
        finally:
            p.terminate()
            p.wait(10)
    assert keys[0] != keys[1]
    listed = run_modelgate(["keys", "--file", data / "keys.json", "list", "--json"]).stdout
    assert listed.count('"name": "demo"') == 1
