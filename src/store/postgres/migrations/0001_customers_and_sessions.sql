-- Customers and their sessions, after Polar's `customers` and `customer_sessions` tables.
-- Runs with `search_path` set to the store's schema, so names are unqualified.

CREATE TABLE customers (
    id uuid PRIMARY KEY,
    created_at timestamptz NOT NULL,
    modified_at timestamptz,
    -- Polar's `MetadataOutputType`: {key: string | integer | number | boolean}.
    metadata jsonb NOT NULL DEFAULT '{}',
    external_id text,
    email text,
    email_verified boolean NOT NULL DEFAULT false,
    type text NOT NULL DEFAULT 'individual' CHECK (type IN ('individual', 'team')),
    name text,
    billing_name text,
    -- Polar's `Address` object.
    billing_address jsonb,
    -- Polar's `[value, format]` pair.
    tax_id jsonb,
    locale text,
    organization_id uuid NOT NULL,
    default_payment_method_id uuid,
    -- Soft delete: a deleted customer's sessions stop loading.
    deleted_at timestamptz,
    first_user_event_at timestamptz,
    avatar_url text
);

-- `CustomerRef::ExternalId` names one customer: external ids are unique among the
-- customers that are not deleted, and looked up with or without deleted ones.
CREATE UNIQUE INDEX customers_external_id_live_key
    ON customers (external_id) WHERE deleted_at IS NULL;
CREATE INDEX customers_external_id_idx ON customers (external_id);

CREATE TABLE customer_sessions (
    id uuid PRIMARY KEY,
    -- hex(HMAC-SHA256(secret, token)); the token itself is never stored.
    token char(64) NOT NULL CHECK (token ~ '^[0-9a-f]{64}$'),
    -- Not in Polar's table (member sessions have their own there): the token's prefix.
    kind text NOT NULL DEFAULT 'customer' CHECK (kind IN ('customer', 'member')),
    customer_id uuid NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    return_url text,
    created_at timestamptz NOT NULL DEFAULT now(),
    modified_at timestamptz,
    deleted_at timestamptz,
    CONSTRAINT customer_sessions_token_key UNIQUE (token)
);

CREATE INDEX customer_sessions_customer_id_idx ON customer_sessions (customer_id);
CREATE INDEX customer_sessions_expires_at_idx ON customer_sessions (expires_at);
