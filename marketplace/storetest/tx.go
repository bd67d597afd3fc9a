package storetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

var txCases = []testCase{
	{"CommitIsVisible", testCommitIsVisible},
	{"ErrorRollsBack", testErrorRollsBack},
	{"PanicRollsBackAndIsReraised", testPanicRollsBack},
	{"ContextDoneBeforeStart", testContextDoneBeforeStart},
	{"ContextCancelledInside", testContextCancelledInside},
	{"TxUnusableAfterEnd", testTxUnusableAfterEnd},
	{"EmptyIDsRejected", testEmptyIDsRejected},
	{"LockSerialisesSameKey", testLockSerialisesSameKey},
	{"LockDifferentKeysAndRelock", testLockDifferentKeys},
	{"ReadModifyWriteUnderLockLosesNothing", testReadModifyWrite},
	{"ConcurrentMixedWorkload", testConcurrentMixedWorkload},
	{"CloseThenUse", testCloseThenUse},
}

func testCommitIsVisible(t *testing.T, h Harness) {
	s := newStore(t, h)
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.PutAccount(ctx, marketplace.Account{ID: "acct-1", VendorUserID: "tenant-1"}), "PutAccount")
		// Visible inside the same transaction.
		a, err := tx.GetAccount(ctx, "acct-1")
		noErr(t, err, "GetAccount in tx")
		equal(t, a.VendorUserID, "tenant-1", "VendorUserID in tx")
	})
	a := view(t, s, func(ctx context.Context, tx marketplace.Tx) (marketplace.Account, error) {
		return tx.GetAccount(ctx, "acct-1")
	})
	equal(t, a.VendorUserID, "tenant-1", "VendorUserID after commit")
}

func testErrorRollsBack(t *testing.T, h Harness) {
	s := newStore(t, h)
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.PutEntitlement(ctx, marketplace.Entitlement{ID: "ent-1", Plan: "basic"}), "PutEntitlement")
	})
	errBoom := errors.New("boom")
	err := s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		noErr(t, tx.PutEntitlement(ctx, marketplace.Entitlement{ID: "ent-1", Plan: "premium"}), "PutEntitlement")
		noErr(t, tx.PutEntitlement(ctx, marketplace.Entitlement{ID: "ent-2", Plan: "basic"}), "PutEntitlement")
		first, err := tx.MarkProcessed(ctx, "ev-1", base)
		noErr(t, err, "MarkProcessed")
		equal(t, first, true, "first")
		return fmt.Errorf("handler: %w", errBoom)
	})
	isErr(t, err, errBoom, "InTx")
	equal(t, err.Error(), "handler: boom", "InTx returns fn's error unchanged")

	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		e, err := tx.GetEntitlement(ctx, "ent-1")
		noErr(t, err, "GetEntitlement")
		equal(t, e.Plan, "basic", "plan after rollback")
		_, err = tx.GetEntitlement(ctx, "ent-2")
		isErr(t, err, marketplace.ErrNotFound, "GetEntitlement of rolled-back insert")
		done, err := tx.IsProcessed(ctx, "ev-1")
		noErr(t, err, "IsProcessed")
		equal(t, done, false, "processed after rollback")
	})
}

func testPanicRollsBack(t *testing.T, h Harness) {
	s := newStore(t, h)
	type panicValue struct{ n int }
	var recovered any
	func() {
		defer func() { recovered = recover() }()
		_ = s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
			noErr(t, tx.PutAccount(ctx, marketplace.Account{ID: "acct-1"}), "PutAccount")
			panic(panicValue{42})
		})
	}()
	equal(t, recovered, any(panicValue{42}), "re-raised panic value")

	// The store is usable afterwards and holds nothing of the panicking tx.
	accts := view(t, s, func(ctx context.Context, tx marketplace.Tx) ([]marketplace.Account, error) {
		return tx.ListAccounts(ctx)
	})
	equal(t, len(accts), 0, "accounts after panic")
}

