//! The Lua scripts that make each store call one atomic round trip, the key
//! layout, and the encoding of arguments and replies.
//!
//! Lua numbers are doubles, so counters, limits and amounts are clamped to
//! 2^53 − 1 (exact integers); a limit above that is effectively unlimited.

use crate::store::{Adjustment, Charge, CounterId, Reservation, StoreError, Window};

/// Largest integer a Lua number holds exactly.
pub const MAX_EXACT: u64 = (1 << 53) - 1;

/// All-or-nothing reservation. `KEYS[i]` is counter i; `ARGV[3i-2..3i]` are
/// its limit, amount and TTL. Reads every counter (a counter named twice
/// accumulates), adds nothing if any would exceed its limit, else INCRBY +
/// EXPIRE each. Returns `{refused (0 = granted, else 1-based index),
/// remaining_1, …, remaining_n}`.
pub const RESERVE: &str = r"
local n = #KEYS
local cur = redis.call('MGET', unpack(KEYS))
local after = {}
local refused = 0
for i = 1, n do
  local k = KEYS[i]
  local v = (after[k] or tonumber(cur[i]) or 0) + tonumber(ARGV[3*i-1])
  if refused == 0 and v > tonumber(ARGV[3*i-2]) then refused = i end
  after[k] = v
end
if refused == 0 then
  for i = 1, n do
    local ttl = tonumber(ARGV[3*i])
    if tonumber(ARGV[3*i-1]) > 0 then
      redis.call('INCRBY', KEYS[i], ARGV[3*i-1])
      if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl) end
    end
  end
end
local out = {refused}
for i = 1, n do
  local v
  if refused == 0 then v = after[KEYS[i]] else v = tonumber(cur[i]) or 0 end
  local r = tonumber(ARGV[3*i-2]) - v
  if r < 0 then r = 0 end
  out[i+1] = r
end
return out
";

/// Signed adjustments. `KEYS[i]` is counter i; `ARGV[2i-1]`, `ARGV[2i]` are
/// its delta and TTL. A positive delta is INCRBY + EXPIRE; a negative one
/// takes back at most the counter's value (never below 0) and refreshes the
/// TTL of a counter that still exists. Returns 0.
pub const ADJUST: &str = r"
for i = 1, #KEYS do
  local k = KEYS[i]
  local d = tonumber(ARGV[2*i-1])
  local ttl = tonumber(ARGV[2*i])
  if d > 0 then
    redis.call('INCRBY', k, ARGV[2*i-1])
    if ttl > 0 then redis.call('EXPIRE', k, ttl) end
  elseif d < 0 then
    local c = tonumber(redis.call('GET', k)) or 0
    local take = -d
    if take > c then take = c end
    if take > 0 then
      redis.call('DECRBY', k, take)
      if ttl > 0 then redis.call('EXPIRE', k, ttl) end
    end
  end
end
return 0
";

/// The Redis key of a counter: `modelgate:{<prefix>}:<name>:<window>:<start>`.
/// The hash tag `{<prefix>}` puts every counter of a deployment in one
/// cluster slot, so a script may touch any of them.
pub fn key(prefix: &str, id: &CounterId) -> String {
    let window = match id.window {
        Window::Fixed { secs } => format!("{secs}s"),
        Window::Month => "month".to_string(),
        Window::Total => "total".to_string(),
        Window::Lease => "lease".to_string(),
    };
    format!("modelgate:{{{prefix}}}:{}:{window}:{}", id.name, id.start)
}

/// `(keys, argv)` of [`RESERVE`].
pub fn reserve_args(prefix: &str, charges: &[Charge]) -> (Vec<String>, Vec<u64>) {
    let keys = charges.iter().map(|c| key(prefix, &c.id)).collect();
    let argv = charges
        .iter()
        .flat_map(|c| {
            [
                c.limit.min(MAX_EXACT),
                c.amount.min(MAX_EXACT),
                c.ttl_secs.min(MAX_EXACT),
            ]
        })
        .collect();
    (keys, argv)
}

/// `(keys, argv)` of [`ADJUST`].
pub fn adjust_args(prefix: &str, adjustments: &[Adjustment]) -> (Vec<String>, Vec<i64>) {
    let max = MAX_EXACT as i64;
    let keys = adjustments.iter().map(|a| key(prefix, &a.id)).collect();
    let argv = adjustments
        .iter()
        .flat_map(|a| {
            let ttl = a.ttl_secs.min(MAX_EXACT) as i64;
            [a.delta.clamp(-max, max), ttl]
        })
        .collect();
    (keys, argv)
}

/// Decodes [`RESERVE`]'s reply for `n` charges.
pub fn reservation(reply: &[i64], n: usize) -> Result<Reservation, StoreError> {
    let malformed = || StoreError("redis: malformed reserve reply".to_string());
    let (&refused, rest) = reply.split_first().ok_or_else(malformed)?;
    if rest.len() != n {
        return Err(malformed());
    }
    let remaining = rest
        .iter()
        .map(|&r| u64::try_from(r).unwrap_or(0))
        .collect();
    match usize::try_from(refused) {
        Ok(0) => Ok(Reservation::Granted { remaining }),
        Ok(i) if i <= n => Ok(Reservation::Refused {
            first: i - 1,
            remaining,
        }),
        _ => Err(malformed()),
    }
}

/// Decodes an MGET reply: a missing or non-positive counter reads 0.
pub fn values(reply: &[Option<i64>]) -> Vec<u64> {
    reply
        .iter()
        .map(|v| v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
        .collect()
}

#[cfg(test)]
mod tests {
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
        assert_ne!(
            key("p", &id("b", Window::Month, 5)),
            key("p", &id("b", Window::Total, 5))
        );
    }

    #[test]
    fn arguments_are_clamped_to_exact_lua_integers() {
        let charge = Charge {
            id: id("a", Window::Total, 0),
            limit: u64::MAX,
            amount: 7,
            ttl_secs: 60,
        };
        let (keys, argv) = reserve_args("p", &[charge]);
        assert_eq!(keys.len(), 1);
        assert_eq!(argv, [MAX_EXACT, 7, 60]);
        let adj = Adjustment {
            id: id("a", Window::Total, 0),
            delta: i64::MIN,
            ttl_secs: 5,
        };
        let (_, argv) = adjust_args("p", &[adj]);
        assert_eq!(argv, [-(MAX_EXACT as i64), 5]);
    }

    #[test]
    fn replies_decode_or_fail() {
        assert_eq!(
            reservation(&[0, 5, 0], 2).unwrap(),
            Reservation::Granted {
                remaining: vec![5, 0]
            }
        );
        assert_eq!(
            reservation(&[2, 5, 1], 2).unwrap(),
            Reservation::Refused {
                first: 1,
                remaining: vec![5, 1]
            }
        );
        assert!(reservation(&[3, 5, 1], 2).is_err());
        assert!(reservation(&[0, 5], 2).is_err());
        assert!(reservation(&[], 0).is_err());
        assert_eq!(values(&[None, Some(4), Some(-1)]), [0, 4, 0]);
    }
}
