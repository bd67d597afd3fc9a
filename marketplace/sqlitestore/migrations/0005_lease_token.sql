-- Lease tokens: ClaimWindows increments a window's lease_token, and a
-- reporter's UpdateWindows applies only while the token is the one its
-- claim returned, so a reporter that stalled past its lease while another
-- claimed the window can neither mark it sent nor record an outcome.
ALTER TABLE usage_windows ADD COLUMN lease_token INTEGER NOT NULL DEFAULT 0;
