use std::collections::BTreeMap;

use modelgate_config::cost::Cost;
use modelgate_config::rate_limits::{LimitSet, RateLimits};

use super::*;

fn cfg() -> RateLimits {
    RateLimits {
        store: None,
        default_max_tokens: 100,
        per_key: LimitSet {
            rpm: Some(10),
            tpm: Some(1000),
            max_concurrent: Some(2),
            ..LimitSet::default()
        },
        per_subject: LimitSet::default(),
        per_group: LimitSet {
            tpd: Some(5000),
            ..LimitSet::default()
        },
        per_namespace: LimitSet::default(),
        per_model: BTreeMap::from([(
            "llama3".to_string(),
            LimitSet {
                output_tpm: Some(700),
                ..LimitSet::default()
            },
        )]),
        on_overrun: Default::default(),
        cached_input_permille: 500,
        class_claim: Some("tier".into()),
        classes: BTreeMap::from([(
            "gold".to_string(),
            LimitSet {
                tpm: Some(9000),
                ..LimitSet::default()
            },
        )]),
        costs: BTreeMap::from([(
            "llama3".to_string(),
            Cost {
                input_per_1k: 500_000,
                output_per_1k: 1_500_000,
                cached_input_per_1k: 100_000,
            },
        )]),
        budget_exceeded_status: 429,
        claim_limits: Default::default(),
    }
}

const EST: Estimate = Estimate {
    input: 20,
    output: 100,
};

#[test]
fn plan_names_counters_from_config_and_verified_ids() {
    let groups = vec!["a".to_string(), "b".to_string()];
    let who = Who {
        key: Some("alice"),
        subject: Some("alice"),
        groups: &groups,
        namespace: None,
        class: Some("gold"),
        key_limits: None,
        subject_limits: None,
    };
    let p = plan(&cfg(), &who, "llama3", EST, 125);
    let names: Vec<_> = p.iter().map(|p| p.charge.id.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "rpm:key:alice",
            "tpm:key:alice",
            "conc:key:alice",
            "tpd:group:a",
            "tpd:group:b",
            "otpm:model:llama3",
            "tpm:class:gold:alice"
        ]
    );
    let tpm = &p[1];
    assert_eq!(tpm.charge.amount, 120);
    assert_eq!(tpm.charge.id.start, 120);
    assert_eq!(tpm.reset_secs(125), 55);
    assert_eq!(p[5].charge.amount, 100);
    assert_eq!(p[2].charge.id.window, Window::Lease);
    assert_eq!(p[1].what, "tokens per minute for this key");
}

#[test]
fn unknown_class_and_model_add_nothing() {
    let who = Who {
        key: Some("k"),
        class: Some("platinum"),
        ..Who::default()
    };
    let p = plan(&cfg(), &who, "other", EST, 0);
    assert_eq!(p.len(), 3);
}

#[test]
fn settlement_charges_exact_usage_and_releases_leases() {
    let who = Who {
        key: Some("k"),
        ..Who::default()
    };
    let p = plan(&cfg(), &who, "llama3", EST, 0);
    let used = Usage {
        prompt: 30,
        completion: 10,
        cached: 10,
    };
    // input = 20 uncached + 10 cached × 0.5 = 25; total 35.
    assert_eq!(used.total(500), 35);
    let adj = settle(&p, Outcome::Used(used), 500);
    let deltas: Vec<_> = adj.iter().map(|a| (a.id.name.as_str(), a.delta)).collect();
    assert_eq!(
        deltas,
        [
            ("tpm:key:k", 35 - 120),
            ("conc:key:k", -1),
            ("otpm:model:llama3", 10 - 100)
        ]
    );
    let refund = settle(&p, Outcome::Refund, 500);
    assert_eq!(
        refund.iter().map(|a| a.delta).collect::<Vec<_>>(),
        [-120, -1, -100]
    );
    let keep = settle(&p, Outcome::Keep, 500);
    assert_eq!(keep.iter().map(|a| a.delta).collect::<Vec<_>>(), [-1]);
}

