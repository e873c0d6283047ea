"""The rate-limit step (issue 13 item 3) with in-process counters, against
real peers: LiteLLM's proxy with mock responses (it reports `usage`, and
streams with `stream_options.include_usage`) and the `openai` SDK, sync,
async and streaming. Streams for the concurrency cases come from the small
SSE server (tests/e2e/sse_upstream.py), a labelled STAND-IN FOR vLLM.

Shared counters in Redis: tests/e2e/test_llm_redis.py."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time

import openai
import pytest
import requests

from gw import INPUT_ESTIMATE, MSG, away_from_minute_end, bearer, chat_records, create_key, metric_value
from sse_upstream import SseUpstream


def gateway(tmp_path, run_modelgate, start_modelgate, upstream: str, limits: str, model="llama3",
            upstream_model="", admin_keys=""):
    keys = tmp_path / "keys.json"
    alias = f"\n      model: {upstream_model}" if upstream_model else ""
    mg = start_modelgate(f"""
listen: {{address: "__LISTEN__"}}
admin: {{address: "__ADMIN__"{admin_keys}}}
auth:
  api_keys: {{file: "{keys}"}}
models:
  - name: {model}
    protocols: [openai]
    upstream:
      url: "{upstream}"{alias}
limits:
{limits}
""")
    mg.key = create_key(run_modelgate, keys, "limited", "*")
    mg.wait_ready(lambda: requests.get(f"{mg.url}/v1/models", headers=bearer(mg.key), timeout=5).status_code == 200,
                  5, "keys")
    return mg


def client(mg, **kw):
    return openai.OpenAI(base_url=f"{mg.url}/v1", api_key=mg.key, max_retries=0, **kw)


def token_metric(mg, kind: str) -> int:
    return metric_value(mg, rf'modelgate_gen_ai_client_token_usage_total{{[^}}]*gen_ai_token_type="{kind}"[^}}]*}}')


def test_tokens_are_reserved_settled_and_refused_as_rate_limit_error(tmp_path, run_modelgate, start_modelgate,
                                                                     litellm_mock):
    tpm = 3000
    mg = gateway(tmp_path, run_modelgate, start_modelgate, litellm_mock.url,
                 f"  per_key: {{tpm: {tpm}, rpm: 100}}\n  estimate: {{default_max_tokens: 1000}}")
    away_from_minute_end()
    mark = mg.log_mark()
    c = client(mg)
    raw = c.chat.completions.with_raw_response.create(model="llama3", messages=MSG, max_tokens=1000)
    first = raw.parse()
    used = first.usage.total_tokens
    assert 0 < used < 1000
    h = raw.headers
    assert h["x-ratelimit-limit-tokens"] == str(tpm)
    # Remaining after the reservation of this request's estimate.
    assert h["x-ratelimit-remaining-tokens"] == str(tpm - 1000 - INPUT_ESTIMATE)
    assert h["x-ratelimit-limit-requests"] == "100" and h["x-ratelimit-remaining-requests"] == "99"
    assert re.fullmatch(r"\d+s", h["x-ratelimit-reset-tokens"])
    time.sleep(0.3)  # settlement is applied in the background
    # Settled to the real usage: the next reservation starts from it.
    raw = c.chat.completions.with_raw_response.create(model="llama3", messages=MSG, max_tokens=1000)
    second = raw.parse().usage.total_tokens
    assert raw.headers["x-ratelimit-remaining-tokens"] == str(tpm - used - 1000 - INPUT_ESTIMATE)
    time.sleep(0.3)
    # A request whose estimate no longer fits: 429, the SDK's RateLimitError.
    with pytest.raises(openai.RateLimitError) as e:
        c.chat.completions.create(model="llama3", messages=MSG, max_tokens=tpm - used - second)
    resp = e.value.response
    assert int(resp.headers["retry-after"]) >= 1
    assert resp.headers["x-ratelimit-limit-tokens"] == str(tpm)
    assert resp.headers["x-ratelimit-remaining-tokens"] == str(tpm - used - second)
    assert "tokens per minute for this key" in str(e.value.message)
    assert e.value.code == "rate_limit_exceeded"
    # A small one still fits (nothing was counted for the refused one).
    small = c.chat.completions.create(model="llama3", messages=MSG, max_tokens=5).usage.total_tokens

    # Async client: refused the same way.
    async def refused():
        ac = openai.AsyncOpenAI(base_url=f"{mg.url}/v1", api_key=mg.key, max_retries=0)
        with pytest.raises(openai.RateLimitError):
            await ac.chat.completions.create(model="llama3", messages=MSG, max_tokens=tpm)
        await ac.close()
    asyncio.run(refused())

    # The decision log and the metrics agree with the usage the client saw.
    recs = chat_records(mg, mark, 5)
    logged = [d["tokens"]["total"] for d in recs if d["status"] == 200]
    assert logged == [used, second, small]
    assert [d["status"] for d in recs].count(429) == 2
    assert all("tokens" not in d for d in recs if d["status"] == 429)
    inp = sum(d["tokens"]["input"] for d in recs if d["status"] == 200)
    out = sum(d["tokens"]["output"] for d in recs if d["status"] == 200)
    assert inp + out == used + second + small
    assert token_metric(mg, "input") == inp and token_metric(mg, "output") == out


def test_stream_usage_is_asked_for_settled_and_stripped(tmp_path, run_modelgate, start_modelgate, litellm_mock):
    mg = gateway(tmp_path, run_modelgate, start_modelgate, litellm_mock.url,
                 "  per_key: {tpm: 100000}\n  estimate: {default_max_tokens: 500}")
    mark = mg.log_mark()
    c = client(mg)
    # The client did not ask for usage: no chunk carries it, yet it is counted.
    chunks = list(c.chat.completions.create(model="llama3", messages=MSG, stream=True, max_tokens=50))
    assert chunks and all(ch.usage is None for ch in chunks)
    assert all(ch.choices for ch in chunks)
    rec = chat_records(mg, mark, 1)[-1]
    assert rec["status"] == 200 and rec["tokens"]["total"] > 0
    mark = mg.log_mark()
    # The client asked: it gets the usage chunk, and the log holds the same numbers.
    chunks = list(c.chat.completions.create(model="llama3", messages=MSG, stream=True, max_tokens=50,
                                            stream_options={"include_usage": True}))
    usage = [ch.usage for ch in chunks if ch.usage is not None]
    assert len(usage) == 1
    rec = chat_records(mg, mark, 1)[-1]
    assert rec["tokens"]["total"] == usage[0].total_tokens
    assert rec["tokens"]["input"] == usage[0].prompt_tokens
    assert rec["tokens"]["output"] == usage[0].completion_tokens


def test_cut_mode_stream_under_its_headroom_is_logged_with_its_usage(tmp_path, run_modelgate, start_modelgate,
                                                                   litellm_mock):
    mg = gateway(tmp_path, run_modelgate, start_modelgate, litellm_mock.url,
                 "  per_key: {tpm: 100000}\n  on_overrun: cut")
    mark = mg.log_mark()
    chunks = list(client(mg).chat.completions.create(model="llama3", messages=MSG, stream=True, max_tokens=50,
                                                     stream_options={"include_usage": True}))
    usage = [ch.usage for ch in chunks if ch.usage is not None]
    assert len(usage) == 1 and "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    rec = chat_records(mg, mark, 1)[-1]
    assert rec["tokens"]["total"] == usage[0].total_tokens
    assert token_metric(mg, "output") == usage[0].completion_tokens


@pytest.fixture
def sse():
    srv = SseUpstream(interval=0.2)
    yield srv
    srv.stop()


def open_stream(mg, max_tokens: int):
    """A raw streamed request; returns the socket once 2 events arrived."""
    body = json.dumps({"model": "chat", "messages": MSG, "stream": True, "max_tokens": max_tokens}).encode()
    host, port = mg.listen.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: {mg.listen}\r\nAuthorization: Bearer {mg.key}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    got = b""
    while got.count(b"data: ") < 2:
        got += sock.recv(65536)
    assert got.startswith(b"HTTP/1.1 200"), got[:200]
    return sock


def test_concurrency_lease_is_released_on_every_end(tmp_path, run_modelgate, start_modelgate, sse):
    mg = gateway(tmp_path, run_modelgate, start_modelgate, sse.url, "  per_key: {max_concurrent: 1}",
                 model="chat", upstream_model="standin-llm")
    c = client(mg)
    # One stream runs: a second request is refused, with Retry-After.
    sock = open_stream(mg, 200)
    with pytest.raises(openai.RateLimitError) as e:
        c.chat.completions.create(model="chat", messages=MSG, stream=True, max_tokens=2)
    assert "concurrent requests for this key" in str(e.value.message)
    assert e.value.response.headers["retry-after"]
    # The client goes away mid-stream: the lease is released.
    sock.close()
    deadline = time.monotonic() + 5
    while True:
        try:
            texts = [ch.choices[0].delta.content
                     for ch in c.chat.completions.create(model="chat", messages=MSG, stream=True, max_tokens=3)]
            break
        except openai.RateLimitError:
            assert time.monotonic() < deadline, "the lease of the disconnected stream was never released"
            time.sleep(0.1)
    # A stream that ended normally released its lease too.
    assert texts == ["t0 ", "t1 ", "t2 "]
    assert len(list(c.chat.completions.create(model="chat", messages=MSG, stream=True, max_tokens=2))) == 2


def test_upstream_dying_mid_stream_releases_the_lease(tmp_path, run_modelgate, start_modelgate, sse):
    mg = gateway(tmp_path, run_modelgate, start_modelgate, sse.url,
                 "  per_key: {max_concurrent: 1, tpm: 100000}\n  estimate: {default_max_tokens: 100}",
                 model="chat", upstream_model="standin-llm")
    mark = mg.log_mark()
    c = client(mg, timeout=30)
    texts = []
    with pytest.raises(openai.APIError):
        for ch in c.chat.completions.create(model="chat", messages=MSG, stream=True, max_tokens=50, user="die"):
            texts.append(ch.choices[0].delta.content)
    assert texts == ["t0 ", "t1 "]
    # The lease is back at once: the next request (concurrency 1) is served.
    deadline = time.monotonic() + 5
    while True:
        try:
            got = list(c.chat.completions.create(model="chat", messages=MSG, stream=True, max_tokens=2))
            break
        except openai.RateLimitError:
            assert time.monotonic() < deadline, "lease not released after the upstream died"
            time.sleep(0.1)
    assert len(got) == 2
    # Its tokens stay charged at the estimate (usage unknown): the remaining
    # budget shows the estimate of the dead stream was kept.
    raw = c.chat.completions.with_raw_response.create(model="chat", messages=MSG, stream=True, max_tokens=1)
    list(raw.parse())
    remaining = int(raw.headers["x-ratelimit-remaining-tokens"])
    dead = 50 + INPUT_ESTIMATE
    second = 2 + INPUT_ESTIMATE  # the stand-in sends no usage either
    assert remaining == 100000 - dead - second - (1 + INPUT_ESTIMATE)
    assert chat_records(mg, mark, 3)[0]["status"] == 200


@pytest.fixture
def fast_sse():
    srv = SseUpstream(interval=0.01)
    yield srv
    srv.stop()


def test_on_overrun_cut_ends_a_stream_at_its_headroom(tmp_path, run_modelgate, start_modelgate, fast_sse):
    """`on_overrun: cut`: a stream that would pass its reservation's headroom
    gets one OpenAI-shaped error event and [DONE], the upstream request is
    dropped, and the counters, the decision log and the metrics hold what was
    sent. The stand-in streams 400 events of "word " ignoring max_tokens."""
    tpm = 100
    mg = gateway(tmp_path, run_modelgate, start_modelgate, fast_sse.url,
                 f"  per_key: {{tpm: {tpm}}}\n  estimate: {{default_max_tokens: 10}}\n  on_overrun: cut",
                 model="chat", upstream_model="standin-llm")
    away_from_minute_end()
    mark = mg.log_mark()
    c = client(mg, timeout=30)
    texts = []
    with pytest.raises(openai.APIError) as e:
        for ch in c.chat.completions.create(model="chat", messages=MSG, stream=True, user="long"):
            texts.append(ch.choices[0].delta.content)
    # Reserved 12 + 10 with 78 left: the stream may reach 100 tokens, i.e.
    # 88 output tokens = 352 characters = 70 events of 5 (71 would be 89).
    allowed_out = tpm - INPUT_ESTIMATE
    sent = len("".join(texts))
    assert texts and set(texts) == {"word "}
    assert -(-sent // 4) <= allowed_out < -(-(sent + 5) // 4), sent
    assert "tokens per minute for this key (limit 100)" in e.value.message
    assert "on_overrun: cut" in e.value.message
    assert e.value.body["type"] == "rate_limit_exceeded"
    # The upstream saw its connection closed before its end.
    deadline = time.monotonic() + 5
    while fast_sse.requests[-1].closed_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
    seen = fast_sse.requests[-1]
    assert seen.closed_at is not None and not seen.finished and seen.sent < 400
    # The decision log, the metrics and the counter hold what was sent.
    rec = chat_records(mg, mark, 1)[-1]
    assert rec["status"] == 200
    assert rec["tokens"] == {"input": INPUT_ESTIMATE, "output": -(-sent // 4),
                             "total": INPUT_ESTIMATE + -(-sent // 4)}
    assert token_metric(mg, "input") == INPUT_ESTIMATE and token_metric(mg, "output") == -(-sent // 4)
    time.sleep(0.3)  # settlement is applied in the background
    with pytest.raises(openai.RateLimitError) as e:
        c.chat.completions.create(model="chat", messages=MSG, max_tokens=1)
    assert e.value.response.headers["x-ratelimit-remaining-tokens"] == str(tpm - rec["tokens"]["total"])

    # The raw stream: the error event, then [DONE], then the end.
    (tmp_path / "two").mkdir()
    mg2 = gateway(tmp_path / "two", run_modelgate, start_modelgate, fast_sse.url,
                  "  per_key: {tpm: 60}\n  estimate: {default_max_tokens: 10}\n  on_overrun: cut",
                  model="chat", upstream_model="standin-llm")
    r = requests.post(f"{mg2.url}/v1/chat/completions", headers=bearer(mg2.key), stream=True, timeout=30,
                      json={"model": "chat", "messages": MSG, "stream": True, "user": "long"})
    events = [ev for ev in r.text.split("\n\n") if ev]
    assert events[-1] == "data: [DONE]"
    err = json.loads(events[-2].removeprefix("data: "))
    assert err["error"]["code"] == "rate_limit_exceeded"
    assert all('"word "' in ev for ev in events[:-2])


def test_finish_is_the_default_and_charges_the_whole_stream(tmp_path, run_modelgate, start_modelgate, fast_sse):
    mg = gateway(tmp_path, run_modelgate, start_modelgate, fast_sse.url,
                 "  per_key: {tpm: 100}\n  estimate: {default_max_tokens: 10}",
                 model="chat", upstream_model="standin-llm")
    mark = mg.log_mark()
    texts = [ch.choices[0].delta.content for ch in
             client(mg, timeout=30).chat.completions.create(model="chat", messages=MSG, stream=True, user="long")]
    assert len(texts) == 400
    # No usage from the stand-in: the estimate is kept (not the text).
    assert "tokens" not in chat_records(mg, mark, 1)[-1]


def test_uncountable_body_is_refused_not_counted_as_zero(tmp_path, run_modelgate, start_modelgate, litellm_mock):
    """Attack: a JSON array naming the model passes the model binding; with a
    token limit it must not go through uncounted."""
    mg = gateway(tmp_path, run_modelgate, start_modelgate, litellm_mock.url, "  per_key: {tpm: 1000, rpm: 50}")
    h = {**bearer(mg.key), "content-type": "application/json"}
    for body in (b'["llama3"]', b'"llama3"'):
        r = requests.post(f"{mg.url}/v1/chat/completions", headers=h, data=body, timeout=10)
        assert r.status_code == 400, (body, r.status_code, r.text)
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error"
        assert "not a JSON object" in err["message"] or "not valid JSON" in err["message"], err
    # Nothing was reserved for them: the full limits remain.
    raw = client(mg).chat.completions.with_raw_response.create(model="llama3", messages=MSG, max_tokens=10)
    assert raw.headers["x-ratelimit-remaining-tokens"] == str(1000 - 10 - INPUT_ESTIMATE)
    assert raw.headers["x-ratelimit-remaining-requests"] == "49"


def test_limits_stored_with_a_key_apply_and_follow_rotation(tmp_path, run_modelgate, start_modelgate, litellm_mock):
    mg = gateway(tmp_path, run_modelgate, start_modelgate, litellm_mock.url,
                 "  per_key: {tpm: 100000, rpm: 1000}\n  estimate: {default_max_tokens: 100}")
    keys = tmp_path / "keys.json"
    r = run_modelgate(["keys", "--file", str(keys), "create", "--name", "small", "--models", "*",
                       "--tpm", "2000", "--max-concurrent", "3"])
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip()
    assert json.loads(keys.read_text())["keys"][-1]["limits"] == {"tpm": 2000, "max_concurrent": 3}
    away_from_minute_end()
    c = openai.OpenAI(base_url=f"{mg.url}/v1", api_key=key, max_retries=0)
    deadline = time.monotonic() + 5
    while True:  # the key file is watched: wait for the new key
        try:
            raw = c.chat.completions.with_raw_response.create(model="llama3", messages=MSG, max_tokens=100)
            break
        except openai.AuthenticationError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    used = raw.parse().usage.total_tokens
    # The key's own tpm replaces limits.per_key.tpm; its rpm comes from config.
    assert raw.headers["x-ratelimit-limit-tokens"] == "2000"
    assert raw.headers["x-ratelimit-limit-requests"] == "1000"
    # Rotation keeps the key's name, limits and counters.
    r = run_modelgate(["keys", "--file", str(keys), "rotate", "small", "--grace", "1m"])
    assert r.returncode == 0, r.stderr
    new = openai.OpenAI(base_url=f"{mg.url}/v1", api_key=r.stdout.strip(), max_retries=0)
    deadline = time.monotonic() + 5
    while True:
        try:
            raw = new.chat.completions.with_raw_response.create(model="llama3", messages=MSG, max_tokens=100)
            break
        except openai.AuthenticationError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert raw.headers["x-ratelimit-limit-tokens"] == "2000"
    assert raw.headers["x-ratelimit-remaining-tokens"] == str(2000 - used - 100 - INPUT_ESTIMATE)


def test_admin_usage_reports_the_counters(tmp_path, run_modelgate, start_modelgate, litellm_mock):
    mg = gateway(tmp_path, run_modelgate, start_modelgate, litellm_mock.url,
                 "  per_key: {tpm: 50000, rpm: 10}\n  estimate: {default_max_tokens: 100}",
                 admin_keys=", keys: [limited]")
    away_from_minute_end()
    c = client(mg)
    used = sum(c.chat.completions.create(model="llama3", messages=MSG, max_tokens=100).usage.total_tokens
               for _ in range(3))
    time.sleep(0.3)
    # The admin API (the key is named in admin.keys); no credential: 401.
    assert requests.get(f"{mg.admin_url}/admin/api/usage", timeout=5).status_code == 401
    r = requests.get(f"{mg.admin_url}/admin/api/usage", headers=bearer(mg.key), timeout=5)
    assert r.status_code == 200, r.text
    rows = {(x["key"], x["counter"]): x for x in r.json()}
    assert rows[("limited", "tpm")]["used"] == used
    # rpm is GCRA: "used" is the part of the burst not yet refilled (one
    # request per 6 s at rpm 10), so the 3 requests of the last second count.
    assert rows[("limited", "rpm")]["used"] == 3 and rows[("limited", "rpm")]["limit"] == 10
    assert 0 < rows[("limited", "rpm")]["reset_secs"] <= 18
