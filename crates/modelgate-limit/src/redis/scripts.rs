//! The one Lua script every store call goes through, the key layout, and the
//! encoding of a batch of operations and of the reply.
//!
//! A batch is a sequence of operations (reserve, adjust, read) run in order
//! in one atomic script call: each reservation is all-or-nothing on its own,
//! and sees the effect of those before it. The time (for GCRA) is read once
//! per batch: Redis's `TIME`, so every replica shares one clock, unless the
//! caller passes one (tests).
//!
//! Lua numbers are doubles, so counters, limits and amounts are clamped to
//! 2^53 − 1 (exact integers); a limit above that is effectively unlimited.
//! GCRA arrival times are unix microseconds (about 2^51 today).

use ::redis::ScriptInvocation;

use crate::store::{Adjustment, Charge, CounterId, Reservation, StoreError, Window};

/// Largest integer a Lua number holds exactly.
pub const MAX_EXACT: u64 = (1 << 53) - 1;

/// `ARGV[1]` = now in µs (0: use `TIME`); then per operation its code (`r`
/// reserve, `a` adjust, `g` read), its key count `n`, and per key: reserve
/// `limit, amount, ttl_secs, interval_us` (0 = a count, else GCRA); adjust
/// `delta, ttl_secs`; read `gcra` (1 or 0). Keys are consumed in order.
/// Reply, per operation: reserve `refused (0 or 1-based index),
/// remaining × n, reset_ms × n`; adjust `0`; read `value × n` (a GCRA
/// counter reads as its µs ahead of now).
pub const BATCH: &str = r"
local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function num(v) return tonumber(v) or 0 end
local out = {}
local p, kp = 2, 1
while p <= #ARGV do
  local op, n = ARGV[p], tonumber(ARGV[p+1])
  p = p + 2
  if op == 'r' then
    local stored, after, refused, wait = {}, {}, 0, 0
    for i = 1, n do
      local k, a = KEYS[kp+i-1], p + 4*(i-1)
      local limit, amount, iv = tonumber(ARGV[a]), tonumber(ARGV[a+1]), tonumber(ARGV[a+3])
      if stored[k] == nil then stored[k] = num(redis.call('GET', k)) end
      local before = after[k] or stored[k]
      local v, over, w
      if iv > 0 then
        if before < now then before = now end
        v = before + amount * iv
        w = v - now - limit * iv
        over = w > 0
      else
        v = before + amount
        over = v > limit
      end
      if over and refused == 0 then refused, wait = i, w end
      after[k] = v
    end
    if refused == 0 then
      for i = 1, n do
        local k, a = KEYS[kp+i-1], p + 4*(i-1)
        local amount, ttl, iv = ARGV[a+1], tonumber(ARGV[a+2]), tonumber(ARGV[a+3])
        if iv > 0 then
          local ms = math.ceil((after[k] - now) / 1000) + 1
          redis.call('SET', k, string.format('%.0f', after[k]), 'PX', ms)
        elseif tonumber(amount) > 0 then
          redis.call('INCRBY', k, amount)
          if ttl > 0 then redis.call('EXPIRE', k, ttl) end
        end
      end
    end
    out[#out+1] = refused
    local base = #out
    for i = 1, n do
      local k, a = KEYS[kp+i-1], p + 4*(i-1)
      local limit, iv = tonumber(ARGV[a]), tonumber(ARGV[a+3])
      local v
      if refused == 0 then v = after[k] else v = stored[k] end
      local r, reset = 0, 0
      if iv > 0 then
        local ahead = v - now
        if ahead < 0 then ahead = 0 end
        r = math.floor((limit * iv - ahead) / iv)
        if i == refused then reset = wait else reset = ahead end
        reset = math.ceil(reset / 1000)
      else
        r = limit - v
      end
      if r < 0 then r = 0 end
      out[base+i] = r
      out[base+n+i] = reset
    end
    p = p + 4*n
  elseif op == 'a' then
    for i = 1, n do
      local k, a = KEYS[kp+i-1], p + 2*(i-1)
      local d, ttl = tonumber(ARGV[a]), tonumber(ARGV[a+1])
      if d > 0 then
        redis.call('INCRBY', k, ARGV[a])
        if ttl > 0 then redis.call('EXPIRE', k, ttl) end
      elseif d < 0 then
        local c = num(redis.call('GET', k))
        local take = -d
        if take > c then take = c end
        if take > 0 then
          redis.call('DECRBY', k, take)
          if ttl > 0 then redis.call('EXPIRE', k, ttl) end
        end
      end
    end
    out[#out+1] = 0
    p = p + 2*n
  elseif op == 'g' then
    for i = 1, n do
      local v = num(redis.call('GET', KEYS[kp+i-1]))
      if ARGV[p+i-1] == '1' then v = v - now end
      if v < 0 then v = 0 end
      out[#out+1] = v
    end
    p = p + n
  else
    return redis.error_reply('modelgate: unknown batch operation')
  end
  kp = kp + n
end
return out
";

/// One store call, as queued for the next batch.
#[derive(Debug, Clone)]
pub enum Op {
    Reserve(Vec<Charge>),
    /// GCRA counters already left out (they are never adjusted).
    Adjust(Vec<Adjustment>),
    Read(Vec<CounterId>),
}

/// The decoded answer to one [`Op`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Reserved(Reservation),
    Adjusted,
    Values(Vec<u64>),
}

/// The Redis key of a counter: `modelgate:{<prefix>}:<name>:<window>:<start>`.
/// The hash tag `{<prefix>}` puts every counter of a deployment in one
/// cluster slot, so a script may touch any of them.
pub fn key(prefix: &str, id: &CounterId) -> String {
    let window = match id.window {
        Window::Fixed { secs } => format!("{secs}s"),
        Window::Month => "month".to_string(),
        Window::Total => "total".to_string(),
        Window::Lease => "lease".to_string(),
        Window::Gcra { period_ms } => format!("gcra{period_ms}ms"),
    };
    format!("modelgate:{{{prefix}}}:{}:{window}:{}", id.name, id.start)
}

/// The counter name in a key made by [`key`] with `prefix`.
pub fn name_of<'k>(prefix: &str, key: &'k str) -> Option<&'k str> {
    let rest = key.strip_prefix("modelgate:{")?.strip_prefix(prefix)?;
    let rest = rest.strip_prefix("}:")?;
    let mut parts = rest.rsplitn(3, ':');
    let (_start, _window) = (parts.next()?, parts.next()?);
    parts.next()
}

