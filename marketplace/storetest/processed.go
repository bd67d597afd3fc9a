package storetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

var processedCases = []testCase{
	{"FirstThenDuplicate", testProcessedFirstThenDuplicate},
	{"TwiceInOneTx", testProcessedTwiceInOneTx},
	{"RolledBackMarkIsForgotten", testProcessedRolledBack},
	{"ExactUnderConcurrentDuplicates", testProcessedConcurrent},
	{"PruneBoundaries", testPruneBoundaries},
	{"PruneRolledBack", testPruneRolledBack},
}

func markProcessed(t *testing.T, s marketplace.Store, id string, when time.Time) bool {
	t.Helper()
	return view(t, s, func(ctx context.Context, tx marketplace.Tx) (bool, error) {
		return tx.MarkProcessed(ctx, id, when)
	})
}

func isProcessed(t *testing.T, s marketplace.Store, id string) bool {
	t.Helper()
	return view(t, s, func(ctx context.Context, tx marketplace.Tx) (bool, error) {
		return tx.IsProcessed(ctx, id)
	})
}

func testProcessedFirstThenDuplicate(t *testing.T, h Harness) {
	s := newStore(t, h)
	equal(t, isProcessed(t, s, "ev-1"), false, "IsProcessed before")
	equal(t, markProcessed(t, s, "ev-1", base), true, "first mark")
	equal(t, isProcessed(t, s, "ev-1"), true, "IsProcessed after")
	equal(t, markProcessed(t, s, "ev-1", at(time.Hour)), false, "second mark")
	equal(t, isProcessed(t, s, "ev-2"), false, "IsProcessed of another id")
}

func testProcessedTwiceInOneTx(t *testing.T, h Harness) {
	s := newStore(t, h)
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		first, err := tx.MarkProcessed(ctx, "ev-1", base)
		noErr(t, err, "MarkProcessed")
		equal(t, first, true, "first mark in tx")
		first, err = tx.MarkProcessed(ctx, "ev-1", base)
		noErr(t, err, "MarkProcessed")
		equal(t, first, false, "second mark in the same tx")
		done, err := tx.IsProcessed(ctx, "ev-1")
		noErr(t, err, "IsProcessed")
		equal(t, done, true, "IsProcessed in tx")
	})
	equal(t, markProcessed(t, s, "ev-1", base), false, "mark after commit")
}

func testProcessedRolledBack(t *testing.T, h Harness) {
	s := newStore(t, h)
	err := s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		first, err := tx.MarkProcessed(ctx, "ev-1", base)
		noErr(t, err, "MarkProcessed")
		equal(t, first, true, "first mark")
		return context.DeadlineExceeded // any error: roll back
	})
	isErr(t, err, context.DeadlineExceeded, "InTx")
	equal(t, isProcessed(t, s, "ev-1"), false, "IsProcessed after rollback")
	// The redelivered event is processed for real.
	equal(t, markProcessed(t, s, "ev-1", base), true, "mark after rollback")
}

func testProcessedConcurrent(t *testing.T, h Harness) {
	s := newStore(t, h)
	const n = 32
	var firsts, fails atomic.Int32
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			err := s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
				first, err := tx.MarkProcessed(ctx, "ev-dup", base)
				if err != nil {
					return err
				}
				if first {
					// The effect guarded by the mark: only the winner writes.
					if err := tx.PutEntitlement(ctx, marketplace.Entitlement{ID: "ent-1", Plan: "won"}); err != nil {
						return err
					}
					firsts.Add(1)
				}
				return nil
			})
			if err != nil {
				fails.Add(1)
				t.Errorf("InTx: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	equal(t, fails.Load(), int32(0), "failed transactions")
	equal(t, firsts.Load(), int32(1), "transactions that saw first=true")
	equal(t, isProcessed(t, s, "ev-dup"), true, "IsProcessed")
}

func testPruneBoundaries(t *testing.T, h Harness) {
	s := newStore(t, h)
	marks := map[string]time.Time{
		"ev-old":     at(-2 * time.Hour),
		"ev-justbef": at(-time.Microsecond),
		"ev-at":      base,
		"ev-after":   at(time.Microsecond),
		"ev-new":     at(time.Hour),
	}
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		for id, when := range marks {
			_, err := tx.MarkProcessed(ctx, id, when)
			noErr(t, err, "MarkProcessed "+id)
		}
	})
	n := view(t, s, func(ctx context.Context, tx marketplace.Tx) (int, error) {
		return tx.PruneProcessed(ctx, base)
	})
	equal(t, n, 2, "pruned (strictly before the cutoff)")
	for id, want := range map[string]bool{"ev-old": false, "ev-justbef": false, "ev-at": true, "ev-after": true, "ev-new": true} {
		equal(t, isProcessed(t, s, id), want, "IsProcessed "+id)
	}
	n = view(t, s, func(ctx context.Context, tx marketplace.Tx) (int, error) {
		return tx.PruneProcessed(ctx, base)
	})
	equal(t, n, 0, "second prune with the same cutoff")
	// A cutoff given in another zone is the same instant.
	n = view(t, s, func(ctx context.Context, tx marketplace.Tx) (int, error) {
		return tx.PruneProcessed(ctx, at(time.Hour+time.Microsecond).In(time.FixedZone("UTC-7", -7*3600)))
	})
	equal(t, n, 3, "prune everything")
	// A pruned id is new again: retention bounds the dedupe window.
	equal(t, markProcessed(t, s, "ev-old", base), true, "mark a pruned id")
}

func testPruneRolledBack(t *testing.T, h Harness) {
	s := newStore(t, h)
	equal(t, markProcessed(t, s, "ev-1", base), true, "mark")
	err := s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		n, err := tx.PruneProcessed(ctx, at(time.Hour))
		noErr(t, err, "PruneProcessed")
		equal(t, n, 1, "pruned in tx")
		done, err := tx.IsProcessed(ctx, "ev-1")
		noErr(t, err, "IsProcessed")
		equal(t, done, false, "IsProcessed after prune in tx")
		return context.Canceled
	})
	isErr(t, err, context.Canceled, "InTx")
	equal(t, isProcessed(t, s, "ev-1"), true, "IsProcessed after rolled-back prune")
}
