use crate::parse_str;

const BASE: &str = "listen: {address: 127.0.0.1:8080}\nmodels: [{name: llama3, protocols: [openai], upstream: {url: \"http://127.0.0.1:9\"}}]\n";

fn parse(extra: &str) -> Result<crate::Config, String> {
    parse_str(
        &format!("{BASE}{extra}"),
        "t.yaml",
        std::path::Path::new("."),
        &|_| None,
    )
    .map_err(|e| e.to_string())
}

#[test]
fn absent_section_means_no_step() {
    assert!(parse("").unwrap().rate_limits.is_none());
}

#[test]
fn full_section_parses() {
    let cfg = parse(
        "limits:
  store: {redis: {url: \"redis://127.0.0.1:6379\", failure_mode: open}}
  estimate: {default_max_tokens: 1000}
  per_key: {rpm: 60, tpm: 10000, max_concurrent: 2}
  per_group: {tpd: 1000000}
  per_model: {llama3: {rps: 50, input_tpm: 5000, output_tpm: 7000}}
  cached_input_weight: 0.25
  class_claim: tier
  classes: {gold: {tpm: 100000}}
",
    )
    .unwrap();
    let l = cfg.rate_limits.unwrap();
    assert_eq!(l.default_max_tokens, 1000);
    assert_eq!(l.per_key.tpm, Some(10_000));
    assert_eq!(l.per_key.max_concurrent, Some(2));
    assert_eq!(l.per_group.tpd, Some(1_000_000));
    assert_eq!(l.per_model["llama3"].output_tpm, Some(7000));
    assert_eq!(l.cached_input_permille, 250);
    assert_eq!(l.classes["gold"].tpm, Some(100_000));
    assert_eq!(l.store.unwrap().prefix, "default");
    assert!(l.per_subject.is_empty());
}

#[test]
fn in_process_store_by_default() {
    let l = parse("limits: {per_key: {tpm: 10}}\n")
        .unwrap()
        .rate_limits
        .unwrap();
    assert!(l.store.is_none());
    assert_eq!(l.default_max_tokens, super::DEFAULT_MAX_TOKENS);
}

#[test]
fn errors_name_the_key_and_the_fix() {
    let e = parse("limits: {per_key: {tpmm: 10}}\n").unwrap_err();
    assert!(e.contains("limits.per_key") && e.contains("tpmm"), "{e}");
    let e = parse("limits: {per_key: {tpm: 0}}\n").unwrap_err();
    assert!(e.contains("limits.per_key.tpm"), "{e}");
    let e = parse("limits: {per_model: {gpt4: {rpm: 1}}}\n").unwrap_err();
    assert!(
        e.contains("limits.per_model.gpt4") && e.contains("llama3"),
        "{e}"
    );
    let e = parse("limits: {cached_input_weight: 2}\n").unwrap_err();
    assert!(e.contains("limits.cached_input_weight"), "{e}");
    let e = parse("limits: {classes: {gold: {tpm: 1}}}\n").unwrap_err();
    assert!(e.contains("class_claim"), "{e}");
    let e = parse("limits: {store: {redis: {url: \"http://x\"}}}\n").unwrap_err();
    assert!(e.contains("limits.store.redis.url"), "{e}");
    let e = parse("limits: {store: {memcached: {}}}\n").unwrap_err();
    assert!(e.contains("limits.store") && e.contains("memcached"), "{e}");
}

#[test]
fn costs_budgets_and_claim_limits_parse() {
    let cfg = parse_str(
        "listen: {address: 127.0.0.1:8080}
models:
  - name: llama3
    protocols: [openai]
    upstream: {url: \"http://127.0.0.1:9\"}
    cost: {input_per_1k: 0.5, output_per_1k: 1.5}
    limits: {rpm: 5}
limits:
  budget_exceeded_status: 402
  per_key: {budget_daily: 5, budget_monthly: 100.25, budget_total: 1000}
  claim_limits: {tpm: quota_tpm, budget_daily: quota_usd}
",
        "t.yaml",
        std::path::Path::new("."),
        &|_| None,
    )
    .unwrap();
    let l = cfg.rate_limits.unwrap();
    assert_eq!(l.per_key.budget_daily, Some(5_000_000));
    assert_eq!(l.per_key.budget_monthly, Some(100_250_000));
    assert_eq!(l.budget_exceeded_status, 402);
    assert_eq!(l.costs["llama3"].output_per_1k, 1_500_000);
    assert_eq!(l.costs["llama3"].cached_input_per_1k, 500_000);
    assert_eq!(l.per_model["llama3"].rpm, Some(5));
    assert_eq!(
        l.claim_limits.entries(),
        [("tpm", "quota_tpm"), ("budget_daily", "quota_usd")]
    );
}

#[test]
fn bad_costs_and_budgets_name_the_key() {
    let e =
        parse("limits: {per_key: {budget_daily: -1}, budget_exceeded_status: 403}\n").unwrap_err();
    assert!(e.contains("limits.per_key.budget_daily"), "{e}");
    assert!(e.contains("limits.budget_exceeded_status"), "{e}");
    let e = parse_str(
        "listen: {address: 127.0.0.1:8080}
models:
  - name: m
    protocols: [openai]
    upstream: {url: \"http://127.0.0.1:9\"}
    cost: {input_per_1k: -2, output: 1}
",
        "t.yaml",
        std::path::Path::new("."),
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("models[0].cost"), "{e}");
    let e = parse("limits: {claim_limits: {tokens: q}}\n").unwrap_err();
    assert!(e.contains("limits.claim_limits"), "{e}");
}

#[test]
fn on_overrun_defaults_to_finish_and_takes_cut() {
    use super::OnOverrun;
    let l = parse("limits: {per_key: {tpm: 10}}\n")
        .unwrap()
        .rate_limits
        .unwrap();
    assert_eq!(l.on_overrun, OnOverrun::Finish);
    let l = parse("limits: {on_overrun: cut, per_key: {tpm: 10}}\n")
        .unwrap()
        .rate_limits
        .unwrap();
    assert_eq!(l.on_overrun, OnOverrun::Cut);
    let e = parse("limits: {on_overrun: stop}\n").unwrap_err();
    assert!(e.contains("on_overrun"), "{e}");
}
