-- Member sessions (`polar_mst_`) name their team member: id, email, name, external id and
-- role, as JSON (Polar keeps them in a members table of its own; here they travel with the
-- session). NULL for customer sessions and for rows written before this migration.
ALTER TABLE customer_sessions ADD COLUMN member jsonb;
