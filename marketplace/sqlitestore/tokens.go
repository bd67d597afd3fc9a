package sqlitestore

import (
	"context"
	"fmt"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/signup"
)

var _ signup.UsedTokens = (*Store)(nil)

const (
	sqlUseToken        = "INSERT INTO used_signup_tokens (token_key, expires_at) VALUES (?, ?) ON CONFLICT (token_key) DO NOTHING"
	sqlPruneUsedTokens = "DELETE FROM used_signup_tokens WHERE expires_at < ?"
	opUseToken         = "use token"
	opPruneUsedTokens  = "prune used tokens"
)

// UseToken implements signup.UsedTokens, as one transaction of the
// group commit: the primary key makes exactly one of concurrent callers
// insert the row.
func (s *Store) UseToken(ctx context.Context, key string, expires time.Time) (bool, error) {
	ts, err := encodeTime(expires)
	if err != nil {
		return false, fmt.Errorf("sqlitestore: %s: %w", opUseToken, err)
	}
	var first bool
	err = s.tokenTx(ctx, opUseToken, key, func(t *tx) error {
		res, err := t.s.conn.ExecContext(stmtCtx, sqlUseToken, key, ts)
		if err != nil {
			return fmt.Errorf("sqlitestore: %s: %w", opUseToken, interpretError(err))
		}
		n, err := res.RowsAffected()
		first = n == 1
		return err
	})
	return first, err
}

// PruneUsedTokens implements signup.UsedTokens.
func (s *Store) PruneUsedTokens(ctx context.Context, before time.Time) (int, error) {
	ts, err := encodeTime(before)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: %s: %w", opPruneUsedTokens, err)
	}
	n := 0
	err = s.tokenTx(ctx, opPruneUsedTokens, "", func(t *tx) error {
		res, err := t.s.conn.ExecContext(stmtCtx, sqlPruneUsedTokens, ts)
		if err != nil {
			return fmt.Errorf("sqlitestore: %s: %w", opPruneUsedTokens, interpretError(err))
		}
		m, err := res.RowsAffected()
		n = int(m)
		return err
	})
	return n, err
}

// tokenTx runs fn as one write transaction; key, unless op prunes, must
// not be empty.
func (s *Store) tokenTx(ctx context.Context, op, key string, fn func(t *tx) error) error {
	if op == opUseToken && key == "" {
		return fmt.Errorf("sqlitestore: %s: empty key: %w", op, marketplace.ErrInvalid)
	}
	return s.InTx(ctx, func(ctx context.Context, mtx marketplace.Tx) error {
		t := mtx.(*tx)
		if err := t.enterWrite(ctx, op); err != nil {
			return err
		}
		defer t.mu.Unlock()
		return fn(t)
	})
}
