//! Metric labels, bounds, escaping and the series of removed models.

use super::*;
use crate::Outcome;
use std::time::{Duration, SystemTime};

fn decision(model: Option<&str>, status: u16) -> Decision<'_> {
    Decision {
        ts: SystemTime::now(),
        request_id: "r",
        client: "127.0.0.1:1".parse().unwrap(),
        method: "GET",
        path: "/",
        host: None,
        model,
        protocol: Some("v2"),
        operation: Some("ready"),
        identity: None,
        auth_method: None,
        issuer: None,
        decision: Outcome::Deny,
        authorized: false,
        response: "UNAUTHENTICATED",
        reason: None,
        status,
        upstream: None,
        upstream_ms: None,
        upstream_ttfb_ms: None,
        stream_ms: None,
        total_ms: Duration::from_micros(1),
        rule: Default::default(),
        wristband: None,
        tokens: None,
    }
}

/// Sample lines (not comments) of the exposition.
fn series(text: &str) -> usize {
    text.lines().filter(|l| !l.starts_with('#')).count()
}

#[test]
fn unknown_models_share_one_label_and_series_stay_bounded() {
    let m = Metrics::new();
    m.set_models(["iris"]);
    m.record(
        &decision(Some("iris"), 401),
        Some("credential_not_found"),
        None,
    );
    m.record(
        &decision(Some("nope-0"), 401),
        Some("credential_not_found"),
        Some("connect"),
    );
    m.record(&decision(None, 200), None, None);
    let before = series(&m.encode());
    let hostile = [
        "a\"b",
        "x\ny",
        "back\\slash",
        "\u{1F600}",
        &"L".repeat(10_000),
    ];
    for (i, name) in hostile
        .iter()
        .copied()
        .chain(["nope-1", "nope-2"])
        .enumerate()
    {
        m.record(
            &decision(Some(name), 401),
            Some("credential_not_found"),
            None,
        );
        m.record(
            &decision(Some(name), 1000 + i as u16),
            None,
            Some("connect"),
        );
    }
    let text = m.encode();
    assert_eq!(series(&text), before + 1, "{text}"); // + the status 0 series
    assert!(text.contains("modelgate_requests_total{model=\"(unknown)\",protocol=\"v2\",decision=\"deny\",status=\"401\"} 8"), "{text}");
    assert!(text.contains("modelgate_requests_total{model=\"(unknown)\",protocol=\"v2\",decision=\"deny\",status=\"0\"} 7"), "{text}");
    assert!(
        text.contains("modelgate_requests_total{model=\"iris\""),
        "{text}"
    );
    assert!(
        text.contains("modelgate_requests_total{model=\"\",protocol=\"v2\""),
        "{text}"
    );
    assert!(
        text.contains("modelgate_upstream_errors_total{model=\"(unknown)\",kind=\"connect\"} 8"),
        "{text}"
    );
    assert!(!text.contains("nope") && !text.contains("LLLL"), "{text}");
    // After a reload the new set applies: iris is unknown now, and its
    // series are gone.
    m.set_models(["other"]);
    m.record(&decision(Some("iris"), 401), None, None);
    let text = m.encode();
    assert!(text.contains("modelgate_requests_total{model=\"(unknown)\",protocol=\"v2\",decision=\"deny\",status=\"401\"} 9"));
    assert!(!text.contains("model=\"iris\""), "{text}");
}

