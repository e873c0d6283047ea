use std::collections::BTreeMap;

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
        cached_input_permille: 500,
        class_claim: Some("tier".into()),
        classes: BTreeMap::from([(
            "gold".to_string(),
            LimitSet {
                tpm: Some(9000),
                ..LimitSet::default()
            },
        )]),
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
