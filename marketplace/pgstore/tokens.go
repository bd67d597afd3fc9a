package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/signup"
)

var _ signup.UsedTokens = (*Store)(nil)

// UseToken implements signup.UsedTokens with one INSERT ... ON
// CONFLICT DO NOTHING: the primary key makes exactly one of concurrent
// callers, on any replica, insert the row.
func (s *Store) UseToken(ctx context.Context, key string, expires time.Time) (bool, error) {
	const op = "use token"
	if key == "" {
		return false, fmt.Errorf("pgstore: %s: empty key: %w", op, marketplace.ErrInvalid)
	}
	if err := badText(key); err != nil {
		return false, fmt.Errorf("pgstore: %s: %w", op, invalid(marketplace.ErrInvalid, err))
	}
	if err := badTime(expires); err != nil {
		return false, fmt.Errorf("pgstore: %s: %w", op, invalid(marketplace.ErrInvalid, err))
	}
	q := "INSERT INTO " + s.usedTokensTable() + " (token_key, expires_at) VALUES ($1, $2) ON CONFLICT (token_key) DO NOTHING"
	n, err := s.tokenExec(ctx, op, q, key, expires)
	return n == 1, err
}

// PruneUsedTokens implements signup.UsedTokens.
func (s *Store) PruneUsedTokens(ctx context.Context, before time.Time) (int, error) {
	const op = "prune used tokens"
	if err := badTime(before); err != nil {
		return 0, fmt.Errorf("pgstore: %s: %w", op, invalid(marketplace.ErrInvalid, err))
	}
	n, err := s.tokenExec(ctx, op, "DELETE FROM "+s.usedTokensTable()+" WHERE expires_at < $1", before)
	return int(n), err
}

func (s *Store) usedTokensTable() string {
	return pgx.Identifier{s.schema, "used_signup_tokens"}.Sanitize()
}

// tokenExec runs one statement, a transaction of its own, on the pool.
func (s *Store) tokenExec(ctx context.Context, op, query string, args ...any) (int64, error) {
	if err := s.enter(); err != nil {
		return 0, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	defer s.running.Done()
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("pgstore: %s: %w", op, err)
	}
	tag, err := s.pool.Exec(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("pgstore: %s: %w", op, interpretError(err))
	}
	return tag.RowsAffected(), nil
}
