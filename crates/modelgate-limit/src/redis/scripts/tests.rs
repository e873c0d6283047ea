use super::*;

fn id(name: &str, window: Window, start: u64) -> CounterId {
    CounterId {
        name: name.to_string(),
        window,
        start,
    }
}

#[test]
fn keys_name_prefix_window_and_start() {
    let k = key("prod", &id("tpm:key:k1", Window::Fixed { secs: 60 }, 120));
    assert_eq!(k, "modelgate:{prod}:tpm:key:k1:60s:120");
    assert_eq!(
        key("p", &id("c", Window::Lease, 0)),
        "modelgate:{p}:c:lease:0"
    );
    assert_eq!(
        key("p", &id("rpm:key:a", Window::Gcra { period_ms: 60_000 }, 0)),
        "modelgate:{p}:rpm:key:a:gcra60000ms:0"
    );
    assert_ne!(
        key("p", &id("b", Window::Month, 5)),
        key("p", &id("b", Window::Total, 5))
    );
}

#[test]
fn names_come_back_out_of_keys() {
    let k = key(
        "prod",
        &id("tpd:group:a:b", Window::Fixed { secs: 60 }, 120),
    );
    assert_eq!(name_of("prod", &k), Some("tpd:group:a:b"));
    assert_eq!(name_of("other", &k), None);
    assert_eq!(name_of("prod", "modelgate:{prod}:x"), None);
}

#[test]
fn arguments_are_clamped_to_exact_lua_integers() {
    let charge = Charge {
        id: id("a", Window::Total, 0),
        limit: u64::MAX,
        amount: 7,
        ttl_secs: 60,
    };
    let adj = Adjustment {
        id: id("a", Window::Total, 0),
        delta: i64::MIN,
        ttl_secs: 5,
    };
    let rate = Charge {
        id: id("r", Window::Gcra { period_ms: 60_000 }, 0),
        limit: 10,
        amount: 1,
        ttl_secs: 0,
    };
    let read = Op::Read(vec![rate.id.clone()]);
    let ops = [Op::Reserve(vec![charge, rate]), Op::Adjust(vec![adj]), read];
    let (keys, args) = arguments("p", 5, &ops.iter().collect::<Vec<_>>());
    assert_eq!(keys.len(), 4);
    let max = MAX_EXACT.to_string();
    let min = format!("-{MAX_EXACT}");
    let want = [
        "5", "r", "2", &max, "7", "60", "0", "10", "1", "0", "6000000", "a", "1", &min, "5", "g",
        "1", "1",
    ];
    assert_eq!(args, want);
}

#[test]
fn replies_decode_or_fail() {
    let c = |n: &str| Charge {
        id: id(n, Window::Total, 0),
        limit: 9,
        amount: 1,
        ttl_secs: 1,
    };
    let two = Op::Reserve(vec![c("a"), c("b")]);
    let read = Op::Read(vec![id("a", Window::Total, 0)]);
    let adj = Op::Adjust(vec![]);
    let ops = [&two, &adj, &read];
    let got = decode(&[2, 5, 1, 0, 700, 0, 4], &ops).unwrap();
    assert_eq!(
        got,
        [
            Answer::Reserved(Reservation::Refused {
                first: 1,
                remaining: vec![5, 1],
                reset_ms: vec![0, 700],
            }),
            Answer::Adjusted,
            Answer::Values(vec![4]),
        ]
    );
    assert!(decode(&[2, 5, 1, 0, 700, 0], &ops).is_err(), "short");
    assert!(decode(&[2, 5, 1, 0, 700, 0, 4, 4], &ops).is_err(), "long");
    assert!(reservation(&[3, 5, 1, 0, 0], 2).is_err());
    assert!(reservation(&[0, 5, 0], 2).is_err());
    assert!(reservation(&[], 0).is_err());
    assert_eq!(values(&[0, 4, -1]), [0, 4, 0]);
}
