//! Shared by the Redis store tests: a real `redis-server` on a free port,
//! store configs, counter ids and charges.

#![allow(dead_code, clippy::expect_used, clippy::panic)] // test helpers

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use modelgate_config::redis_store::{RawRedisStore, RedisStoreConfig, parse};
use modelgate_limit::redis::{Guarded, RedisStore, connect};
use modelgate_limit::store::{Charge, CounterId, Window};

const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// A `redis-server` on a free 127.0.0.1 port, without persistence, stopped
/// by PID when dropped.
pub struct RedisServer {
    pub port: u16,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start(extra: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut s = Self {
            port,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        s.restart();
        s
    }

    /// Starts the server (again) on the same port and waits until it accepts.
    pub fn restart(&mut self) {
        assert!(
            std::path::Path::new(REDIS_SERVER).exists(),
            "{REDIS_SERVER} is missing: install Debian's redis-server (scripts/install-deps.sh)"
        );
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn config(url: &str, mode: &str, timeout: &str, prefix: &str) -> RedisStoreConfig {
    let raw = RawRedisStore {
        url: url.to_string(),
        failure_mode: Some(mode.to_string()),
        timeout: Some(timeout.to_string()),
        prefix: Some(prefix.to_string()),
    };
    parse(raw, "limits.store.redis").expect("valid config")
}

pub fn store(url: &str, mode: &str, timeout: &str, prefix: &str) -> Guarded<RedisStore> {
    connect(&config(url, mode, timeout, prefix)).expect("store")
}

pub fn id(name: &str, window: Window, start: u64) -> CounterId {
    CounterId {
        name: name.to_string(),
        window,
        start,
    }
}

pub fn charge(id: &CounterId, limit: u64, amount: u64) -> Charge {
    Charge {
        id: id.clone(),
        limit,
        amount,
        ttl_secs: 120,
    }
}
