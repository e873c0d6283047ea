"""Scenario `llm` (issue 13's benchmark): the OpenAI path, in one run.

Upstreams (both fast, so the mock model's own cost does not dominate):
- nginx `return 200` with a fixed chat completion (with `usage`) for
  `POST /v1/chat/completions` (non-streaming);
- a small asyncio SSE server (this file, `--sse-server PORT`, its own process)
  for `stream: true`: `max_tokens` events whose text is `t<i>@<sent_ns>`,
  the CLOCK_MONOTONIC time it was written, so each chunk's arrival time at
  the client is measured against its send time (same machine, same clock).

Measured, each direct and through modelgate (API key):
- req/s, p50, p99 with wrk (non-streaming and streaming);
- time to first byte (TTFB), sequential requests on one keep-alive connection
  from a raw-socket client, direct vs modelgate: p50/p99 of each and what
  modelgate adds (target: added TTFB p99 <= 1 ms);
- per-chunk transit (arrival - sent_ns) for 5-event streams 2 ms apart;
- limits off vs in-process vs Redis (when this binary accepts `limits:`);
- LiteLLM's proxy (master key, the same rpm/tpm) in front of the same upstreams.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

TTFB_N = int(os.environ.get("BENCH_TTFB_REQUESTS", "1000"))
LITELLM_TTFB_N = int(os.environ.get("BENCH_LITELLM_TTFB_REQUESTS", "200"))
CHUNK_STREAMS = int(os.environ.get("BENCH_CHUNK_STREAMS", "200"))
RPM = 1_000_000_000  # limits high enough never to refuse: the cost of the check is measured
TPM = 1_000_000_000_000
MASTER_KEY = "sk-litellm-bench-master-0123"
SENT = re.compile(rb"t\d+@(\d+) ")  # an event's text: t<i>@<sent_ns>

COMPLETION = {
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1764547200, "model": "fast-chat",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the fast upstream."},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16},
}

JSON_BLOCK = """
server {
    listen 127.0.0.1:__PORT__;
    access_log off;
    location = /v1/chat/completions {
        default_type application/json;
        return 200 '%s';
    }
}
""" % json.dumps(COMPLETION, separators=(",", ":"))


# ---------------------------------------------------------------------------
# The SSE upstream (run as its own process: `python bench/llm.py --sse-server PORT`)
# ---------------------------------------------------------------------------
def _event(model: str, i: int) -> bytes:
    # The send time rides in the text, which every proxy passes on as it is.
    ev = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1764547200, "model": model,
          "choices": [{"index": 0, "delta": {"content": f"t{i}@{time.monotonic_ns()} "}, "finish_reason": None}]}
    return b"data: " + json.dumps(ev, separators=(",", ":")).encode() + b"\n\n"


def _usage_event(model: str, n: int) -> bytes:
    ev = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1764547200, "model": model,
          "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": n, "total_tokens": 9 + n}}
    return b"data: " + json.dumps(ev, separators=(",", ":")).encode() + b"\n\n"


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def _sse_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:  # each event leaves at once (as uvicorn/vLLM do)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v)
            body = json.loads(await reader.readexactly(length) or b"{}")
            model = body.get("model", "")
            n = int(body.get("max_tokens") or 5)
            gap = float(body.get("user") or 0) / 1000.0  # `user`: ms between events
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            for i in range(n):
                if i and gap:
                    await asyncio.sleep(gap)
                writer.write(_chunk(_event(model, i)))
                await writer.drain()
            if usage:
                writer.write(_chunk(_usage_event(model, n)))
            writer.write(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


def serve_sse(port: int) -> None:
    async def main():
        srv = await asyncio.start_server(_sse_conn, "127.0.0.1", port, backlog=1024)
        async with srv:
            await srv.serve_forever()

    asyncio.run(main())


# ---------------------------------------------------------------------------
# A raw-socket client: TTFB and chunk arrival times
# ---------------------------------------------------------------------------
class Conn:
    """One keep-alive HTTP/1.1 connection; `post` returns (ttfb_ns, [(arrival_ns, event_bytes)])."""

    def __init__(self, url: str):
        host, port = url.removeprefix("http://").split(":")
        self.addr = (host, int(port))
        self.host = f"{host}:{port}"
        self.connect()

    def connect(self) -> None:
        self.sock = socket.create_connection(self.addr)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.closing = False

    def close(self) -> None:
        self.sock.close()

    def _more(self) -> int:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        self.buf += data
        return time.monotonic_ns()

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, int, list[tuple[int, bytes]]]:
        if self.closing:  # the server said `connection: close` (nginx: keepalive_requests)
            self.close()
            self.connect()
        hdr = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        req = (f"POST {path} HTTP/1.1\r\nhost: {self.host}\r\n"
               f"content-length: {len(body)}\r\n{hdr}\r\n").encode() + body
        t0 = time.monotonic_ns()
        self.sock.sendall(req)
        ttfb = self._more() - t0
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        lines = {k.strip().lower(): v.strip() for k, _, v in (l.partition(b":") for l in head.split(b"\r\n")[1:])}
        self.closing = lines.get(b"connection", b"").lower() == b"close"
        events: list[tuple[int, bytes]] = []
        now = time.monotonic_ns()
        if b"content-length" in lines:
            n = int(lines[b"content-length"])
            while len(self.buf) < n:
                now = self._more()
            self.buf = self.buf[n:]
            return status, ttfb, events
        # chunked: record each SSE event's arrival time (the recv that completed it)
        body_buf = b""
        while True:
            while b"\r\n" not in self.buf:
                now = self._more()
            size_line, _, rest = self.buf.partition(b"\r\n")
            size = int(size_line, 16)
            while len(rest) < size + 2:
                now = self._more()
                size_line, _, rest = self.buf.partition(b"\r\n")
            self.buf = rest[size + 2:]
            if size == 0:
                return status, ttfb, events
            body_buf += rest[:size]
            while b"\n\n" in body_buf:
                ev, _, body_buf = body_buf.partition(b"\n\n")
                events.append((now, ev))


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def ttfb_run(url: str, headers: dict[str, str], body: bytes, n: int) -> dict:
    """n sequential requests on one connection: TTFB (ms), and per-event transit (ms) for streams."""
    c = Conn(url)
    ttfb, transit, first_event = [], [], []
    try:
        for i in range(n + 20):  # 20 warm-up requests
            t0 = time.monotonic_ns()
            status, t, events = c.post("/v1/chat/completions", body, headers)
            if status != 200:
                raise RuntimeError(f"{url}: HTTP {status}")
            if i < 20:
                continue
            ttfb.append(t / 1e6)
            for arrived, ev in events:
                m = SENT.search(ev)
                if m:
                    transit.append((arrived - int(m.group(1))) / 1e6)
            if events:
                first_event.append((events[0][0] - t0) / 1e6)
    finally:
        c.close()
    out = {"ttfb_p50": pct(ttfb, 50), "ttfb_p99": pct(ttfb, 99), "n": n}
    if transit:
        out.update(transit_p50=pct(transit, 50), transit_p99=pct(transit, 99), first_p50=pct(first_event, 50),
                   first_p99=pct(first_event, 99), events=len(transit))
    return out


# ---------------------------------------------------------------------------
# Peers
# ---------------------------------------------------------------------------
def start_sse(work: Path):
    import peers

    port = peers.free_port()
    p = peers.Proc("sse-upstream", [sys.executable, str(Path(__file__).resolve()), "--sse-server", str(port)],
                   work / "sse.log", cwd=work)
    p.port = port
    p.url = f"http://127.0.0.1:{port}"
    p.wait_ready(lambda: peers.port_open(port), 10, "SSE port")
    return p


def start_litellm(work: Path, chat_url: str, sse_url: str):
    """LiteLLM's proxy with its master key and no database. Limits: per-deployment
    `rpm`/`tpm` in `litellm_params`, enforced by
    `router_settings.optional_pre_call_checks: [enforce_model_rate_limits]`
    (LiteLLM's per-key limits need its Postgres database; the master key is the
    only key here, so the deployment limit is the per-key limit)."""
    import peers

    work.mkdir(parents=True, exist_ok=True)
    port = peers.free_port()
    models = [
        {"model_name": name, "litellm_params": {"model": f"openai/{name}", "api_base": f"{url}/v1",
                                                "api_key": "sk-upstream", "rpm": RPM, "tpm": TPM}}
        for name, url in (("fast-chat", chat_url), ("fast-stream", sse_url))
    ]
    config = {
        "model_list": models,
        "litellm_settings": {"telemetry": False},
        "general_settings": {"master_key": MASTER_KEY},
        "router_settings": {"optional_pre_call_checks": ["enforce_model_rate_limits"]},
    }
    cfg = work / "litellm.yaml"
    cfg.write_text(json.dumps(config, indent=2))
    env = peers._clean_env({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False",
                            "LITELLM_LOG": "ERROR", "HOME": str(work)})
    for k in ("DATABASE_URL", "LITELLM_MASTER_KEY", "REDIS_HOST", "REDIS_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        env.pop(k, None)
    srv = peers.LiteLLM("litellm", [peers.litellm_bin(), "--config", str(cfg), "--host", "127.0.0.1", "--port",
                                    str(port), "--num_workers", "1"], work / "litellm.log", cwd=work, env=env)
    srv.port = port
    srv.wait_ready(lambda: peers.http_status(f"{srv.url}/health/liveliness") == 200, 120, "GET /health/liveliness")
    return srv


def limits_yaml(redis_url: str | None) -> str:
    store = f"\n  store:\n    redis: {{url: \"{redis_url}\", failure_mode: open}}" if redis_url else ""
    return f"limits:{store}\n  per_key: {{tpm: {TPM}, rpm: {RPM}}}\n  estimate: {{default_max_tokens: 64}}\n"


def accepts_limits(b, models: str, redis_url: str) -> str | None:
    """None when `modelgate validate` accepts `limits:` (with a Redis store), else the reason."""
    import peers

    cfg = b.WORK / "probe.yaml"
    keys = b.WORK / "probe-keys.json"
    cfg.write_text(f"listen: {{address: \"127.0.0.1:1\"}}\nauth:\n  api_keys: {{file: \"{keys}\"}}\nmodels:\n{models}\n"
                   + limits_yaml(redis_url))
    r = peers.run_modelgate(["validate", "--config", str(cfg)])
    if r.returncode == 0:
        return None
    said = [l.strip(" -") for l in (r.stdout + r.stderr).splitlines() if str(cfg) not in l]
    return next((l for l in said if "limits" in l), said[0] if said else "config refused")


# ---------------------------------------------------------------------------
# The scenario
# ---------------------------------------------------------------------------
def chat_body(model: str, stream: bool, events: int = 5, gap_ms: int = 0) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": events}
    if stream:
        body["stream"] = True
        body["user"] = str(gap_ms)
    return json.dumps(body).encode()


def run(b) -> None:
    """`b` is bench/bench.py (record, wrk, nginx, modelgate, WORK, EXTRA_TABLES)."""
    import peers

    print("llm: OpenAI chat, non-streaming and streaming; direct vs modelgate vs LiteLLM; limits off/in-process/Redis",
          flush=True)
    up = b.nginx(JSON_BLOCK, workers=1, name="llm-json")
    sse = start_sse(b.WORK)
    redis = peers.start_redis(b.WORK / "redis-llm")
    started = [up, sse, redis]
    try:
        models = (f'  - {{name: fast-chat, protocols: [openai], upstream: {{url: "{up.url}"}}}}\n'
                  f'  - {{name: fast-stream, protocols: [openai], upstream: {{url: "{sse.url}"}}}}\n'
                  f'  - {{name: chat-alias, protocols: [openai], upstream: {{url: "{sse.url}", model: fast-stream}}}}')
        why_no_limits = accepts_limits(b, models, redis.url)
        mg, key = b.modelgate(models)
        started.append(mg)
        ll = start_litellm(b.WORK / "litellm-llm", up.url, sse.url)
        started.append(ll)
        hdr = {"Content-Type": "application/json"}
        mgh = {**hdr, "Authorization": f"Bearer {key}"}
        llh = {**hdr, "Authorization": f"Bearer {MASTER_KEY}"}
        ns = chat_body("fast-chat", False).decode()
        st = chat_body("fast-stream", True).decode()
        path = "/v1/chat/completions"
        targets = [("direct", up.url, sse.url, hdr), ("modelgate (API key)", mg.url, mg.url, mgh),
                   ("LiteLLM (master key, rpm/tpm)", ll.url, ll.url, llh)]
        # Throughput (wrk).
        for label, chat_url, stream_url, h in targets:
            b.record("llm", f"{label}, non-streaming", b.wrk(chat_url + path, "POST", ns, h,
                                                              b.expect_ok(chat_url + path, "POST", ns, h)))
            b.record("llm", f"{label}, streaming (5 events)", b.wrk(stream_url + path, "POST", st, h,
                                                                     b.expect_ok(stream_url + path, "POST", st, h)))
        # An alias: every event's `model` is put back to the client's name.
        alias = chat_body("chat-alias", True).decode()
        b.record("llm", "modelgate (API key), streaming, alias (per-event rename)",
                 b.wrk(mg.url + path, "POST", alias, mgh, b.expect_ok(mg.url + path, "POST", alias, mgh)))
        # Limits off vs in-process vs Redis (modelgate, non-streaming).
        limit_rows = []
        if why_no_limits:
            print(f"  limits: skipped: no rate-limit step in this binary ({why_no_limits})", flush=True)
        else:
            for label, url in (("in-process", None), ("Redis", redis.url)):
                lmg, lkey = b.modelgate(models, limits_yaml(url))
                started.append(lmg)
                lh = {**hdr, "Authorization": f"Bearer {lkey}"}
                name = f"modelgate (API key), limits {label}, non-streaming"
                b.record("llm", name, b.wrk(lmg.url + path, "POST", ns, lh, b.expect_ok(lmg.url + path, "POST", ns, lh)))
                limit_rows.append(name)
                lmg.stop()
        # TTFB and chunk arrival (sequential, one connection).
        print("  TTFB / chunk arrival (sequential requests, one keep-alive connection)", flush=True)
        timing = {}
        for label, chat_url, stream_url, h in targets:
            n = LITELLM_TTFB_N if label.startswith("LiteLLM") else TTFB_N
            timing[label] = {
                "ns": ttfb_run(chat_url, h, chat_body("fast-chat", False), n),
                "st": ttfb_run(stream_url, h, chat_body("fast-stream", True), n),
                "chunks": ttfb_run(stream_url, h, chat_body("fast-stream", True, 5, 2),
                                   CHUNK_STREAMS if not label.startswith("LiteLLM") else CHUNK_STREAMS // 2),
            }
            print(f"  {label}: {json.dumps(timing[label])}", flush=True)
        b.EXTRA_TABLES.append(tables(b, timing, why_no_limits, limit_rows))
    finally:
        for p in reversed(started):
            p.stop()


def _row(b, name: str) -> dict | None:
    return next((r for r in b.ROWS if r["name"] == name), None)


def tables(b, timing: dict, why_no_limits: str | None, limit_rows: list[str]) -> str:
    d = timing["direct"]
    out = ["", "Time to first byte, sequential requests on one keep-alive connection (raw-socket client, "
           f"{TTFB_N} requests; LiteLLM {LITELLM_TTFB_N}); added = through − direct at the same percentile:", "",
           "| path | non-stream TTFB p50 / p99 ms | added p50 / p99 ms | stream TTFB p50 / p99 ms | added p50 / p99 ms |",
           "|---|---:|---:|---:|---:|"]
    for label, t in timing.items():
        a = lambda k, q: t[k][q] - d[k][q]  # noqa: E731
        out.append(f"| {label} | {t['ns']['ttfb_p50']:.3f} / {t['ns']['ttfb_p99']:.3f} | "
                   + ("-" if label == "direct" else f"{a('ns', 'ttfb_p50'):+.3f} / {a('ns', 'ttfb_p99'):+.3f}")
                   + f" | {t['st']['ttfb_p50']:.3f} / {t['st']['ttfb_p99']:.3f} | "
                   + ("-" if label == "direct" else f"{a('st', 'ttfb_p50'):+.3f} / {a('st', 'ttfb_p99'):+.3f}") + " |")
    mg = timing.get("modelgate (API key)")
    if mg:
        added99 = max(mg["ns"]["ttfb_p99"] - d["ns"]["ttfb_p99"], mg["st"]["ttfb_p99"] - d["st"]["ttfb_p99"])
        noisy = max(d["ns"]["ttfb_p99"], d["st"]["ttfb_p99"])
        verdict = ("met" if added99 <= 1.0 else "NOT met") if noisy <= 2.0 else (
            f"not judged: direct TTFB p99 is itself {noisy:.1f} ms at this load, so p99 differences are "
            "scheduling noise")
        out += ["", f"modelgate's added TTFB p99 (worse of non-stream/stream): {added99:+.3f} ms "
                f"(target ≤ 1 ms: {verdict})."]
    out += ["", "Chunk arrival: streams of 5 events written 2 ms apart; transit = arrival at the client − the "
            "`sent_ns` in the event's text (CLOCK_MONOTONIC, written by the SSE server as it sends):", "",
            "| path | events | first event after request p50 / p99 ms | per-event transit p50 / p99 ms |",
            "|---|---:|---:|---:|"]
    for label, t in timing.items():
        c = t["chunks"]
        out.append(f"| {label} | {c.get('events', 0)} | {c.get('first_p50', 0):.3f} / {c.get('first_p99', 0):.3f} | "
                   f"{c.get('transit_p50', 0):.3f} / {c.get('transit_p99', 0):.3f} |")
    out += ["", "modelgate vs LiteLLM (same upstreams, same wrk settings, same run):", "",
            "| mode | modelgate req/s | LiteLLM req/s | ratio | modelgate added p50 / p99 ms | LiteLLM added p50 / p99 ms |",
            "|---|---:|---:|---:|---:|---:|"]
    for mode in ("non-streaming", "streaming (5 events)"):
        dr, mr, lr = (_row(b, f"{p}, {mode}") for p in ("direct", "modelgate (API key)", "LiteLLM (master key, rpm/tpm)"))
        if dr and mr and lr:
            out.append(f"| {mode} | {mr['rps']:.0f} | {lr['rps']:.0f} | {mr['rps'] / lr['rps']:.1f}× | "
                       f"{mr['p50'] - dr['p50']:+.2f} / {mr['p99'] - dr['p99']:+.2f} | "
                       f"{lr['p50'] - dr['p50']:+.2f} / {lr['p99'] - dr['p99']:+.2f} |")
    out += ["", "(wrk latencies are under load with 32 connections on 2 shared cores: 'added' there includes queueing.)"]
    if why_no_limits:
        out += ["", f"Limits off vs in-process vs Redis: skipped: no rate-limit step in this binary ({why_no_limits})."]
    else:
        off = _row(b, "modelgate (API key), non-streaming")
        out += ["", "Limits (per_key rpm/tpm set high enough never to refuse, so the check's cost is measured):", "",
                "| mode | req/s | vs limits off |", "|---|---:|---:|"]
        out.append(f"| off | {off['rps']:.0f} | 1.00× |")
        for name in limit_rows:
            r = _row(b, name)
            out.append(f"| {name.split('limits ')[1].split(',')[0]} | {r['rps']:.0f} | {r['rps'] / off['rps']:.2f}× |")
    out += ["", "LiteLLM: its proxy with `general_settings.master_key`, no database; limits are per-deployment "
            f"`rpm: {RPM}` / `tpm: {TPM}` in `litellm_params`, enforced by "
            "`router_settings.optional_pre_call_checks: [enforce_model_rate_limits]` (per-key limits in LiteLLM need "
            "its Postgres database; the master key is the only key, so the deployment limit is the per-key limit; "
            "checked: with `rpm: 2` its third request in a minute is 429 "
            "`litellm.RateLimitError: Model rate limit exceeded`). "
            "modelgate: `limits: {per_key: {tpm, rpm}, estimate: {default_max_tokens: 64}}`, Redis store with "
            "`failure_mode: open`. Upstreams: nginx `return 200` (non-streaming), the asyncio SSE server in "
            "bench/llm.py (streaming, its own process)."]
    return "\n".join(out)


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--sse-server":
    serve_sse(int(sys.argv[2]))