#[test]
fn label_values_are_escaped() {
    let f: Family<ModelLabels, Counter> = Family::default();
    let mut r = Registry::default();
    r.register("t", "t", f.clone());
    f.get_or_create(&ModelLabels {
        model: LabelValue(Arc::from("a\"b\\c\nd")),
        protocol: "v2",
    })
    .inc();
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
    assert!(
        out.contains(r#"t_total{model="a\"b\\c\nd",protocol="v2"} 1"#),
        "{out}"
    );
}

#[test]
fn counts_and_encodes() {
    let m = Metrics::new();
    m.set_models(["iris"]);
    let d = Decision {
        ts: SystemTime::now(),
        request_id: "r",
        client: "127.0.0.1:1".parse().unwrap(),
        method: "POST",
        path: "/v2/models/iris/infer",
        host: None,
        model: Some("iris"),
        protocol: Some("v2"),
        operation: Some("infer"),
        identity: Some("alice"),
        auth_method: Some("api_key"),
        issuer: None,
        decision: Outcome::Deny,
        authorized: false,
        response: "UNAUTHENTICATED",
        reason: Some("credential not found"),
        status: 401,
        upstream: None,
        upstream_ms: None,
        upstream_ttfb_ms: None,
        stream_ms: None,
        total_ms: Duration::from_micros(120),
        rule: Default::default(),
        wristband: None,
        tokens: None,
    };
    m.record(&d, Some("credential_not_found"), None);
    m.keystore_reloaded(true, 3);
    let text = m.encode();
    assert!(text.contains("modelgate_requests_total{model=\"iris\",protocol=\"v2\",decision=\"deny\",status=\"401\"} 1"), "{text}");
    assert!(text.contains("modelgate_auth_failures_total{reason=\"credential_not_found\"} 1"));
    assert!(text.contains("modelgate_keystore_keys 3"));
    assert!(text.contains("modelgate_request_duration_seconds_bucket"));
}

#[test]
fn a_reload_drops_the_series_of_removed_models_and_keeps_the_others() {
    let m = Metrics::new();
    m.set_models(["iris", "wine"]);
    let mut ok = decision(Some("wine"), 200);
    ok.upstream_ms = Some(Duration::from_millis(3));
    for model in ["iris", "wine"] {
        let mut d = decision(Some(model), 200);
        d.upstream_ms = Some(Duration::from_millis(3));
        m.record(&d, None, None);
        m.record(&decision(Some(model), 502), None, Some("connect"));
    }
    m.record(&ok, None, None);
    m.record(&decision(None, 404), None, None);
    let text = m.encode();
    assert!(text.contains("model=\"iris\""), "{text}");
    assert!(m.tap.stats("iris", std::time::Instant::now()).requests > 0);

    m.set_models(["wine", "new"]);
    let text = m.encode();
    assert!(!text.contains("model=\"iris\""), "{text}");
    assert_eq!(m.tap.stats("iris", std::time::Instant::now()).requests, 0);
    // The others keep their counts (2 OK wine requests, one error).
    let wine_ok = "modelgate_requests_total{model=\"wine\",protocol=\"v2\",decision=\"deny\",status=\"200\"} 2";
    assert!(text.contains(wine_ok), "{text}");
    assert!(
        text.contains("modelgate_upstream_errors_total{model=\"wine\",kind=\"connect\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("modelgate_request_duration_seconds_count{model=\"wine\",protocol=\"v2\"} 3"),
        "{text}"
    );
    assert!(
        text.contains(
            "modelgate_upstream_duration_seconds_count{model=\"wine\",protocol=\"v2\"} 2"
        ),
        "{text}"
    );
    assert!(text.contains("modelgate_requests_total{model=\"\",protocol=\"v2\",decision=\"deny\",status=\"404\"} 1"), "{text}");
    // Still counted, through the cached handles, after the reload.
    m.record(&ok, None, None);
    assert!(m.encode().contains(&wine_ok.replace("} 2", "} 3")));
    // A removed model's name is now unknown; added back, it starts afresh.
    m.record(&decision(Some("iris"), 200), None, None);
    assert!(!m.encode().contains("model=\"iris\""));
    m.set_models(["iris", "wine"]);
    m.record(&decision(Some("iris"), 200), None, None);
    let text = m.encode();
    assert!(text.contains("modelgate_requests_total{model=\"iris\",protocol=\"v2\",decision=\"deny\",status=\"200\"} 1"), "{text}");
}

#[test]
fn admin_samples_follow_configured_models_through_the_cached_series() {
    let m = Metrics::new();
    m.set_models(["iris"]);
    for _ in 0..3 {
        m.record(&decision(Some("iris"), 200), None, None);
    }
    m.record(&decision(Some("nope"), 200), None, None);
    m.record(&decision(None, 200), None, None);
    let now = std::time::Instant::now();
    assert_eq!(m.tap.stats("iris", now).requests, 3);
    assert_eq!(m.tap.stats("nope", now).requests, 0);
    assert_eq!(m.tap.stats(UNKNOWN_MODEL, now).requests, 0);
    assert_eq!(m.tap.stats("", now).requests, 0);
    // Removed: its samples go; added again: counted afresh.
    m.set_models(["other"]);
    m.record(&decision(Some("iris"), 200), None, None);
    assert_eq!(m.tap.stats("iris", now).requests, 0);
    m.set_models(["iris"]);
    m.record(&decision(Some("iris"), 200), None, None);
    assert_eq!(m.tap.stats("iris", std::time::Instant::now()).requests, 1);
    // Every record reached the live view.
    let (recent, _) = m.tap.subscribe();
    assert_eq!(recent.len(), 7);
}
