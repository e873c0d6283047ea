"""A STAND-IN for the Kubernetes API server's TokenReview and
SubjectAccessReview endpoints.

No kube-apiserver can run on this machine (no Kubernetes, no container
engine), so modelgate's online ServiceAccount-token check is tested against
this small server instead. It implements only
`POST /apis/authentication.k8s.io/v1/tokenreviews` with the request and
response shapes of `authentication.k8s.io/v1` TokenReview:

- the caller must present `Authorization: Bearer <gateway token>` (the API
  server authenticates modelgate itself), else 401 with a Status object;
- `spec.token` is looked up in a table of known tokens; an unknown token gives
  `status.authenticated: false` with an `error`, as the API server does;
- with `spec.audiences`, the token is authenticated only if one of its own
  audiences is among them, and `status.audiences` lists the intersection
  (the API server's audience-checking behaviour).

It also implements `POST /apis/authorization.k8s.io/v1/subjectaccessreviews`
with the shapes of `authorization.k8s.io/v1` SubjectAccessReview: the
request's `spec.user`, `spec.groups` and `spec.resourceAttributes`
(namespace, verb, group, resource, name) are matched against the `access`
rules of SPEC (a rule matches when each of its keys equals the request's;
`user` / `group_member` match the user / one of the groups); the answer is
`status: {allowed: true, reason}` or `{allowed: false, reason}` (RBAC's
"no RBAC policy matched" denial has no `denied` field).
`sar_delay` (seconds) holds each review, so concurrent ones overlap.
`GET /stub/counts` answers how many reviews of each kind were made (for the
single-flight test; not a Kubernetes API).

    python kube_stub.py PORT SPEC.json
    SPEC.json: {"gateway_token": "...", "tokens": {"<token>": {"username": ..., "groups": [...], "audiences": [...]}}}
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
SAR_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
COUNTS = {"tokenreviews": 0, "subjectaccessreviews": 0}
LOCK = threading.Lock()


def access_review(spec: dict, rules: list) -> dict:
    attrs = spec.get("resourceAttributes") or {}
    for rule in rules:
        ok = True
        for k, v in rule.items():
            if k == "user":
                ok = ok and spec.get("user") == v
            elif k == "group_member":
                ok = ok and v in (spec.get("groups") or [])
            else:
                ok = ok and attrs.get(k) == v
        if ok:
            return {"allowed": True, "reason": "stand-in rule matched"}
    return {"allowed": False, "reason": ""}


def review(spec: dict, tokens: dict) -> dict:
    token = spec.get("token", "")
    wanted = spec.get("audiences") or []
    known = tokens.get(token)
    if known is None:
        return {"authenticated": False, "error": "invalid bearer token"}
    own = known.get("audiences", [])
    granted = [a for a in wanted if a in own] if wanted else own
    if wanted and not granted:
        return {"authenticated": False, "error": "token audiences are invalid for the target audiences"}
    user = {"username": known["username"], "uid": known.get("uid", "0000"), "groups": known.get("groups", [])}
    return {"authenticated": True, "user": user, "audiences": granted}


def main() -> None:
    port, spec_path = int(sys.argv[1]), sys.argv[2]
    spec = json.load(open(spec_path))

    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            if self.path != "/stub/counts":
                return self._send(404, {"kind": "Status", "status": "Failure", "code": 404})
            with LOCK:
                return self._send(200, dict(COUNTS))

        def do_POST(self) -> None:  # noqa: N802
            if self.path == SAR_PATH:
                return self.sar()
            if self.path != PATH:
                return self._send(404, {"kind": "Status", "status": "Failure", "code": 404})
            if self.headers.get("authorization") != f"Bearer {spec['gateway_token']}":
                return self._send(401, {"kind": "Status", "status": "Failure", "reason": "Unauthorized", "code": 401})
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
            with LOCK:
                COUNTS["tokenreviews"] += 1
            if body.get("kind") != "TokenReview" or body.get("apiVersion") != "authentication.k8s.io/v1":
                return self._send(400, {"kind": "Status", "status": "Failure", "code": 400})
            out = {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "metadata": {"creationTimestamp": None},
                   "spec": body.get("spec", {}), "status": review(body.get("spec", {}), spec["tokens"])}
            self._send(201, out)

        def sar(self) -> None:
            if self.headers.get("authorization") != f"Bearer {spec['gateway_token']}":
                return self._send(401, {"kind": "Status", "status": "Failure", "reason": "Unauthorized", "code": 401})
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
            with LOCK:
                COUNTS["subjectaccessreviews"] += 1
            if body.get("kind") != "SubjectAccessReview" or body.get("apiVersion") != "authorization.k8s.io/v1":
                return self._send(400, {"kind": "Status", "status": "Failure", "code": 400})
            time.sleep(float(spec.get("sar_delay", 0)))
            review = body.get("spec", {})
            out = {"kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                   "metadata": {"creationTimestamp": None}, "spec": review,
                   "status": access_review(review, spec.get("access", []))}
            self._send(201, out)

        def log_message(self, fmt: str, *args) -> None:
            sys.stdout.write("kube-stub: " + fmt % args + "\n")
            sys.stdout.flush()

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
