"""The admin API (/admin/api) on the admin listener, against the real binary
serving the bundled iris ONNX model: every admin request goes through the one
decision function (admin role from `admin.keys` / `admin.roles`), state
changes are CSRF-protected, secrets are shown once and never listed, and
everything rendered is escaped."""

from __future__ import annotations

import json
import re
import subprocess
import shutil
import time
from pathlib import Path

import pytest
import requests

from gw import V2_BODY, bearer, create_key

ROOT = Path(__file__).resolve().parents[2]


def config(keys: Path, model_dir: Path, extra: str = "") -> str:
    return f"""
listen: {{address: "__LISTEN__"}}  # keys from Authorization or x-api-key (the default)
admin:
  address: "__ADMIN__"
  keys: [ops]
  roles: {{claim: groups, values: [modelgate-admins]}}
auth: {{api_keys: {{file: "{keys}"}}}}
models:
  - name: iris
    builtin: {{dir: "{model_dir}"}}
    public_operations: [model_ready]
policies:
  - name: watch-markup
    action: AUDIT
    rules: [{{to: [{{operation: {{paths: ["/x<script>alert('policy')</script>"]}}}}]}}]
{extra}"""


@pytest.fixture
def gw(tmp_path, run_modelgate, start_modelgate):
    keys = tmp_path / "keys.json"
    model_dir = tmp_path / "models" / "iris"
    model_dir.mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "models" / "iris" / "model.onnx", model_dir / "model.onnx")
    admin_key = create_key(run_modelgate, keys, "ops", "*")
    user_key = create_key(run_modelgate, keys, "alice", "iris")
    mg = start_modelgate(config(keys, model_dir))
    mg.admin_key, mg.user_key, mg.keys_file = admin_key, user_key, keys
    return mg


def api(mg, path: str) -> str:
    return f"{mg.admin_url}/admin/api/{path}"


def csrf_session(mg) -> tuple[requests.Session, str]:
    """A client that authenticates with the x-api-key header — not the
    Authorization header — so it must pass the CSRF check like a browser."""
    s = requests.Session()
    s.headers["x-api-key"] = mg.admin_key
    r = s.get(f"{mg.admin_url}/admin/keys", timeout=10)
    assert r.status_code == 200, r.text
    token = s.cookies.get("mg_csrf")
    assert token and len(token) == 64
    assert "HttpOnly" not in r.headers["set-cookie"] and "SameSite=Strict" in r.headers["set-cookie"]
    return s, token


def test_non_admin_identities_get_403_and_anonymous_401(gw):
    assert requests.get(api(gw, "models"), timeout=10).status_code == 401
    r = requests.get(api(gw, "models"), headers=bearer(gw.user_key), timeout=10)
    assert r.status_code == 403, r.text
    assert "admin role" in r.json()["error"]
    r = requests.get(api(gw, "models"), headers=bearer(gw.admin_key), timeout=10)
    assert r.status_code == 200, r.text
    [m] = r.json()
    assert (m["name"], m["kind"], m["health"], m["require_token"]) == ("iris", "builtin", "ready", True)
    # The admin paths are not served on the public listener (no admin.ui.on_public):
    # an unknown path, before authentication.
    for h in ({}, bearer(gw.user_key), bearer(gw.admin_key)):
        r = requests.get(f"{gw.url}/admin/api/models", headers=h, timeout=10)
        assert r.status_code == 404, r.text
    # Each admin request is one decision record, with its rule.
    recs = [d for d in gw.wait_decisions(4) if d.get("protocol") == "admin"]
    assert [(d["status"], d.get("basis")) for d in recs[:3]] == [(401, None), (403, "admin_role"), (200, "admin_role")]


def test_explain_is_the_decision_function(gw):
    h = bearer(gw.admin_key)
    q = {"method": "POST", "path": "/v2/models/iris/infer", "identity": "alice"}
    r = requests.post(api(gw, "explain"), json=q, headers=h, timeout=10)
    assert r.status_code == 200, r.text
    a = r.json()
    assert (a["decision"], a["status"], a["basis"], a["model"]) == ("allow", 200, "grant", "iris")
    assert a["why"], a
    q = {"method": "POST", "path": "/v2/models/iris/infer", "claims": {"sub": "bob", "groups": ["x"]}}
    a = requests.post(api(gw, "explain"), json=q, headers=h, timeout=10).json()
    assert (a["decision"], a["status"]) == ("deny", 403), a
    # The admin API itself is explained the same way.
    q = {"path": "/admin/api/keys", "claims": {"sub": "carol", "groups": ["modelgate-admins"]}, "admin_listener": True}
    a = requests.post(api(gw, "explain"), json=q, headers=h, timeout=10).json()
    assert (a["decision"], a["basis"], a["protocol"]) == ("allow", "admin_role", "admin"), a
    # On the public listener (no admin.ui.on_public) the admin API does not exist.
    q["admin_listener"] = False
    a = requests.post(api(gw, "explain"), json=q, headers=h, timeout=10).json()
    assert (a["decision"], a["status"]) == ("deny", 404), a


