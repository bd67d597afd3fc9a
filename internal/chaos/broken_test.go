package chaos

import (
	"context"
	"errors"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/sqlitestore"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// Deliberately broken variants of the system under test. Each breaks one
// promise the suite checks; the TestChaosDetects* tests assert that the
// checker notices.

var errDropped = errors.New("chaos: commit dropped")

// dropCommitStore rolls back one transaction in 20 but reports success:
// the processor acknowledges messages whose effects were never committed,
// as a transport that acks before the commit would. Like the other broken
// stores it implements only marketplace.Store (not Viewer), so every read
// goes through its InTx; the env closes the SQLite store itself.
type dropCommitStore struct {
	db  *sqlitestore.Store
	rng *lockedRand
}

func (s *dropCommitStore) Close() error { return nil }

func (s *dropCommitStore) InTx(ctx context.Context, fn func(ctx context.Context, tx marketplace.Tx) error) error {
	drop := s.rng.Float64() < 0.05
	err := s.db.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
		if err := fn(ctx, tx); err != nil {
			return err
		}
		if drop {
			return errDropped
		}
		return nil
	})
	if errors.Is(err, errDropped) {
		return nil
	}
	return err
}

// forgetfulStore never remembers a processed event id: every duplicate
// delivery is processed again.
type forgetfulStore struct{ db *sqlitestore.Store }

func (s *forgetfulStore) Close() error { return nil }

func (s *forgetfulStore) InTx(ctx context.Context, fn func(ctx context.Context, tx marketplace.Tx) error) error {
	return s.db.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
		return fn(ctx, forgetfulTx{tx})
	})
}

type forgetfulTx struct{ marketplace.Tx }

func (forgetfulTx) IsProcessed(context.Context, string) (bool, error) { return false, nil }

func (forgetfulTx) MarkProcessed(context.Context, string, time.Time) (bool, error) { return true, nil }

// lossyLedger acknowledges one usage record in 50 without storing it.
type lossyLedger struct {
	*sqlitestore.Store
	rng *lockedRand
}

func (l *lossyLedger) AddUsage(ctx context.Context, u ledger.Usage) (time.Time, error) {
	if l.rng.Float64() < 0.02 {
		return u.Bucket, nil
	}
	return l.Store.AddUsage(ctx, u)
}
