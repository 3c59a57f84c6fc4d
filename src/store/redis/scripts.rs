//! The Lua scripts: each change is one atomic server-side step, and each one that could
//! make a cached session stale publishes its invalidation in that same step, so no instance
//! can miss a change that took effect. The changes' sources are public to the store, which
//! sends them whole (`EVAL`) when a durability wait follows them.
//!
//! Scripts read the customer id from a session's `{version}|{customer id}|` header and
//! build keys from it; that is allowed on a single Redis server, not on Redis Cluster (see
//! the store's docs). Sub-prefixes come from [`Keys`](super::keys::Keys) as arguments.

use redis::Script;

/// `load`: a session and its customer in one round trip.
///
/// KEYS: session. ARGV: customer prefix.
/// Returns nil, `{session}` (no readable header) or `{session, {v, del, data}}`.
const LOAD: &str = r"
local session = redis.call('GET', KEYS[1])
if not session then return false end
local customer_id = string.match(session, '^[^|]*|([^|]*)|')
if not customer_id then return {session} end
return {session, redis.call('HMGET', ARGV[1] .. customer_id, 'v', 'del', 'data')}
";

/// `create`: resolve the customer, insert the session if absent with server-side expiry,
/// and add it to the customer's index, whose expiry follows its longest-lived member.
///
/// KEYS: session. ARGV: customer prefix, external id prefix, index prefix, `id` | `ext`,
/// the customer id or external id, expiry (Unix ms), format version, session body, token
/// hash (hex). Returns `{'unknown'}`, `{'conflict'}` or `{'ok', {v, del, data}}`.
pub(super) const CREATE: &str = r"
local customer_id = ARGV[5]
if ARGV[4] == 'ext' then
  customer_id = redis.call('GET', ARGV[2] .. ARGV[5])
  if not customer_id then return {'unknown'} end
end
local customer = redis.call('HMGET', ARGV[1] .. customer_id, 'v', 'del', 'data')
if not customer[3] or customer[2] then return {'unknown'} end
local value = ARGV[7] .. '|' .. customer_id .. '|' .. ARGV[8]
if not redis.call('SET', KEYS[1], value, 'NX', 'PXAT', ARGV[6]) then
  return {'conflict'}
end
local expires_ms = tonumber(ARGV[6])
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
-- An already expired session is gone at once; an expiry in the past would delete the index.
if expires_ms > now_ms then
  local index = ARGV[3] .. customer_id
  redis.call('SADD', index, ARGV[9])
  local ttl = redis.call('PTTL', index)
  if ttl < 0 or now_ms + ttl < expires_ms then
    redis.call('PEXPIREAT', index, ARGV[6])
  end
end
return {'ok', customer}
";

/// `revoke`: delete one session, drop it from its customer's index, publish.
///
/// KEYS: session. ARGV: index prefix, channel, message if it existed (`r:`), token hash
/// (hex), message otherwise (`s:`). Returns 1 if the session existed.
pub(super) const REVOKE: &str = r"
local session = redis.call('GET', KEYS[1])
if session then
  redis.call('DEL', KEYS[1])
  local customer_id = string.match(session, '^[^|]*|([^|]*)|')
  if customer_id then redis.call('SREM', ARGV[1] .. customer_id, ARGV[4]) end
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
-- Published even if nothing was deleted: the key may have been removed by hand.
redis.call('PUBLISH', ARGV[2], ARGV[5])
return 0
";

/// `revoke_all`: delete every indexed session that still belongs to the customer, the
/// index itself, publish `{message prefix}{server time in microseconds}`.
///
/// KEYS: index. ARGV: session prefix, channel, message prefix (`a:<id>:`), customer id.
/// Returns the count.
pub(super) const REVOKE_ALL: &str = r"
local count = 0
for _, hash in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[1] .. hash
  local session = redis.call('GET', key)
  if session and string.match(session, '^[^|]*|([^|]*)|') == ARGV[4] then
    count = count + redis.call('DEL', key)
  end
end
redis.call('DEL', KEYS[1])
local time = redis.call('TIME')
redis.call('PUBLISH', ARGV[2], ARGV[3] .. time[1] .. string.format('%06d', tonumber(time[2])))
return count
";

/// `upsert_customer`: replace the customer's hash, move its external id, publish.
///
/// KEYS: customer. ARGV: external id prefix, channel, message, customer id, format version,
/// data, `1` if it has an external id, the external id, deletion time (or empty).
pub(super) const UPSERT_CUSTOMER: &str = r"
local old_ext = redis.call('HGET', KEYS[1], 'ext')
local has_ext = ARGV[7] == '1'
if old_ext and (not has_ext or old_ext ~= ARGV[8]) then
  -- Only if it still points here: another customer may have taken the external id.
  local old_key = ARGV[1] .. old_ext
  if redis.call('GET', old_key) == ARGV[4] then redis.call('DEL', old_key) end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[5], 'data', ARGV[6])
if has_ext then
  redis.call('HSET', KEYS[1], 'ext', ARGV[8])
  redis.call('SET', ARGV[1] .. ARGV[8], ARGV[4])
end
if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'del', ARGV[9]) end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
";

/// `delete_customer`: mark the customer deleted unless it already is (the first deletion
/// time stands), publish.
///
/// KEYS: customer. ARGV: channel, message if it existed (`a:`), deletion time, message
/// otherwise (`c:`). Returns 1 if it existed.
pub(super) const DELETE_CUSTOMER: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSETNX', KEYS[1], 'del', ARGV[3])
  redis.call('PUBLISH', ARGV[1], ARGV[2])
  return 1
end
redis.call('PUBLISH', ARGV[1], ARGV[4])
return 0
";

/// `customer(ExternalId)`: follow the external id to the customer in one round trip.
///
/// KEYS: external id. ARGV: customer prefix. Returns nil or `{v, del, data}`.
const CUSTOMER_BY_EXTERNAL_ID: &str = r"
local customer_id = redis.call('GET', KEYS[1])
if not customer_id then return false end
return redis.call('HMGET', ARGV[1] .. customer_id, 'v', 'del', 'data')
";

/// Every script, hashed once per store. `EVALSHA` first; on `NOSCRIPT` (a restarted or
/// fresh server) the driver loads the script and retries.
pub(super) struct Scripts {
    pub(super) load: Script,
    pub(super) create: Script,
    pub(super) revoke: Script,
    pub(super) revoke_all: Script,
    pub(super) upsert_customer: Script,
    pub(super) delete_customer: Script,
    pub(super) customer_by_external_id: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            load: Script::new(LOAD),
            create: Script::new(CREATE),
            revoke: Script::new(REVOKE),
            revoke_all: Script::new(REVOKE_ALL),
            upsert_customer: Script::new(UPSERT_CUSTOMER),
            delete_customer: Script::new(DELETE_CUSTOMER),
            customer_by_external_id: Script::new(CUSTOMER_BY_EXTERNAL_ID),
        }
    }
}
