package memstore

import (
	"context"
	"fmt"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/signup"
)

var _ signup.UsedTokens = (*Store)(nil)

// UseToken implements signup.UsedTokens. It waits for a running
// transaction, like InTx.
func (s *Store) UseToken(ctx context.Context, key string, expires time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("memstore: use token: %w", err)
	}
	if key == "" {
		return false, fmt.Errorf("memstore: use token: empty key: %w", marketplace.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, fmt.Errorf("memstore: use token: %w", marketplace.ErrClosed)
	}
	if _, used := s.usedTokens[key]; used {
		return false, nil
	}
	if s.usedTokens == nil {
		s.usedTokens = make(map[string]time.Time)
	}
	s.usedTokens[key] = expires.UTC()
	return true, nil
}

// PruneUsedTokens implements signup.UsedTokens.
func (s *Store) PruneUsedTokens(ctx context.Context, before time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("memstore: prune used tokens: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, fmt.Errorf("memstore: prune used tokens: %w", marketplace.ErrClosed)
	}
	n := 0
	for k, exp := range s.usedTokens {
		if exp.Before(before) {
			delete(s.usedTokens, k)
			n++
		}
	}
	return n, nil
}
