//! The Lua scripts of the Cluster layout. Each touches the keys of one slot only, all
//! declared in `KEYS` (Cluster refuses anything else), and publishes nothing: a shard
//! channel a script may publish on must hash to the script's slot, and the feed's
//! channels are a fixed few (see [`super::feed`]). The caller publishes right after.

use redis::{Cmd, RedisResult, Value};

/// `load`, second step: a customer, and its generation.
///
/// KEYS: customer, generation. Returns `{{v, del, data}, generation or nil}`.
const LOAD_CUSTOMER: &str = r"
return {redis.call('HMGET', KEYS[1], 'v', 'del', 'data'), redis.call('GET', KEYS[2])}
";

/// `create`, first step: check the customer, read its generation, and index the session,
/// the index's expiry following its longest-lived member (as on a single server).
///
/// KEYS: customer, index, generation. ARGV: expiry (Unix ms), token hash (hex).
/// Returns `{'unknown'}` or `{'ok', {v, del, data}, generation or nil}`.
const CREATE_INDEX: &str = r"
local customer = redis.call('HMGET', KEYS[1], 'v', 'del', 'data')
if not customer[3] or customer[2] then return {'unknown'} end
local generation = redis.call('GET', KEYS[3])
local expires_ms = tonumber(ARGV[1])
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if expires_ms > now_ms then
  redis.call('SADD', KEYS[2], ARGV[2])
  local ttl = redis.call('PTTL', KEYS[2])
  if ttl < 0 or now_ms + ttl < expires_ms then
    redis.call('PEXPIREAT', KEYS[2], ARGV[1])
  end
end
return {'ok', customer, generation}
";

/// `revoke_all`: a new generation (every session created before is revoked from now on,
/// wherever it is), and the index handed back for cleanup.
///
/// KEYS: index, generation. Returns the indexed token hashes.
const REVOKE_ALL: &str = r"
redis.call('INCR', KEYS[2])
local hashes = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
return hashes
";

/// `revoke_all`, cleanup: delete a session if it still belongs to the customer.
///
/// KEYS: session. ARGV: customer id. Returns 1 if deleted.
const DELETE_IF_OWNED: &str = r"
local session = redis.call('GET', KEYS[1])
if session and string.match(session, '^[^|]*|([^|]*)|') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// `upsert_customer`, first step: replace the customer's hash.
///
/// KEYS: customer. ARGV: format version, data, `1` if it has an external id, the
/// external id, deletion time (or empty). Returns the previous external id, or nil.
const UPSERT_CUSTOMER: &str = r"
local old_ext = redis.call('HGET', KEYS[1], 'ext')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'data', ARGV[2])
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'ext', ARGV[4]) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'del', ARGV[5]) end
return old_ext
";

/// `upsert_customer`, second step: drop an external id the customer gave up, if it
/// still points to the customer (another may have taken it).
///
/// KEYS: external id. ARGV: customer id.
const DROP_EXTERNAL_ID: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
";

/// `delete_customer`: mark the customer deleted unless it already is.
///
/// KEYS: customer. ARGV: deletion time. Returns 1 if it existed.
const DELETE_CUSTOMER: &str = r"
local exists = redis.call('EXISTS', KEYS[1])
if exists == 1 then redis.call('HSETNX', KEYS[1], 'del', ARGV[1]) end
return exists
";

/// A script sent by hash, and whole when the node does not know it (`NOSCRIPT`: a
/// restarted node). Not the driver's `Script`, whose fallback loads the script on every
/// node: one node down would fail every call.
pub(in crate::store::redis) struct ClusterScript {
    code: &'static str,
    hash: String,
}

impl ClusterScript {
    fn new(code: &'static str) -> Self {
        Self {
            code,
            hash: redis::Script::new(code).get_hash().to_owned(),
        }
    }

    /// `EVAL` with the whole script: for pipelines (a `WAIT` after it).
    pub(super) fn eval(&self, keys: &[&str], args: &[&str]) -> Cmd {
        Self::command("EVAL", self.code, keys, args)
    }

    fn command(name: &str, body: &str, keys: &[&str], args: &[&str]) -> Cmd {
        let mut cmd = redis::cmd(name);
        cmd.arg(body).arg(keys.len()).arg(keys).arg(args);
        cmd
    }

    /// Run it: `EVALSHA`, then `EVAL` after `NOSCRIPT`.
    pub(super) async fn invoke(
        &self,
        connection: &mut impl redis::aio::ConnectionLike,
        keys: &[&str],
        args: &[&str],
    ) -> RedisResult<Value> {
        let by_hash = Self::command("EVALSHA", &self.hash, keys, args);
        match by_hash.query_async(connection).await {
            Err(error) if error.code() == Some("NOSCRIPT") => {
                self.eval(keys, args).query_async(connection).await
            }
            result => result,
        }
    }
}

/// Every Cluster script, hashed once per store.
pub(in crate::store::redis) struct ClusterScripts {
    pub(super) load_customer: ClusterScript,
    pub(super) create_index: ClusterScript,
    pub(super) revoke_all: ClusterScript,
    pub(super) delete_if_owned: ClusterScript,
    pub(super) upsert_customer: ClusterScript,
    pub(super) drop_external_id: ClusterScript,
    pub(super) delete_customer: ClusterScript,
}

impl ClusterScripts {
    pub(in crate::store::redis) fn new() -> Self {
        Self {
            load_customer: ClusterScript::new(LOAD_CUSTOMER),
            create_index: ClusterScript::new(CREATE_INDEX),
            revoke_all: ClusterScript::new(REVOKE_ALL),
            delete_if_owned: ClusterScript::new(DELETE_IF_OWNED),
            upsert_customer: ClusterScript::new(UPSERT_CUSTOMER),
            drop_external_id: ClusterScript::new(DROP_EXTERNAL_ID),
            delete_customer: ClusterScript::new(DELETE_CUSTOMER),
        }
    }
}
