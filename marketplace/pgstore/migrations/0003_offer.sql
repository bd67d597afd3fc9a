-- Version 3: the offer an entitlement is on (Procurement's offer field), so
-- that a change of offer that keeps the plan is told apart from a change
-- the customer withdrew. Rows stored before it read as no offer.
ALTER TABLE entitlements ADD COLUMN offer text NOT NULL DEFAULT '';
