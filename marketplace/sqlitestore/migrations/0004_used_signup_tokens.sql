-- Sign-up tokens already used (marketplace.UsedTokens), so that a copy of a
-- token cannot start a second sign-up. A row is kept until its token has
-- expired, then pruned.
CREATE TABLE used_signup_tokens (
    token_key  TEXT NOT NULL PRIMARY KEY,
    expires_at TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- PruneUsedTokens deletes by expiry.
CREATE INDEX used_signup_tokens_expires_at ON used_signup_tokens (expires_at);