#[test]
fn a_keys_own_limits_replace_per_key_values() {
    let own = LimitSet {
        tpm: Some(50),
        rps: Some(3),
        ..LimitSet::default()
    };
    let who = Who {
        key: Some("k"),
        key_limits: Some(&own),
        ..Who::default()
    };
    let p = plan(&cfg(), &who, "x", EST, 0);
    let got: Vec<_> = p
        .iter()
        .map(|p| (p.charge.id.name.as_str(), p.charge.limit))
        .collect();
    assert_eq!(
        got,
        [
            ("rps:key:k", 3),
            ("rpm:key:k", 10),
            ("tpm:key:k", 50),
            ("conc:key:k", 2)
        ]
    );
}

#[test]
fn budgets_reserve_the_estimates_price_and_settle_the_real_one() {
    let mut c = cfg();
    c.per_key = LimitSet {
        budget_daily: Some(5_000_000),
        budget_monthly: Some(100_000_000),
        budget_total: Some(1_000_000_000),
        ..LimitSet::default()
    };
    c.per_model.clear();
    let who = Who {
        key: Some("k"),
        ..Who::default()
    };
    let now = 1_796_104_144; // 2026-12-01T05:49:04Z
    let p = plan(&c, &who, "llama3", EST, now);
    let got: Vec<_> = p
        .iter()
        .map(|p| {
            (
                p.charge.id.name.as_str(),
                p.charge.id.window,
                p.charge.amount,
            )
        })
        .collect();
    // 20 in × $0.0005 + 100 out × $0.0015 = $0.16
    assert_eq!(
        got,
        [
            ("usd_d:key:k", Window::Fixed { secs: 86_400 }, 160_000),
            ("usd_m:key:k", Window::Month, 160_000),
            ("usd_t:key:k", Window::Total, 160_000),
        ]
    );
    assert_eq!(p[1].charge.id.start, 1_796_083_200);
    assert_eq!(p[1].retry_after(now), Some(1_798_761_600 - now));
    assert_eq!(p[2].retry_after(now), None);
    assert_eq!(p[0].what, "key k daily budget");
    let used = Usage {
        prompt: 30,
        completion: 10,
        cached: 10,
    };
    // 20 × 0.0005 + 10 cached × 0.0001 + 10 × 0.0015 = 0.026
    let adj = settle(&p, Outcome::Used(used), 500);
    assert_eq!(adj[0].delta, 26_000 - 160_000);
    assert_eq!(adj.len(), 3);
    // a model without a price spends nothing
    let free = plan(&c, &who, "other", EST, now);
    assert!(free.iter().all(|p| p.charge.amount == 0));
    assert!(settle(&free, Outcome::Used(used), 500).is_empty());
}

#[test]
fn limits_from_claims_replace_per_subject_values() {
    let mut c = cfg();
    c.per_subject = LimitSet {
        tpm: Some(100),
        rpm: Some(7),
        ..LimitSet::default()
    };
    let from_claim = LimitSet {
        tpm: Some(4242),
        ..LimitSet::default()
    };
    let who = Who {
        subject: Some("s"),
        subject_limits: Some(&from_claim),
        ..Who::default()
    };
    let p = plan(&c, &who, "x", EST, 0);
    let got: Vec<_> = p
        .iter()
        .map(|p| (p.charge.id.name.as_str(), p.charge.limit))
        .collect();
    assert_eq!(got, [("rpm:sub:s", 7), ("tpm:sub:s", 4242)]);
}

#[test]
fn request_rates_are_gcra_and_reset_when_the_store_says() {
    let who = Who {
        key: Some("k"),
        ..Who::default()
    };
    let p = plan(&cfg(), &who, "x", EST, 0);
    assert_eq!(p[0].charge.id.name, "rpm:key:k");
    assert_eq!(p[0].charge.id.window, Window::Gcra { period_ms: 60_000 });
    assert_eq!(p[0].reset_secs_from(0, Some(6_001)), 7);
    assert_eq!(p[0].reset_secs_from(0, Some(0)), 1);
    // Windowed counters reset at their window's end, whatever the store says.
    assert_eq!(p[1].reset_secs_from(30, Some(6_001)), 30);
}
