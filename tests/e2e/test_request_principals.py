"""`requestPrincipals` are matched on the whole `iss/sub` string (issue 9
item 6): a DENY written for a GitHub-OIDC-style subject, which holds a `/`,
denies a real signed JWT with that subject, and a wildcard may reach into the
issuer."""

from __future__ import annotations

import time

import jwt as pyjwt
import requests

from gw import V2_BODY

SUBJECT = "repo:org/x:ref:refs/heads/main"


def config(idp, mlserver) -> str:
    return f"""
listen: {{address: __LISTEN__}}
admin: {{address: __ADMIN__}}
models:
  - name: iris
    upstream: {{url: "{mlserver.rest_url}"}}
auth:
  jwt:
    - issuer: {idp.issuer}
      audiences: [models]
policies:
  - name: no-main-of-x
    action: DENY
    rules:
      - from: [{{source: {{requestPrincipals: ["*/{SUBJECT}"]}}}}]
  - name: no-exact-y
    action: DENY
    rules:
      - from: [{{source: {{requestPrincipals: ["{idp.issuer}/repo:org/y:ref:refs/heads/main"]}}}}]
  - name: any-verified
    rules:
      - from: [{{source: {{requestPrincipals: ["*"]}}}}]
"""


def token(idp, sub: str) -> str:
    now = int(time.time())
    kid, key = idp.keys["RS256"]
    claims = {"iss": idp.issuer, "sub": sub, "aud": "models", "iat": now, "exp": now + 300}
    return pyjwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def infer(mg, idp, sub: str):
    h = {"Authorization": f"Bearer {token(idp, sub)}"}
    return requests.post(f"{mg.url}/v2/models/iris/infer", json=V2_BODY, headers=h, timeout=20)


def test_deny_catches_subjects_with_a_slash(start_oidc, mlserver_iris, start_modelgate):
    idp = start_oidc()
    mg = start_modelgate(config(idp, mlserver_iris))
    r = infer(mg, idp, SUBJECT)
    assert r.status_code == 403, (r.status_code, r.text)
    r = infer(mg, idp, "repo:org/y:ref:refs/heads/main")
    assert r.status_code == 403, (r.status_code, r.text)
    # Another branch of the same repository is not denied.
    r = infer(mg, idp, "repo:org/x:ref:refs/heads/dev")
    assert r.status_code == 200, (r.status_code, r.text)