func testContextDoneBeforeStart(t *testing.T, h Harness) {
	s := newStore(t, h)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	err := s.InTx(ctx, func(context.Context, marketplace.Tx) error {
		called = true
		return nil
	})
	isErr(t, err, context.Canceled, "InTx with cancelled ctx")
	equal(t, called, false, "fn called")

	ctx, cancel = context.WithDeadline(context.Background(), base)
	defer cancel()
	err = s.InTx(ctx, func(context.Context, marketplace.Tx) error {
		called = true
		return nil
	})
	isErr(t, err, context.DeadlineExceeded, "InTx with expired ctx")
	equal(t, called, false, "fn called")
}

func testContextCancelledInside(t *testing.T, h Harness) {
	s := newStore(t, h)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := s.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
		noErr(t, tx.PutAccount(ctx, marketplace.Account{ID: "acct-1"}), "PutAccount")
		cancel()
		err := tx.PutAccount(ctx, marketplace.Account{ID: "acct-2"})
		isErr(t, err, context.Canceled, "PutAccount after cancel")
		_, err = tx.GetAccount(ctx, "acct-1")
		isErr(t, err, context.Canceled, "GetAccount after cancel")
		return err
	})
	isErr(t, err, context.Canceled, "InTx")
	accts := view(t, s, func(ctx context.Context, tx marketplace.Tx) ([]marketplace.Account, error) {
		return tx.ListAccounts(ctx)
	})
	equal(t, len(accts), 0, "accounts after cancelled tx")
}

func testTxUnusableAfterEnd(t *testing.T, h Harness) {
	s := newStore(t, h)
	var leaked marketplace.Tx
	inTx(t, s, func(_ context.Context, tx marketplace.Tx) { leaked = tx })
	ctx := context.Background()
	err := leaked.PutAccount(ctx, marketplace.Account{ID: "acct-1"})
	isErr(t, err, marketplace.ErrTxDone, "PutAccount on ended tx")
	_, err = leaked.GetAccount(ctx, "acct-1")
	isErr(t, err, marketplace.ErrTxDone, "GetAccount on ended tx")
	_, err = leaked.MarkProcessed(ctx, "ev-1", base)
	isErr(t, err, marketplace.ErrTxDone, "MarkProcessed on ended tx")
	accts := view(t, s, func(ctx context.Context, tx marketplace.Tx) ([]marketplace.Account, error) {
		return tx.ListAccounts(ctx)
	})
	equal(t, len(accts), 0, "accounts written through an ended tx")
}

func testEmptyIDsRejected(t *testing.T, h Harness) {
	s := newStore(t, h)
	calls := []struct {
		name string
		call func(ctx context.Context, tx marketplace.Tx) error
	}{
		{"Lock", func(ctx context.Context, tx marketplace.Tx) error { return tx.Lock(ctx, "") }},
		{"MarkProcessed", func(ctx context.Context, tx marketplace.Tx) error {
			_, err := tx.MarkProcessed(ctx, "", base)
			return err
		}},
		{"PutAccount", func(ctx context.Context, tx marketplace.Tx) error { return tx.PutAccount(ctx, marketplace.Account{}) }},
		{"PutEntitlement", func(ctx context.Context, tx marketplace.Tx) error {
			return tx.PutEntitlement(ctx, marketplace.Entitlement{Plan: "p"})
		}},
		{"AdvanceEntitlement", func(ctx context.Context, tx marketplace.Tx) error {
			_, err := tx.AdvanceEntitlement(ctx, marketplace.Entitlement{UpdateTime: base})
			return err
		}},
		{"EnqueueApproval/NoEntitlement", func(ctx context.Context, tx marketplace.Tx) error {
			_, err := tx.EnqueueApproval(ctx, marketplace.ApprovalRequest{Kind: marketplace.ApprovalEntitlement})
			return err
		}},
		{"EnqueueApproval/NoKind", func(ctx context.Context, tx marketplace.Tx) error {
			_, err := tx.EnqueueApproval(ctx, marketplace.ApprovalRequest{EntitlementID: "ent-1"})
			return err
		}},
	}
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		for _, c := range calls {
			isErr(t, c.call(ctx, tx), marketplace.ErrInvalid, c.name)
		}
		// A rejected call leaves the transaction usable.
		noErr(t, tx.PutAccount(ctx, marketplace.Account{ID: "acct-1"}), "PutAccount after rejected calls")
	})
	accts := view(t, s, func(ctx context.Context, tx marketplace.Tx) ([]marketplace.Account, error) {
		return tx.ListAccounts(ctx)
	})
	equal(t, len(accts), 1, "accounts")
	ents := view(t, s, func(ctx context.Context, tx marketplace.Tx) ([]marketplace.Entitlement, error) {
		return tx.ListEntitlements(ctx, marketplace.EntitlementQuery{})
	})
	equal(t, len(ents), 0, "entitlements")
}

