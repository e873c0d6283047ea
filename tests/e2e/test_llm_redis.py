"""Shared counters in Redis (issue 13 item 5): two modelgate processes share
one redis-server, so a per-key token limit holds across replicas; Redis
stopped mid-test follows `failure_mode` (open grants, closed answers 503 with
Retry-After), with one log line per state change and the store metrics; and
limits come back when Redis does, without restarting modelgate.

Upstream: LiteLLM's proxy with mock responses (it reports `usage`).
The `rate-limit` step is built in parallel with the Redis store: when this
binary does not accept `limits.store.redis` yet, the scenarios are xfailed
with that reason (and only then)."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from gw import away_from_minute_end, bearer, create_key, gateway_config, model
from redis_peer import start_restartable_redis

TPM = 10_000
MAX_TOKENS = 1000  # estimate ≈ 1000: at most ~10 requests hold 10k at once
PROMPT = "Say something about Kubernetes."


def gateway(keys, upstream: str, limits: str) -> str:
    return gateway_config(keys, model("llama3", "openai", upstream), extra=limits)


LIMITS = """limits:
  store:
    redis: {{url: "{url}", failure_mode: {mode}, timeout: 200ms, prefix: "{prefix}"}}
  per_key: {{tpm: {tpm}}}
  estimate: {{default_max_tokens: {max_tokens}}}