def test_keys_secret_once_never_listed_and_revocation_applies_at_once(gw):
    h = bearer(gw.admin_key)
    r = requests.post(api(gw, "keys"), json={"name": "svc", "models": ["iris"], "expires": "1d"}, headers=h, timeout=10)
    assert r.status_code == 201, r.text
    secret = r.json()["key"]
    assert secret.startswith("mgk_")
    listed = requests.get(api(gw, "keys"), headers=h, timeout=10)
    assert listed.status_code == 200
    assert secret not in listed.text and secret.split("_")[-1] not in listed.text
    assert "sha256" not in listed.text
    svc = [k for k in listed.json() if k["name"] == "svc"][0]
    assert svc["expires_at"] and svc["status"] == "active"
    infer = f"{gw.url}/v2/models/iris/infer"
    assert requests.post(infer, json=V2_BODY, headers=bearer(secret), timeout=10).status_code == 200
    rot = requests.post(api(gw, "keys/svc/rotate"), json={"grace": "1h"}, headers=h, timeout=10)
    assert rot.status_code == 200, rot.text
    new = rot.json()["key"]
    assert new != secret
    assert requests.post(infer, json=V2_BODY, headers=bearer(secret), timeout=10).status_code == 200  # grace
    assert requests.post(infer, json=V2_BODY, headers=bearer(new), timeout=10).status_code == 200
    assert requests.delete(api(gw, "keys/svc"), headers=h, timeout=10).status_code == 200
    assert requests.post(infer, json=V2_BODY, headers=bearer(new), timeout=10).status_code == 401
    assert requests.post(infer, json=V2_BODY, headers=bearer(secret), timeout=10).status_code == 401
    # The CLI sees the same file.
    assert json.loads(gw.keys_file.read_text())["keys"][-1]["revoked_at"]


