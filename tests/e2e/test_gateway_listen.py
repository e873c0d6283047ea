"""The listener: HTTP/2 cleartext (prior knowledge) and over TLS with ALPN,
HTTP/1.1 over TLS, and graceful shutdown that lets in-flight requests finish."""

from __future__ import annotations

import http.server
import signal
import subprocess
import threading
import time

import pytest
import requests

from gw import V2_BODY, bearer, create_key


@pytest.fixture
def certs(tmp_path):
    key, crt = tmp_path / "tls.key", tmp_path / "tls.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return crt, key


def curl(*args):
    return subprocess.run(["curl", "-s", "-S", *args], capture_output=True, text=True, timeout=20)


def test_h2c_and_tls_alpn(tmp_path, certs, run_modelgate, start_modelgate, mlserver_iris):
    crt, key = certs
    keys = tmp_path / "keys.json"
    k = create_key(run_modelgate, keys, "a")
    mg = start_modelgate(f"""
listen:
  - address: "__LISTEN__"
  - address: "__LISTEN2__"
    tls: {{cert: "{crt}", key: "{key}"}}
admin: {{address: "__ADMIN__"}}
auth: {{api_keys: {{file: "{keys}"}}}}
models:
  - name: iris
    protocols: [v2]
    upstream: {{url: "{mlserver_iris.rest_url}"}}
""")
    tls_addr = mg.config_path.read_text().split('address: "')[2].split('"')[0]
    body = '{"inputs": [{"name": "predict", "shape": [1, 4], "datatype": "FP32", "data": [[1, 2, 3, 4]]}]}'
    common = ["-H", "Content-Type: application/json", "-H", f"Authorization: Bearer {k}", "-d", body,
              "-o", "/dev/null", "-w", "%{http_version} %{http_code}"]
    assert curl("--http2-prior-knowledge", *common, f"{mg.url}/v2/models/iris/infer").stdout == "2 200"
    assert curl("--http1.1", *common, f"{mg.url}/v2/models/iris/infer").stdout == "1.1 200"
    assert curl("--cacert", str(crt), "--http2", *common, f"https://localhost:{tls_addr.rsplit(':', 1)[1]}/v2/models/iris/infer").stdout == "2 200"
    assert curl("--cacert", str(crt), "--http1.1", *common, f"https://localhost:{tls_addr.rsplit(':', 1)[1]}/v2/models/iris/infer").stdout == "1.1 200"
    r = curl("--cacert", str(crt), "--http2", "-o", "/dev/null", "-w", "%{http_code}", f"https://localhost:{tls_addr.rsplit(':', 1)[1]}/v2/models/iris/infer", "-d", body)
    assert r.stdout == "401"


def test_invalid_tls_files_stop_start(tmp_path, run_modelgate):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f'listen: {{address: "127.0.0.1:0", tls: {{cert: "{bad}", key: "{bad}"}}}}\nmodels: [{{name: a, upstream: {{url: "http://127.0.0.1:1"}}}}]\n')
    r = run_modelgate(["validate", "--config", cfg])
    assert r.returncode == 2 and "listen[0].tls" in r.stderr and "bad.pem" in r.stderr
    r = run_modelgate(["serve", "--config", cfg], timeout=10)
    assert r.returncode != 0 and "bad.pem" in r.stderr


class _Slow(http.server.BaseHTTPRequestHandler):
    """A stand-in for a model server that takes 1.5 s to answer (to keep a
    request in flight while modelgate shuts down)."""

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", 0)))
        time.sleep(1.5)
        body = b'{"predictions":[1,1]}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_sigterm_drains_in_flight_requests(tmp_path, run_modelgate, start_modelgate):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    keys = tmp_path / "keys.json"
    k = create_key(run_modelgate, keys, "a")
    mg = start_modelgate(f"""
listen: {{address: "__LISTEN__", drain_timeout: 10s}}
admin: {{address: "__ADMIN__"}}
auth: {{api_keys: {{file: "{keys}"}}}}
models:
  - name: slow
    protocols: [v1]
    upstream: {{url: "http://127.0.0.1:{srv.server_address[1]}"}}
""")
    result = {}

    def call():
        result["r"] = requests.post(f"{mg.url}/v1/models/slow:predict", json={"instances": [[1]]}, headers=bearer(k), timeout=10)

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.5)
    mg.send_signal(signal.SIGTERM)
    t.join(10)
    assert result["r"].status_code == 200 and result["r"].json() == {"predictions": [1, 1]}
    deadline = time.monotonic() + 10
    while mg.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mg.returncode == 0
    assert "shutting down" in mg.stderr() and '"stopped"' in mg.stderr()
    # The in-flight request's decision record was written before exit.
    assert [d["status"] for d in mg.decisions() if d["path"] == "/v1/models/slow:predict"] == [200]
    # New connections are refused once draining started.
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{mg.url}/v1/models/slow:predict", json={}, headers=bearer(k), timeout=2)
    srv.shutdown()


def test_port_in_use_is_a_clear_error(tmp_path, run_modelgate, mlserver_iris):
    port = mlserver_iris.rest_url.rsplit(":", 1)[1]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f'listen: {{address: "127.0.0.1:{port}"}}\nmodels: [{{name: a, upstream: {{url: "http://127.0.0.1:1"}}}}]\n')
    r = run_modelgate(["serve", "--config", cfg], timeout=10)
    assert r.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr
