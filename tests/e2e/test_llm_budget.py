"""Spend budgets, cost and limits from the identity (issue 13 items 3, 4, 7),
against real peers: LiteLLM's proxy with mock responses (it reports
`usage`), the `openai` SDK, the test OIDC provider's signing key for JWTs,
and redis-server shared by two modelgate processes.

Prices are chosen so that cost is exact in micro-USD: $1 per 1k input
tokens = 1000 µ$ per token, $2 per 1k output tokens = 2000 µ$ per token."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import jwt as pyjwt
import openai
import pytest
import requests

from gw import (INPUT_ESTIMATE, MSG, admin_usage, bearer, chat_records, create_key, gateway_config, metric_value,
                model)
from redis_peer import start_restartable_redis

COST = "{input_per_1k: 1, output_per_1k: 2}"
MAX_TOKENS = 20
# The reservation of one request: estimate × price, in micro-USD.
ESTIMATE_MICRO = INPUT_ESTIMATE * 1000 + MAX_TOKENS * 2000


def micro(usage) -> int:
    return usage.prompt_tokens * 1000 + usage.completion_tokens * 2000


def gateway(tmp_path, run_modelgate, start_modelgate, upstream: str, limits: str, model_extra: dict | None = None,
            key_args: tuple = ()):
    keys = tmp_path / "keys.json"
    mg = start_modelgate(gateway_config(keys, model("llama3", "openai", upstream, cost=COST, **(model_extra or {})),
                                        extra=f"limits:\n{limits}\n", admin="keys: [limited]"))
    mg.key = create_key(run_modelgate, keys, "limited", extra=key_args)
    mg.wait_ready(lambda: requests.get(f"{mg.url}/v1/models", headers=bearer(mg.key), timeout=5).status_code == 200,
                  5, "keys")
    return mg


def client(mg) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{mg.url}/v1", api_key=mg.key, max_retries=0)


def cost_metric(mg) -> int:
    return metric_value(mg, r'modelgate_llm_cost_micro_usd_total\{gen_ai_request_model="llama3"\}')


def spend_until_refused(c, n: int = 40):
    spent, raw_headers = [], None
    for _ in range(n):
        try:
            raw = c.chat.completions.with_raw_response.create(model="llama3", messages=MSG, max_tokens=MAX_TOKENS)
        except openai.APIStatusError as e:
            return spent, raw_headers, e
        raw_headers = raw.headers
        spent.append(micro(raw.parse().usage))
        time.sleep(0.1)  # settlement is applied in the background
    raise AssertionError(f"never refused after {n} requests: {spent}")


def test_daily_budget_refuses_with_429_and_the_books_agree(tmp_path, run_modelgate, start_modelgate, litellm_mock):
    budget = 300_000  # $0.30
    mg = gateway(tmp_path, run_modelgate, start_modelgate, litellm_mock.url, "  per_key: {budget_daily: 0.30}",
                 model_extra={"limits": "{rpm: 1000}"})
    mark = mg.log_mark()
    spent, last_ok, e = spend_until_refused(client(mg))
    # models[].limits is the model's own rpm limit; the budget header shows what is left.
    assert last_ok["x-ratelimit-limit-requests"] == "1000"
    left = float(last_ok["x-budget-remaining-usd"])
    assert left * 1_000_000 == pytest.approx(budget - sum(spent[:-1]) - ESTIMATE_MICRO, abs=1)
    assert isinstance(e, openai.RateLimitError)
    assert e.status_code == 429 and e.code == "insufficient_quota"
    assert "budget exceeded: key limited daily budget $0.30" in e.message, e.message
    retry = int(e.response.headers["retry-after"])
    assert 1 <= retry <= 86_400
    # Never more than one estimate over; refused only when the next estimate no longer fits.
    assert sum(spent) <= budget
    assert sum(spent) + ESTIMATE_MICRO > budget
    # Decision log, metric and the counter agree to the micro-dollar.
    recs = chat_records(mg, mark, len(spent) + 1)
    logged = [round(d["tokens"]["cost_usd"] * 1_000_000) for d in recs if d["status"] == 200]
    assert logged == spent
    assert [d for d in recs if d["status"] == 429][0].get("tokens") is None
    assert cost_metric(mg) == sum(spent)
    row = admin_usage(mg, mg.key)[("key", "limited", "usd_d")]
    assert row["used"] == sum(spent) and row["limit"] == budget
    assert row["used_usd"] == pytest.approx(sum(spent) / 1e6) and row["limit_usd"] == 0.3


def test_total_budget_on_the_key_answers_402_without_retry(tmp_path, run_modelgate, start_modelgate, litellm_mock):
    mg = gateway(tmp_path, run_modelgate, start_modelgate, litellm_mock.url,
                 "  budget_exceeded_status: 402\n  per_key: {budget_total: 100}",
                 key_args=("--budget-total", "0.2"))
    spent, _, e = spend_until_refused(client(mg))
    assert type(e) is openai.APIStatusError and e.status_code == 402
    assert "budget exceeded: key limited total budget $0.20" in e.message, e.message
    assert "retry-after" not in e.response.headers
    assert 0.2e6 - ESTIMATE_MICRO < sum(spent) <= 0.2e6
    # A request whose estimate alone is over the budget says so.
    with pytest.raises(openai.APIStatusError) as big:
        client(mg).chat.completions.create(model="llama3", messages=MSG, max_tokens=200_000)
    assert big.value.status_code == 402 and "lower max_tokens" in big.value.message


def test_parallel_burst_never_overspends(tmp_path, run_modelgate, start_modelgate, litellm_mock):
    budget = 600_000
    mg = gateway(tmp_path, run_modelgate, start_modelgate, litellm_mock.url,
                 "  per_model: {llama3: {budget_monthly: 0.60}}")
    mark = mg.log_mark()
    c = client(mg)

    def one(_):
        try:
            return micro(c.chat.completions.create(model="llama3", messages=MSG, max_tokens=MAX_TOKENS).usage)
        except openai.RateLimitError:
            return None

    with ThreadPoolExecutor(40) as pool:
        results = list(pool.map(one, range(60)))
    accepted = [r for r in results if r is not None]
    assert accepted and len(accepted) < len(results)
    assert sum(accepted) <= budget + ESTIMATE_MICRO
    recs = chat_records(mg, mark, len(results))
    logged = sum(round(d["tokens"]["cost_usd"] * 1_000_000) for d in recs if d["status"] == 200)
    time.sleep(0.3)
    row = admin_usage(mg, mg.key)[("model", "llama3", "usd_m")]
    assert logged == cost_metric(mg) == row["used"] == sum(accepted)


def test_budget_shared_by_two_processes_and_keys_usage(tmp_path, run_modelgate, start_modelgate, litellm_mock):
    redis = start_restartable_redis(tmp_path / "redis")
    try:
        keys = tmp_path / "keys.json"
        text = gateway_config(keys, model("llama3", "openai", litellm_mock.url, cost=COST),
                              extra=f'limits:\n  store: {{redis: {{url: "{redis.url}", prefix: budget}}}}\n')
        key = create_key(run_modelgate, keys, "shared",
                         extra=("--budget-daily", "0.5", "--budget-monthly", "100", "--budget-total", "$1000"))
        config = tmp_path / "limits.yaml"
        config.write_text(text.replace("__LISTEN__", "127.0.0.1:1").replace("__ADMIN__", "127.0.0.1:2"))
        a, b = start_modelgate(text), start_modelgate(text)
        clients = [openai.OpenAI(base_url=f"{m.url}/v1", api_key=key, max_retries=0) for m in (a, b)]

        def one(i):
            try:
                return micro(clients[i % 2].chat.completions.create(model="llama3", messages=MSG,
                                                                    max_tokens=MAX_TOKENS).usage)
            except openai.RateLimitError:
                return None

        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(one, range(40)))
        accepted = [r for r in results if r is not None]
        assert accepted and len(accepted) < len(results)
        assert sum(accepted) <= 500_000 + ESTIMATE_MICRO
        time.sleep(0.5)
        assert cost_metric(a) + cost_metric(b) == sum(accepted)
        usage = run_modelgate(["keys", "--file", str(keys), "usage", "--config", str(config), "--json"])
        assert usage.returncode == 0, usage.stderr
        rows = {(r["key"], r["counter"]): r for r in json.loads(usage.stdout)}
        assert rows[("shared", "usd_d")]["used"] == sum(accepted)
        assert rows[("shared", "usd_d")]["limit_usd"] == 0.5
        # The month and total windows count the same spend; a total budget never resets.
        assert rows[("shared", "usd_m")]["used"] == rows[("shared", "usd_t")]["used"] == sum(accepted)
        assert "reset_secs" not in rows[("shared", "usd_t")]
        table = run_modelgate(["keys", "--file", str(keys), "usage", "--config", str(config)])
        assert table.returncode == 0 and "$1000.00" in table.stdout and "never" in table.stdout, table.stdout
    finally:
        redis.stop()


POLICIES = """
policies:
  - name: any-verified-identity
    rules:
      - from: [{source: {requestPrincipals: ["*"]}}]
"""


def test_token_limit_from_a_claim(tmp_path, start_oidc, start_modelgate, litellm_mock):
    idp = start_oidc()
    mg = start_modelgate(f"""
listen: {{address: "__LISTEN__"}}
admin: {{address: "__ADMIN__"}}
auth:
  jwt:
    - issuer: {idp.issuer}
      audiences: [models]
models:
  - name: llama3
    protocols: [openai]
    upstream: {{url: "{litellm_mock.url}"}}
limits:
  per_subject: {{rpm: 100}}
  claim_limits: {{tpm: quota_tpm}}
{POLICIES}""")

    def token(**claims):
        # Signed with the test provider's own key: a token it would issue
        # with a quota claim (its client config carries no such claim).
        kid, k = idp.keys["RS256"]
        now = int(time.time())
        body = {"iss": idp.issuer, "aud": "models", "sub": claims.pop("sub"), "iat": now, "exp": now + 300, **claims}
        return pyjwt.encode(body, k, algorithm="RS256", headers={"kid": kid})

    def ask(tok, max_tokens=MAX_TOKENS):
        c = openai.OpenAI(base_url=f"{mg.url}/v1", api_key=tok, max_retries=0)
        return c.chat.completions.with_raw_response.create(model="llama3", messages=MSG, max_tokens=max_tokens)

    left = 60 - time.time() % 60
    if left < 10:
        time.sleep(left + 0.5)
    quota = 2 * (INPUT_ESTIMATE + MAX_TOKENS) + 5
    ok = ask(token(sub="gold-user", quota_tpm=quota))
    assert ok.headers["x-ratelimit-limit-tokens"] == str(quota)
    # Another subject with another number in the claim gets its own limit.
    other = ask(token(sub="small-user", quota_tpm=str(INPUT_ESTIMATE + MAX_TOKENS)))
    assert other.headers["x-ratelimit-limit-tokens"] == str(INPUT_ESTIMATE + MAX_TOKENS)
    with pytest.raises(openai.RateLimitError) as e:
        ask(token(sub="small-user", quota_tpm=INPUT_ESTIMATE + MAX_TOKENS))
    assert f"tokens per minute for this subject (limit {INPUT_ESTIMATE + MAX_TOKENS})" in e.value.message
    # No claim, or not a number, and per_subject sets no tpm: refused (fail closed).
    for bad in (token(sub="nobody"), token(sub="nobody", quota_tpm="gold"), token(sub="nobody", quota_tpm=-1)):
        with pytest.raises(openai.PermissionDeniedError) as denied:
            ask(bad)
        assert "quota_tpm" in denied.value.message


def test_stream_cost_is_charged_and_logged(tmp_path, run_modelgate, start_modelgate, litellm_mock):
    mg = gateway(tmp_path, run_modelgate, start_modelgate, litellm_mock.url, "  per_key: {budget_daily: 10}")
    mark = mg.log_mark()
    chunks = list(client(mg).chat.completions.create(model="llama3", messages=MSG, max_tokens=MAX_TOKENS,
                                                     stream=True, stream_options={"include_usage": True}))
    usage = [ch.usage for ch in chunks if ch.usage is not None]
    assert len(usage) == 1
    rec = chat_records(mg, mark, 1)[0]
    assert round(rec["tokens"]["cost_usd"] * 1_000_000) == micro(usage[0])
    time.sleep(0.3)
    assert admin_usage(mg, mg.key)[("key", "limited", "usd_d")]["used"] == micro(usage[0]) == cost_metric(mg)
