"""Benchmark: nginx `auth_request` → modelgate (forward-auth) → fast upstream,
beside nginx as a plain proxy to the same upstream in the same run
(issue 15, item 2). Registered in bench.py as scenario "fwdauth-fast"."""

from __future__ import annotations

import json
import time

import bench
import peers


def auth_request_block(modelgate: str, upstream: str) -> str:
    """nginx with the docs/mesh.md snippet, keepalive to both peers."""
    return f"""
upstream mg_auth {{ server {modelgate}; keepalive 64; }}
upstream backend {{ server {upstream.removeprefix("http://")}; keepalive 64; }}
server {{
    listen 127.0.0.1:__PORT__;
    access_log off;
    location / {{
        auth_request /_modelgate_auth;
        auth_request_set $mg_user $upstream_http_x_modelgate_user;
        proxy_set_header X-Modelgate-User $mg_user;
        proxy_set_header Authorization "";
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass http://backend;
    }}
    location = /_modelgate_auth {{
        internal;
        proxy_pass http://mg_auth/auth/nginx;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header X-Original-URI $request_uri;
        proxy_set_header X-Original-Method $request_method;
        proxy_set_header X-Forwarded-Host $host;
    }}
}}
"""


def forward_auth_modelgate(upstream: str) -> tuple[peers.Modelgate, str]:
    work = bench.WORK / f"mg-fwd-{time.monotonic_ns()}"
    work.mkdir()
    keys = work / "keys.json"
    r = peers.run_modelgate(["keys", "--file", keys, "create", "--name", "bench", "--models", "*"])
    cfg = f"""
listen:
  - address: "__LISTEN__"
    trusted_proxies: [127.0.0.1/32]
    forward_auth: [{{path: /auth/nginx, headers: nginx}}]
admin: {{address: "__ADMIN__"}}
auth:
  api_keys: {{file: "{keys}"}}
  identity_header: x-modelgate-user
log: {{decisions: "{work}/decisions.jsonl", level: warn}}
models:
  - {{name: fast, protocols: [v1], upstream: {{url: "{upstream}"}}}}
"""
    return peers.start_modelgate(work, cfg), r.stdout.strip()


def forward_auth_fast_upstream():
    print("forward-auth: nginx auth_request → modelgate → fast upstream", flush=True)
    up = bench.nginx(bench.STATIC_BLOCK, workers=1, name="static-fwd")
    try:
        body = json.dumps({"instances": peers.IRIS_ROWS})
        hdr = {"Content-Type": "application/json"}
        ng = bench.nginx(bench.proxy_block(up.url))
        try:
            u = f"{ng.url}/v1/models/fast:predict"
            bench.record("fwdauth", "nginx → fast upstream (same run as auth_request)",
                         bench.wrk(u, "POST", body, hdr, bench.expect_ok(u, "POST", body, hdr)))
        finally:
            ng.stop()
        mg, key = forward_auth_modelgate(up.url)
        try:
            front = bench.nginx(auth_request_block(mg.listen, up.url))
            try:
                h = {**hdr, "Authorization": f"Bearer {key}"}
                u = f"{front.url}/v1/models/fast:predict"
                bench.record("fwdauth", "nginx auth_request → modelgate (API key) → fast upstream",
                             bench.wrk(u, "POST", body, h, bench.expect_ok(u, "POST", body, h)))
            finally:
                front.stop()
        finally:
            mg.stop()
    finally:
        up.stop()