func testLockSerialisesSameKey(t *testing.T, h Harness) {
	s := newStore(t, h)
	const workers, rounds = 8, 5
	var inside, overlaps, entered atomic.Int32
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range rounds {
				err := s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
					if err := tx.Lock(ctx, "acct-1"); err != nil {
						return err
					}
					entered.Add(1)
					if inside.Add(1) != 1 {
						overlaps.Add(1)
					}
					time.Sleep(200 * time.Microsecond) // widen the window an overlap needs
					inside.Add(-1)
					return nil
				})
				if err != nil {
					t.Errorf("InTx: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	equal(t, entered.Load(), int32(workers*rounds), "transactions that held the lock")
	equal(t, overlaps.Load(), int32(0), "overlapping holders of one key")
}

func testLockDifferentKeys(t *testing.T, h Harness) {
	s := newStore(t, h)
	var wg sync.WaitGroup
	var done atomic.Int32
	for i := range 8 {
		wg.Go(func() {
			err := s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
				key := "acct-" + strconv.Itoa(i)
				if err := tx.Lock(ctx, key); err != nil {
					return err
				}
				// Locking a key already held, and a second key, must not
				// deadlock.
				if err := tx.Lock(ctx, key); err != nil {
					return err
				}
				if err := tx.Lock(ctx, "ent-"+strconv.Itoa(i)); err != nil {
					return err
				}
				return tx.PutAccount(ctx, marketplace.Account{ID: key})
			})
			if err != nil {
				t.Errorf("InTx: %v", err)
				return
			}
			done.Add(1)
		})
	}
	wg.Wait()
	equal(t, done.Load(), int32(8), "completed transactions")
	accts := view(t, s, func(ctx context.Context, tx marketplace.Tx) ([]marketplace.Account, error) {
		return tx.ListAccounts(ctx)
	})
	equal(t, len(accts), 8, "accounts")
}

// testReadModifyWrite increments a counter held in an entitlement's Plan
// from many goroutines; a store whose Lock does not serialise loses updates.
func testReadModifyWrite(t *testing.T, h Harness) {
	s := newStore(t, h)
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.PutEntitlement(ctx, marketplace.Entitlement{ID: "ent-counter", Plan: "0"}), "PutEntitlement")
	})
	const workers, rounds = 8, 10
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range rounds {
				err := s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
					if err := tx.Lock(ctx, "ent-counter"); err != nil {
						return err
					}
					e, err := tx.GetEntitlement(ctx, "ent-counter")
					if err != nil {
						return err
					}
					n, err := strconv.Atoi(e.Plan)
					if err != nil {
						return err
					}
					e.Plan = strconv.Itoa(n + 1)
					return tx.PutEntitlement(ctx, e)
				})
				if err != nil {
					t.Errorf("InTx: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	e := view(t, s, func(ctx context.Context, tx marketplace.Tx) (marketplace.Entitlement, error) {
		return tx.GetEntitlement(ctx, "ent-counter")
	})
	equal(t, e.Plan, strconv.Itoa(workers*rounds), "counter")
}