/// Adds `ops` to `inv` (after `now_us`, 0 for Redis's clock).
pub fn encode(inv: &mut ScriptInvocation<'_>, prefix: &str, now_us: u64, ops: &[&Op]) {
    let (keys, args) = arguments(prefix, now_us, ops);
    inv.key(keys).arg(args);
}

/// `(KEYS, ARGV)` of [`BATCH`] for `ops`.
pub fn arguments(prefix: &str, now_us: u64, ops: &[&Op]) -> (Vec<String>, Vec<String>) {
    let max = MAX_EXACT as i64;
    let mut keys = Vec::new();
    let mut args = vec![now_us.min(MAX_EXACT).to_string()];
    for op in ops {
        match op {
            Op::Reserve(charges) => {
                args.extend(["r".to_string(), charges.len().to_string()]);
                for c in charges {
                    let interval = c.id.window.gcra_interval_us(c.limit).unwrap_or(0);
                    keys.push(key(prefix, &c.id));
                    args.extend(
                        [c.limit, c.amount, c.ttl_secs, interval]
                            .map(|v| v.min(MAX_EXACT).to_string()),
                    );
                }
            }
            Op::Adjust(adjustments) => {
                args.extend(["a".to_string(), adjustments.len().to_string()]);
                for a in adjustments {
                    keys.push(key(prefix, &a.id));
                    args.push(a.delta.clamp(-max, max).to_string());
                    args.push(a.ttl_secs.min(MAX_EXACT).to_string());
                }
            }
            Op::Read(ids) => {
                args.extend(["g".to_string(), ids.len().to_string()]);
                for id in ids {
                    keys.push(key(prefix, id));
                    let gcra = matches!(id.window, Window::Gcra { .. });
                    args.push(if gcra { "1" } else { "0" }.to_string());
                }
            }
        }
    }
    (keys, args)
}

/// Splits a batch reply into one answer per op.
pub fn decode(reply: &[i64], ops: &[&Op]) -> Result<Vec<Answer>, StoreError> {
    let malformed = || StoreError("redis: malformed batch reply".to_string());
    let mut rest = reply;
    let mut take = |n: usize| -> Result<&[i64], StoreError> {
        if rest.len() < n {
            return Err(malformed());
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        out.push(match op {
            Op::Reserve(c) => Answer::Reserved(reservation(take(1 + 2 * c.len())?, c.len())?),
            Op::Adjust(_) => {
                take(1)?;
                Answer::Adjusted
            }
            Op::Read(ids) => Answer::Values(values(take(ids.len())?)),
        });
    }
    if !rest.is_empty() {
        return Err(malformed());
    }
    Ok(out)
}

/// Decodes one reservation's part of the reply for `n` charges.
pub fn reservation(reply: &[i64], n: usize) -> Result<Reservation, StoreError> {
    let malformed = || StoreError("redis: malformed reserve reply".to_string());
    let (&refused, rest) = reply.split_first().ok_or_else(malformed)?;
    if rest.len() != 2 * n {
        return Err(malformed());
    }
    let (remaining, reset_ms) = rest.split_at(n);
    let (remaining, reset_ms) = (values(remaining), values(reset_ms));
    match usize::try_from(refused) {
        Ok(0) => Ok(Reservation::Granted {
            remaining,
            reset_ms,
        }),
        Ok(i) if i <= n => Ok(Reservation::Refused {
            first: i - 1,
            remaining,
            reset_ms,
        }),
        _ => Err(malformed()),
    }
}

/// Negative values read as 0.
pub fn values(reply: &[i64]) -> Vec<u64> {
    reply
        .iter()
        .map(|&v| u64::try_from(v).unwrap_or(0))
        .collect()
}

#[cfg(test)]
mod tests;
