// Package storetest is the contract suite for marketplace.Store. Every store
// in this module runs it, and so should third-party implementations:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, storetest.Harness{
//			New: func(t *testing.T) marketplace.Store { return mystore.New(...) },
//		})
//	}
//
// Each case runs as a parallel subtest on a fresh store from Harness.New and
// asserts the values read back, not only the absence of errors. The suite
// uses nothing but the standard testing package, so implementers inherit no
// test dependencies.
package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

// Harness tells Run how to obtain stores.
type Harness struct {
	// New returns a fresh, empty store private to the calling test. Run
	// closes it when the test ends (Close must therefore be idempotent);
	// New may register further cleanup with t.Cleanup.
	New func(t *testing.T) marketplace.Store

	// Reopen closes s and returns a new store over the same durable
	// storage. Leave it nil for stores that keep nothing across Close
	// (memstore): the durability cases are then skipped.
	Reopen func(t *testing.T, s marketplace.Store) marketplace.Store

	// ViewWaitsForInTx says that the store's marketplace.Viewer waits for
	// a running InTx instead of reading the last commit beside it
	// (memstore, which changes data in place under one lock). The case
	// that requires a View not to wait is then skipped; the other View
	// cases run. It has no effect on stores that do not implement Viewer,
	// for which the View cases are skipped.
	ViewWaitsForInTx bool
}

// Run runs the whole contract suite against the stores h provides.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil {
		t.Fatal("storetest: Harness.New is nil")
	}
	areas := []struct {
		name  string
		cases []testCase
	}{
		{"Tx", txCases},
		{"Processed", processedCases},
		{"Accounts", accountCases},
		{"Entitlements", entitlementCases},
		{"Approvals", approvalCases},
		{"Poison", poisonCases},
		{"History", historyCases},
		{"Durability", durabilityCases},
		{"Ledger", ledgerCases},        // ledger.Ledger, for stores that implement it
		{"UsedTokens", usedTokenCases}, // signup.UsedTokens, likewise
		{"View", viewCases},
		{"Origin", originCases}, // marketplace.OriginRecorder, for stores that implement it
	}
	for _, area := range areas {
		t.Run(area.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range area.cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.run(t, h)
				})
			}
		})
	}
}

type testCase struct {
	name string
	run  func(t *testing.T, h Harness)
}

// newStore returns a fresh store that is closed when t ends.
func newStore(t *testing.T, h Harness) marketplace.Store {
	t.Helper()
	s := h.New(t)
	if s == nil {
		t.Fatal("storetest: Harness.New returned nil")
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// base is a fixed instant at microsecond precision, the precision every
// store must keep.
var base = time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)

func at(d time.Duration) time.Time { return base.Add(d) }

// inTx runs fn in a transaction and fails t if InTx fails.
func inTx(t *testing.T, s marketplace.Store, fn func(ctx context.Context, tx marketplace.Tx)) {
	t.Helper()
	err := s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		fn(ctx, tx)
		return nil
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
}

// view is inTx for read-only use, returning fn's result.
func view[T any](t *testing.T, s marketplace.Store, fn func(ctx context.Context, tx marketplace.Tx) (T, error)) T {
	t.Helper()
	var out T
	err := s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		var err error
		out, err = fn(ctx, tx)
		return err
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	return out
}

func noErr(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: unexpected error: %v", what, err)
	}
}

func isErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want one wrapping %v", what, err, target)
	}
}

func equal[T comparable](t *testing.T, got, want T, what string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

// sameTime requires got to be want's instant, in UTC.
func sameTime(t *testing.T, got, want time.Time, what string) {
	t.Helper()
	if !got.Equal(want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
	if !got.IsZero() && got.Location() != time.UTC {
		t.Fatalf("%s: location %v, want UTC", what, got.Location())
	}
}