// testConcurrentMixedWorkload runs every kind of write from several
// goroutines, rolling back every third transaction, and checks exactly the
// committed ones remain.
func testConcurrentMixedWorkload(t *testing.T, h Harness) {
	s := newStore(t, h)
	const workers, rounds = 6, 15
	errRollback := errors.New("deliberate rollback")
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				id := fmt.Sprintf("w%d-%02d", w, i)
				err := s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
					if err := tx.Lock(ctx, "acct-"+id); err != nil {
						return err
					}
					if _, err := tx.MarkProcessed(ctx, "ev-"+id, at(time.Duration(i)*time.Second)); err != nil {
						return err
					}
					if err := tx.PutAccount(ctx, marketplace.Account{ID: "acct-" + id, VendorUserID: "v-" + id}); err != nil {
						return err
					}
					if _, err := tx.AdvanceEntitlement(ctx, marketplace.Entitlement{ID: "ent-" + id, AccountID: "acct-" + id, UpdateTime: base}); err != nil {
						return err
					}
					if _, err := tx.EnqueueApproval(ctx, marketplace.ApprovalRequest{EntitlementID: "ent-" + id, Kind: marketplace.ApprovalEntitlement}); err != nil {
						return err
					}
					if err := tx.RecordPoison(ctx, marketplace.Poison{MessageID: "msg-" + id, At: base}); err != nil {
						return err
					}
					if _, err := tx.ListEntitlements(ctx, marketplace.EntitlementQuery{AccountID: "acct-" + id}); err != nil {
						return err
					}
					if i%3 == 2 {
						return errRollback
					}
					return nil
				})
				if i%3 == 2 {
					if !errors.Is(err, errRollback) {
						t.Errorf("InTx %s: got %v, want the rollback error", id, err)
					}
				} else if err != nil {
					t.Errorf("InTx %s: %v", id, err)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	committed := workers * rounds * 2 / 3
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		accts, err := tx.ListAccounts(ctx)
		noErr(t, err, "ListAccounts")
		equal(t, len(accts), committed, "accounts")
		ents, err := tx.ListEntitlements(ctx, marketplace.EntitlementQuery{})
		noErr(t, err, "ListEntitlements")
		equal(t, len(ents), committed, "entitlements")
		apps, err := tx.ListApprovals(ctx)
		noErr(t, err, "ListApprovals")
		equal(t, len(apps), committed, "approvals")
		poison, err := tx.ListPoison(ctx, 0)
		noErr(t, err, "ListPoison")
		equal(t, len(poison), committed, "poison")
		for w := range workers {
			for i := range rounds {
				id := fmt.Sprintf("w%d-%02d", w, i)
				done, err := tx.IsProcessed(ctx, "ev-"+id)
				noErr(t, err, "IsProcessed")
				equal(t, done, i%3 != 2, "processed "+id)
				a, err := tx.GetAccount(ctx, "acct-"+id)
				if i%3 == 2 {
					isErr(t, err, marketplace.ErrNotFound, "GetAccount "+id)
				} else {
					noErr(t, err, "GetAccount "+id)
					equal(t, a.VendorUserID, "v-"+id, "VendorUserID "+id)
				}
			}
		}
	})
}

func testCloseThenUse(t *testing.T, h Harness) {
	s := newStore(t, h)
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.PutAccount(ctx, marketplace.Account{ID: "acct-1"}), "PutAccount")
	})
	noErr(t, s.Close(), "Close")
	called := false
	err := s.InTx(context.Background(), func(context.Context, marketplace.Tx) error {
		called = true
		return nil
	})
	isErr(t, err, marketplace.ErrClosed, "InTx after Close")
	equal(t, called, false, "fn called after Close")
	noErr(t, s.Close(), "second Close")
}
