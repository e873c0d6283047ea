"""`modelgate serve --manifests DIR`: seed 004's own YAML (Istio
RequestAuthentication + DENY AuthorizationPolicy, verbatim) served directly,
in front of a real MLServer; then the AuthorizationPolicy in DIR is edited
and the change takes effect without a restart, and a broken YAML is refused
while the previous configuration keeps serving."""

from __future__ import annotations

import shutil
import time

import pytest
import requests

from peers import Modelgate, _clean_env, free_addr, http_status, require_modelgate_bin
from seed_import import FIXTURES

BODY = '{"inputs": [{"name": "predict", "shape": [1, 4], "datatype": "FP32", "data": [[1, 2, 3, 4]]}]}'
HEADERS = {"Content-Type": "application/json", "seldon-model": "iris"}
POLICY = "004-authorizationpolicy.yaml"


@pytest.fixture
def served(start_oidc, mlserver_iris, tmp_path):
    idp = start_oidc()
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for name in ("004-requestauthentication.yaml", POLICY):
        shutil.copy(FIXTURES / "seeds" / name, manifests / name)
    listen, admin = free_addr(), free_addr()
    env = {"MODELGATE_LISTEN": listen, "MODELGATE_ADMIN": admin,
           "OIDC_TOKEN_ISSUER": idp.issuer, "OIDC_TOKEN_ISSUER_JWKS": f"{idp.issuer}/jwks"}
    work = tmp_path / "mg"
    work.mkdir()
    cmd = [str(require_modelgate_bin()), "serve", "--manifests", str(manifests),
           "--imported-config", str(work / "imported.yaml"), "--upstream", f"iris={mlserver_iris.rest_url}"]
    mg = Modelgate("modelgate", cmd, work / "stdout.jsonl", stderr_path=work / "stderr.log", cwd=work,
                   env=_clean_env(env))
    mg.config_path, mg.listen, mg.admin = work / "imported.yaml", listen, admin
    try:
        mg.wait_ready(lambda: http_status(f"{mg.admin_url}/readyz") == 200, 20, f"GET {mg.admin_url}/readyz")
        yield idp, mg, manifests, work
    finally:
        mg.stop()


def infer(mg, token=None):
    headers = dict(HEADERS)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(f"{mg.url}/v2/models/iris/infer", data=BODY, headers=headers, timeout=20)


def wait_for(check, what, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_seed_004_served_from_manifests_and_reloaded(served):
    idp, mg, manifests, work = served
    # The import report is in the log.
    stderr = (work / "stderr.log").read_text()
    assert "# modelgate import report" in stderr and "AuthorizationPolicy/istio-system/core-v2-ingress" in stderr
    # The seed's answers.
    r = infer(mg)
    assert (r.status_code, r.text) == (403, "RBAC: access denied")
    r = infer(mg, idp.token("urn:modelgate:rs256"))
    assert r.status_code == 200, r.text
    assert r.json()["model_name"] == "iris"

    # Edit the DENY rule to cover token callers too (requestPrincipals instead of notRequestPrincipals).
    token = idp.token("urn:modelgate:rs256")
    policy = manifests / POLICY
    original = policy.read_text()
    assert "notRequestPrincipals" in original
    policy.write_text(original.replace("notRequestPrincipals", "requestPrincipals"))
    wait_for(lambda: infer(mg, token).status_code == 403, "the edited AuthorizationPolicy to apply")
    assert infer(mg, token).text == "RBAC: access denied"
    assert "notRequestPrincipals" not in (work / "imported.yaml").read_text()

    # A broken YAML is refused; the edited policy keeps serving.
    mark = len((work / "stderr.log").read_text())
    policy.write_text("apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\nspec: [unclosed\n")
    wait_for(lambda: "manifest change rejected" in (work / "stderr.log").read_text()[mark:], "the rejection log line")
    assert infer(mg, token).status_code == 403
    assert infer(mg).status_code == 403

    # Restoring the seed's policy restores the seed's answers, still without a restart.
    policy.write_text(original)
    wait_for(lambda: infer(mg, token).status_code == 200, "the restored AuthorizationPolicy to apply")
    assert infer(mg).text == "RBAC: access denied"


def test_config_and_manifests_together_are_refused(tmp_path, run_modelgate):
    (tmp_path / "c.yaml").write_text("listen: {address: 127.0.0.1:0}\n")
    r = run_modelgate(["serve", "--config", str(tmp_path / "c.yaml"), "--manifests", str(tmp_path)])
    assert r.returncode == 2
    assert "not both" in r.stderr


def test_manifests_that_do_not_import_refuse_to_start(tmp_path, run_modelgate):
    (tmp_path / "bad.yaml").write_text("kind: [unclosed\n")
    r = run_modelgate(["serve", "--manifests", str(tmp_path), "--imported-config", str(tmp_path / "out.yaml.out")])
    assert r.returncode == 2
    assert "bad.yaml" in r.stderr


def test_import_flags_without_manifests_are_refused(tmp_path, run_modelgate):
    (tmp_path / "c.yaml").write_text("listen: {address: 127.0.0.1:0}\n")
    r = run_modelgate(["serve", "--config", str(tmp_path / "c.yaml"), "--upstream", "iris=http://127.0.0.1:1"])
    assert r.returncode == 2
    assert "go with --manifests" in r.stderr
