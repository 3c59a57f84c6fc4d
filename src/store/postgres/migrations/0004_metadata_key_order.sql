-- `jsonb` keeps object keys in an order of its own (shorter keys first), not in the order
-- Polar sent them. The order is kept beside the metadata. NULL for rows written before this
-- migration or by programs that do not set it: their metadata reads back in jsonb's order.
ALTER TABLE customers ADD COLUMN metadata_keys text[];
