"""Helpers for the seed acceptance tests (test_seed_NNN.py): run
`modelgate import` on the seed's own YAML (tests/fixtures, see its README),
validate the result, and serve it."""

from __future__ import annotations

import time
from pathlib import Path

import jwt as pyjwt

from peers import free_addr

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SEEDS = ROOT.parent / "shared" / "seeds"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


def seed_vars(*names: str) -> list[str]:
    """The shell assignments of a seed block (NAME="value") as --var flags."""
    out: list[str] = []
    for name in names:
        for line in (FIXTURES / "seeds" / name).read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                out += ["--var", f"{k.strip()}={v.strip().strip(chr(34))}"]
    return out


def import_config(run_modelgate, files: list[str], *args: str) -> tuple[str, str]:
    """`modelgate import` → (configuration, report)."""
    r = run_modelgate(["import", *[str(FIXTURES / f) for f in files], *args])
    assert r.returncode == 0, r.stderr
    assert "untranslated" in r.stderr and "# read" in r.stderr, r.stderr
    return r.stdout, r.stderr


def serve_imported(run_modelgate, start_modelgate, tmp_path: Path, config: str, env: dict | None = None):
    """`modelgate validate` must pass on the imported file; then serve it."""
    listen, admin = free_addr(), free_addr()
    env = {"MODELGATE_LISTEN": listen, "MODELGATE_ADMIN": admin, **(env or {})}
    path = tmp_path / "imported.yaml"
    path.write_text(config)
    r = run_modelgate(["validate", "--config", str(path)], env=env)
    assert r.returncode == 0, r.stderr + config
    return start_modelgate(config, env=env, listen=listen, admin=admin)


def service_account_token(idp, namespace: str, name: str, audience: str) -> str:
    """A projected ServiceAccount token as `kubectl create token` makes it
    (the seed's decoded claims), signed with a key the stand-in JWKS serves."""
    kid, key = idp.keys["RS256"]
    now = int(time.time())
    claims = {
        "aud": [audience], "exp": now + 3600, "iat": now, "nbf": now, "iss": SA_ISSUER,
        "jti": "bd559fe1-3f81-42cd-aa1f-06402a3cdb3c",
        "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": "b86ab207-7079-44a1-9492-ef2c84821db7"}},
        "sub": f"system:serviceaccount:{namespace}:{name}",
    }
    return pyjwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})