"""


def config(keys, upstream, redis_url, mode="closed", prefix="e2e", limits=True) -> str:
    block = LIMITS.format(url=redis_url, mode=mode, prefix=prefix, tpm=TPM, max_tokens=MAX_TOKENS) if limits else ""
    return gateway(keys, upstream, block)


def require_step(tmp_path, run_modelgate, keys, upstream, redis_url) -> None:
    """xfail (with the reason) when this binary has no rate-limit step that
    accepts `limits.store.redis`; fail on any other config problem."""
    base = tmp_path / "base.yaml"
    base.write_text(config(keys, upstream, redis_url, limits=False).replace("__LISTEN__", "127.0.0.1:1")
                    .replace("__ADMIN__", "127.0.0.1:2"))
    r = run_modelgate(["validate", "--config", str(base)])
    assert r.returncode == 0, r.stdout + r.stderr
    limited = tmp_path / "limited.yaml"
    limited.write_text(config(keys, upstream, redis_url).replace("__LISTEN__", "127.0.0.1:1")
                       .replace("__ADMIN__", "127.0.0.1:2"))
    r = run_modelgate(["validate", "--config", str(limited)])
    if r.returncode != 0 and "limits" in r.stdout + r.stderr:
        why = [line.strip() for line in (r.stdout + r.stderr).splitlines() if "limits" in line]
        pytest.xfail("the rate-limit step (quota branch) is not in this binary: `limits.store.redis` is refused: "
                     + why[0])
    assert r.returncode == 0, r.stdout + r.stderr


def chat(url: str, key: str, timeout: float = 30.0) -> requests.Response:
    body = {"model": "llama3", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": MAX_TOKENS}
    return requests.post(f"{url}/v1/chat/completions", json=body, headers=bearer(key), timeout=timeout)


def metric(mg, name: str) -> float | None:
    text = requests.get(f"{mg.admin_url}/metrics", timeout=5).text
    m = re.search(rf'(?m)^{re.escape(name)}{{store="redis"}} (\S+)$', text)
    return float(m.group(1)) if m else None


@pytest.fixture
def redis(tmp_path):
    r = start_restartable_redis(tmp_path / "redis")
    yield r
    r.stop()


@pytest.fixture
def keys(tmp_path):
    return tmp_path / "keys.json"


def test_two_processes_share_one_token_limit(tmp_path, redis, keys, litellm_mock, run_modelgate,
                                             start_modelgate):
    require_step(tmp_path, run_modelgate, keys, litellm_mock.url, redis.url)
    key = create_key(run_modelgate, keys, "burst", "llama3")
    cfg = config(keys, litellm_mock.url, redis.url, prefix="exact")
    a = start_modelgate(cfg)
    b = start_modelgate(cfg)
    marks = (a.log_mark(), b.log_mark())
    away_from_minute_end(20.0)
    urls = [a.url, b.url] * 100
    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(lambda u: chat(u, key), urls))
    statuses = [r.status_code for r in answers]
    assert set(statuses) <= {200, 429}, statuses
    accepted = [r.json()["usage"]["total_tokens"] for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code == 429]
    assert refused, "32 clients reserving ~1000 tokens each must meet the 10k tokens-per-minute limit"
    assert all(r.headers.get("retry-after") for r in refused)
    # One request's estimate: the prompt (chars / 4, rounded up) + max_tokens.
    estimate = MAX_TOKENS + len(PROMPT) // 4 + 1
    assert sum(accepted) <= TPM + estimate, (sum(accepted), len(accepted))
    # Both replicas granted some: the limit is shared, not per process.
    by_proc = [sum(1 for r, u in zip(answers, urls) if u == p.url and r.status_code == 200) for p in (a, b)]
    assert all(n > 0 for n in by_proc), by_proc
    # The decision logs of both processes add up to the tokens the clients saw.
    logged = 0
    for mg, mark in zip((a, b), marks):
        d = [x for x in mg.wait_decisions(100, since=mark) if x.get("path") == "/v1/chat/completions"]
        logged += sum((x.get("tokens") or {}).get("total", 0) for x in d if x["status"] == 200)
    assert logged == sum(accepted)
    # Settled: the shared token counter holds exactly the accepted usage.
    counters = [k for k in redis.keys("modelgate:{exact}:*") if ":tpm:" in k]
    assert counters, redis.keys()
    deadline = time.monotonic() + 5
    while sum(redis.get_int(k) for k in counters) != sum(accepted) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sum(redis.get_int(k) for k in counters) == sum(accepted)
    usage = run_modelgate(["keys", "usage", "--config", str(a.config_path)])
    assert usage.returncode == 0, usage.stderr
    assert str(sum(accepted)) in usage.stdout, usage.stdout


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_redis_stopped_then_restarted(mode, tmp_path, redis, keys, litellm_mock, run_modelgate, start_modelgate):
    require_step(tmp_path, run_modelgate, keys, litellm_mock.url, redis.url)
    key = create_key(run_modelgate, keys, "fault", "llama3")
    mg = start_modelgate(config(keys, litellm_mock.url, redis.url, mode=mode, prefix=f"fault-{mode}"))
    assert chat(mg.url, key).status_code == 200
    assert metric(mg, "modelgate_limit_store_up") == 1

    redis.stop()
    answers = [chat(mg.url, key) for _ in range(5)]
    if mode == "open":
        assert [r.status_code for r in answers] == [200] * 5
    else:
        assert [r.status_code for r in answers] == [503] * 5
        assert all(r.headers.get("retry-after") for r in answers)
    assert metric(mg, "modelgate_limit_store_up") == 0
    assert (metric(mg, "modelgate_limit_store_errors_total") or 0) >= 1
    # One log line for the change of state, not one per request.
    assert mg.stderr().count("counter store unreachable") == 1, mg.stderr()

    redis.restart()  # same port, no data: what is counted now is new
    deadline = time.monotonic() + 15
    while True:
        r = chat(mg.url, key)
        if r.status_code == 200 and redis.keys(f"modelgate:{{fault-{mode}}}:*"):
            break
        assert time.monotonic() < deadline, f"no recovery: {r.status_code} {mg.stderr()[-2000:]}"
        time.sleep(0.2)
    assert metric(mg, "modelgate_limit_store_up") == 1
    assert "counter store reachable again" in mg.stderr()


def test_two_processes_share_one_gcra_request_rate(tmp_path, redis, keys, litellm_mock, run_modelgate,
                                                   start_modelgate):
    """rpm is GCRA on Redis's clock: two processes pass exactly the burst
    (= the limit) of a parallel burst, and the refused get a Retry-After of
    at most one interval (20 s at rpm 3), not the seconds to a minute's end."""
    require_step(tmp_path, run_modelgate, keys, litellm_mock.url, redis.url)
    key = create_key(run_modelgate, keys, "rate", "llama3")
    text = gateway(keys, litellm_mock.url, f"""limits:
  store:
    redis: {{url: "{redis.url}", timeout: 500ms, prefix: "gcra"}}
  per_key: {{rpm: 3}}
  estimate: {{default_max_tokens: 20}}
""")
    a, b = start_modelgate(text), start_modelgate(text)
    urls = [a.url, b.url] * 6
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda u: chat(u, key), urls))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] * 3 + [429] * 9, statuses
    for r in answers:
        assert r.headers["x-ratelimit-limit-requests"] == "3"
        if r.status_code == 429:
            assert 1 <= int(r.headers["retry-after"]) <= 20, r.headers
            assert "requests per minute for this key" in r.json()["error"]["message"]
    ok = [r for r in answers if r.status_code == 200]
    assert sorted(r.headers["x-ratelimit-remaining-requests"] for r in ok) == ["0", "1", "2"]
    assert all(1 <= int(r.headers["x-ratelimit-reset-requests"].rstrip("s")) <= 60 for r in ok)
    gcra = redis.keys("modelgate:{gcra}:rpm:*")
    assert len(gcra) == 1 and gcra[0].endswith(":gcra60000ms:0"), gcra


def test_store_metrics_follow_a_store_rebuilt_by_a_reload(tmp_path, redis, keys, litellm_mock, run_modelgate,
                                                          start_modelgate):
    """The store metrics are registered once: after a reload that changes
    `limits.store` (a new store), the exposed series follow the new store."""
    require_step(tmp_path, run_modelgate, keys, litellm_mock.url, redis.url)
    key = create_key(run_modelgate, keys, "reload", "llama3")
    mg = start_modelgate(config(keys, litellm_mock.url, redis.url, prefix="first"))
    assert chat(mg.url, key).status_code == 200
    mg.config_path.write_text(mg.config_path.read_text().replace('prefix: "first"', 'prefix: "second"'))
    mg.reload()
    deadline = time.monotonic() + 10
    while not redis.keys("modelgate:{second}:*"):
        assert chat(mg.url, key).status_code == 200
        assert time.monotonic() < deadline, "the reload never built the new store"
        time.sleep(0.2)
    redis.stop()
    assert chat(mg.url, key).status_code == 503
    assert metric(mg, "modelgate_limit_store_up") == 0
    assert (metric(mg, "modelgate_limit_store_errors_total") or 0) >= 1
