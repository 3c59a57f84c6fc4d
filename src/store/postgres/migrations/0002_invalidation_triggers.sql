-- Every change that can end or alter a cached session is announced on the channel
-- 'customer_session_feed:<schema>', from inside the changing transaction: the message is
-- delivered on commit, and never for a change that rolled back. Triggers rather than the
-- store's own statements, so changes made with plain SQL by other programs are announced too.
--
-- Messages: 's:<64 hex>' one session (by token hash), 'c:<uuid>' one customer, '*' all.
-- A listener treats any other message as '*'.

CREATE FUNCTION notify_session_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    channel text := 'customer_session_feed:' || TG_TABLE_SCHEMA;
BEGIN
    PERFORM pg_catalog.pg_notify(channel, 's:' || OLD.token);
    IF TG_OP = 'UPDATE' AND NEW.token IS DISTINCT FROM OLD.token THEN
        PERFORM pg_catalog.pg_notify(channel, 's:' || NEW.token);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION notify_customer_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('customer_session_feed:' || TG_TABLE_SCHEMA, 'c:' || OLD.id::text);
    RETURN NULL;
END
$$;

CREATE FUNCTION notify_everything_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('customer_session_feed:' || TG_TABLE_SCHEMA, '*');
    RETURN NULL;
END
$$;

-- Revocations (soft or hard), edits. Rows that were already dead when deleted (soft-deleted
-- or expired, e.g. by the expiry sweep) cannot be in any cache: no message for them.
CREATE TRIGGER customer_sessions_notify_update
    AFTER UPDATE ON customer_sessions FOR EACH ROW
    WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION notify_session_change();
CREATE TRIGGER customer_sessions_notify_delete
    AFTER DELETE ON customer_sessions FOR EACH ROW
    WHEN (OLD.deleted_at IS NULL AND OLD.expires_at > now())
    EXECUTE FUNCTION notify_session_change();

-- Edits and soft deletes (an UPDATE), hard deletes. An upsert that changes nothing is silent.
CREATE TRIGGER customers_notify_update
    AFTER UPDATE ON customers FOR EACH ROW
    WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION notify_customer_change();
CREATE TRIGGER customers_notify_delete
    AFTER DELETE ON customers FOR EACH ROW
    EXECUTE FUNCTION notify_customer_change();

CREATE TRIGGER customer_sessions_notify_truncate
    AFTER TRUNCATE ON customer_sessions FOR EACH STATEMENT
    EXECUTE FUNCTION notify_everything_changed();
CREATE TRIGGER customers_notify_truncate
    AFTER TRUNCATE ON customers FOR EACH STATEMENT
    EXECUTE FUNCTION notify_everything_changed();