def test_csrf_missing_or_foreign_token_is_refused(gw):
    s, token = csrf_session(gw)
    body = {"name": "viaform", "models": ["iris"]}
    r = s.post(api(gw, "keys"), json=body, timeout=10)
    assert r.status_code == 403 and "CSRF" in r.json()["error"], r.text
    r = s.post(api(gw, "keys"), json=body, headers={"X-CSRF-Token": "f" * 64}, timeout=10)
    assert r.status_code == 403, r.text
    # The right token from another origin.
    r = s.post(api(gw, "keys"), json=body, timeout=10,
               headers={"X-CSRF-Token": token, "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403, r.text
    assert "viaform" not in requests.get(api(gw, "keys"), headers=bearer(gw.admin_key), timeout=10).text
    r = s.post(api(gw, "keys"), json=body, headers={"X-CSRF-Token": token, "Origin": gw.admin_url}, timeout=10)
    assert r.status_code == 201, r.text
    # A no-JS form post carries the token as a field.
    r = s.post(f"{gw.admin_url}/admin/keys/viaform/revoke", data={"csrf": token}, allow_redirects=False, timeout=10)
    assert r.status_code == 303, r.text
    r = s.post(f"{gw.admin_url}/admin/keys/viaform/revoke", data={}, allow_redirects=False, timeout=10)
    assert r.status_code == 403


def test_require_token_switch_edits_the_config_through_reload(gw):
    h = bearer(gw.admin_key)
    infer = f"{gw.url}/v2/models/iris/infer"
    assert requests.post(infer, json=V2_BODY, timeout=10).status_code == 401
    r = requests.put(api(gw, "models/iris/require_token"), json={"require": False}, headers=h, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["require_token"] is False
    assert "infer" in gw.config_path.read_text()
    assert requests.post(infer, json=V2_BODY, timeout=10).status_code == 200
    r = requests.put(api(gw, "models/iris/require_token"), json={"require": True}, headers=h, timeout=10)
    assert r.json()["require_token"] is True
    assert requests.post(infer, json=V2_BODY, timeout=10).status_code == 401
    assert requests.put(api(gw, "models/nope/require_token"), json={"require": True}, headers=h, timeout=10).status_code == 404


def test_a_failed_config_edit_keeps_the_old_config(gw):
    """The file on disk was broken by hand (its reload was refused, the old
    configuration serves): the switch cannot edit it, says so, and neither
    the file nor the running configuration changes."""
    h = bearer(gw.admin_key)
    infer = f"{gw.url}/v2/models/iris/infer"
    broken = gw.config_path.read_text() + "\nmodels: [oops\n"
    gw.config_path.write_text(broken)
    time.sleep(1.5)  # the watcher tries it, and keeps the old configuration
    r = requests.put(api(gw, "models/iris/require_token"), json={"require": False}, headers=h, timeout=10)
    assert r.status_code == 400, r.text
    assert "cannot edit the configuration file" in r.json()["error"]
    assert gw.config_path.read_text() == broken
    assert requests.post(infer, json=V2_BODY, timeout=10).status_code == 401
    assert requests.post(infer, json=V2_BODY, headers=bearer(gw.user_key), timeout=10).status_code == 200


def test_rendered_names_are_escaped(gw):
    h = bearer(gw.admin_key)
    page = requests.get(f"{gw.admin_url}/admin/policies", headers=h, timeout=10)
    assert page.status_code == 200
    assert "<script>alert(" not in page.text
    assert "&lt;script&gt;alert(" in page.text and "watch-markup" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    s, token = csrf_session(gw)
    r = s.post(f"{gw.admin_url}/admin/keys", data={"csrf": token, "name": "<script>x</script>", "models": "iris"}, timeout=10)
    assert r.status_code == 400
    assert "<script>x</script>" not in r.text and "&lt;script&gt;x&lt;/script&gt;" in r.text
    # Markup in the "why" form's path comes back escaped in the answer.
    evil = "/v2/models/<script>alert(1)</script>/infer"
    r = s.post(f"{gw.admin_url}/admin/policies/explain", timeout=10,
               data={"csrf": token, "method": "POST", "path": evil, "identity": "alice"})
    assert r.status_code == 200, r.text
    assert "<script>alert(1)" not in r.text and "&lt;script&gt;alert(1)" in r.text
    # A path with markup in the live view (the decision stream and its page).
    requests.get(f"{gw.url}/v2/models/%3Cimg%20src=x%3E/ready", headers=bearer(gw.user_key), timeout=10)
    page = requests.get(f"{gw.admin_url}/admin/decisions", headers=h, timeout=10).text
    assert "<img src=x>" not in page


def test_decisions_list_and_stream_filter(gw):
    h = bearer(gw.admin_key)
    infer = f"{gw.url}/v2/models/iris/infer"
    requests.post(infer, json=V2_BODY, headers=bearer(gw.user_key), timeout=10)
    requests.post(infer, json=V2_BODY, headers=bearer("mgk_nothere_x"), timeout=10)
    time.sleep(0.2)
    r = requests.get(api(gw, "decisions"), params={"model": "iris", "decision": "deny"}, headers=h, timeout=10)
    assert r.status_code == 200
    assert [d["status"] for d in r.json()] == [401]
    r = requests.get(api(gw, "decisions"), params={"identity": "alice", "model": "iris"}, headers=h, timeout=10)
    assert [(d["status"], d["decision"]) for d in r.json()] == [(200, "allow")]
    assert requests.get(api(gw, "decisions"), params={"decision": "maybe"}, headers=h, timeout=10).status_code == 400
    with requests.get(api(gw, "decisions/stream"), params={"identity": "alice"}, headers=h, stream=True, timeout=10) as s:
        assert s.headers["content-type"] == "text/event-stream"
        requests.post(infer, json=V2_BODY, headers=bearer(gw.user_key), timeout=10)
        seen = []
        for line in s.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
                if len(seen) == 2:
                    break
        assert all(d["identity"] == "alice" for d in seen)
        assert [d["status"] for d in seen] == [200, 200]
    m = requests.get(api(gw, "models"), headers=h, timeout=10).json()[0]
    assert m["stats"]["requests"] >= 3 and m["stats"]["p99_ms"] is not None
    assert sum(m["stats"]["rate_series"]) == m["stats"]["requests"]


def test_on_public_serves_the_admin_api_on_the_listener_too(tmp_path, run_modelgate, start_modelgate):
    keys = tmp_path / "keys.json"
    admin_key = create_key(run_modelgate, keys, "ops", "*")
    user_key = create_key(run_modelgate, keys, "alice", "*")
    mg = start_modelgate(f"""
listen: {{address: "__LISTEN__"}}
admin: {{address: "__ADMIN__", keys: [ops], ui: {{on_public: true}}}}
auth: {{api_keys: {{file: "{keys}"}}}}
models:
  - name: iris
    upstream: {{url: "http://127.0.0.1:9"}}
""")
    url = f"{mg.url}/admin/api/models"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, headers=bearer(user_key), timeout=10).status_code == 403
    r = requests.get(url, headers=bearer(admin_key), timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()[0]["health"] == "unreachable"
    # Encoded forms of the admin path are the admin path (normalised once).
    assert requests.get(f"{mg.url}/%61dmin/api/models", headers=bearer(user_key), timeout=10).status_code == 403


def test_model_rate_counts_every_request_of_a_burst(gw):
    """The models view's rate comes from exact per-model counters in 5 s
    buckets, not from the capped latency samples (4096 a minute, ~68/s):
    a burst of 10 000 requests (h2load) shows up as ~10 000."""
    sent = 10_000
    r = subprocess.run(["h2load", "--h1", "-n", str(sent), "-c", "8", f"{gw.url}/v2/models/iris/ready"],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    ok = re.search(r"status codes: (\d+) 2xx", r.stdout)
    assert ok and int(ok.group(1)) == sent, r.stdout
    [m] = requests.get(api(gw, "models"), headers=bearer(gw.admin_key), timeout=10).json()
    stats = m["stats"]
    assert sent / 2 <= stats["requests"] <= sent * 2, stats
    assert sum(stats["rate_series"]) == stats["requests"] and len(stats["rate_series"]) == 12
    assert stats["rate_per_s"] > 0
    assert sent / 2 <= stats["rate_per_s"] * 60 <= sent * 2, stats
