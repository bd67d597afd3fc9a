package storetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

// viewCases run when the store implements marketplace.Viewer.
var viewCases = []testCase{
	{"SeesCommitted", testViewSeesCommitted},
	{"BesideOpenInTx", testViewBesideOpenInTx},
	{"NeverSeesRolledBack", testViewNeverSeesRolledBack},
	{"WritesRefused", testViewWritesRefused},
	{"ErrorReturnedUnchanged", testViewError},
	{"PanicReraised", testViewPanic},
	{"ContextDone", testViewContextDone},
	{"TxUnusableAfterEnd", testViewTxUnusableAfterEnd},
	{"CloseThenView", testViewAfterClose},
	{"ConcurrentWithWriters", testViewConcurrentWithWriters},
}

// newViewer returns a fresh store and its Viewer, or skips t if the store
// does not implement the capability.
func newViewer(t *testing.T, h Harness) (marketplace.Store, marketplace.Viewer) {
	t.Helper()
	s := newStore(t, h)
	v, ok := s.(marketplace.Viewer)
	if !ok {
		t.Skipf("%T does not implement marketplace.Viewer", s)
	}
	return s, v
}

// inView runs fn in a read-only transaction and fails t if View fails.
func inView(t *testing.T, v marketplace.Viewer, fn func(ctx context.Context, tx marketplace.Tx)) {
	t.Helper()
	err := v.View(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		fn(ctx, tx)
		return nil
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
}

// seed commits one record of every kind and returns them.
func seed(t *testing.T, s marketplace.Store) (marketplace.Account, marketplace.Entitlement, marketplace.ApprovalRequest, marketplace.Poison) {
	t.Helper()
	acct := marketplace.Account{ID: "acct-1", SignupApproved: true, VendorUserID: "tenant-1", UserIdentity: "uid-1", UpdateTime: base, CreatedAt: at(-time.Hour)}
	ent := fullEntitlement()
	app := marketplace.ApprovalRequest{EntitlementID: ent.ID, Kind: marketplace.ApprovalPlanChange, AccountID: acct.ID, Plan: "premium", RequestedAt: at(time.Second)}
	poison := marketplace.Poison{MessageID: "msg-1", EventID: "ev-9", Reason: "undecodable", Data: []byte("payload"), At: at(time.Minute)}
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		_, err := tx.MarkProcessed(ctx, "ev-1", base)
		noErr(t, err, "MarkProcessed")
		noErr(t, tx.PutAccount(ctx, acct), "PutAccount")
		noErr(t, tx.PutEntitlement(ctx, ent), "PutEntitlement")
		app, err = tx.EnqueueApproval(ctx, app)
		noErr(t, err, "EnqueueApproval")
		noErr(t, tx.RecordPoison(ctx, poison), "RecordPoison")
	})
	return acct, ent, app, poison
}

// requireSeeded checks, inside tx, that exactly what seed committed is there.
func requireSeeded(ctx context.Context, t *testing.T, tx marketplace.Tx, acct marketplace.Account, ent marketplace.Entitlement, app marketplace.ApprovalRequest, poison marketplace.Poison) {
	t.Helper()
	done, err := tx.IsProcessed(ctx, "ev-1")
	noErr(t, err, "IsProcessed")
	equal(t, done, true, "ev-1 processed")
	done, err = tx.IsProcessed(ctx, "ev-2")
	noErr(t, err, "IsProcessed")
	equal(t, done, false, "ev-2 processed")

	a, err := tx.GetAccount(ctx, acct.ID)
	noErr(t, err, "GetAccount")
	requireAccount(t, a, acct, "account")
	accts, err := tx.ListAccounts(ctx)
	noErr(t, err, "ListAccounts")
	equal(t, len(accts), 1, "accounts")

	e, err := tx.GetEntitlement(ctx, ent.ID)
	noErr(t, err, "GetEntitlement")
	requireEntitlement(t, e, ent, "entitlement")
	ents, err := tx.ListEntitlements(ctx, marketplace.EntitlementQuery{AccountID: ent.AccountID})
	noErr(t, err, "ListEntitlements")
	equal(t, len(ents), 1, "entitlements of the account")

	r, err := tx.GetApproval(ctx, app.EntitlementID, app.Kind)
	noErr(t, err, "GetApproval")
	requireApproval(t, r, app, "approval")
	apps, err := tx.ListApprovals(ctx)
	noErr(t, err, "ListApprovals")
	equal(t, len(apps), 1, "approvals")

	ps, err := tx.ListPoison(ctx, 0)
	noErr(t, err, "ListPoison")
	equal(t, len(ps), 1, "poison messages")
	equal(t, string(ps[0].Data), string(poison.Data), "poison Data")
	sameTime(t, ps[0].At, poison.At, "poison At")
	ps[0].Data, poison.Data, ps[0].At, poison.At = nil, nil, time.Time{}, time.Time{}
	equal(t, fmt.Sprint(ps[0]), fmt.Sprint(poison), "poison message")
}

func testViewSeesCommitted(t *testing.T, h Harness) {
	s, v := newViewer(t, h)
	inView(t, v, func(ctx context.Context, tx marketplace.Tx) {
		accts, err := tx.ListAccounts(ctx)
		noErr(t, err, "ListAccounts of an empty store")
		equal(t, len(accts), 0, "accounts")
		_, err = tx.GetAccount(ctx, "acct-1")
		isErr(t, err, marketplace.ErrNotFound, "GetAccount of an empty store")
	})
	acct, ent, app, poison := seed(t, s)
	// Visible as soon as InTx has returned.
	inView(t, v, func(ctx context.Context, tx marketplace.Tx) {
		requireSeeded(ctx, t, tx, acct, ent, app, poison)
		// Lock takes nothing but still checks its argument.
		noErr(t, tx.Lock(ctx, "acct-1"), "Lock")
		isErr(t, tx.Lock(ctx, ""), marketplace.ErrInvalid, "Lock of an empty key")
		_, err := tx.GetEntitlement(ctx, "")
		isErr(t, err, marketplace.ErrInvalid, "GetEntitlement of an empty id")
	})
}

// testViewBesideOpenInTx holds a transaction open after it has written and
// checks that a View neither sees its writes nor waits for it.
func testViewBesideOpenInTx(t *testing.T, h Harness) {
	if h.ViewWaitsForInTx {
		t.Skip("the store's View waits for a running InTx (Harness.ViewWaitsForInTx)")
	}
	s, v := newViewer(t, h)
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.PutAccount(ctx, marketplace.Account{ID: "acct-1", VendorUserID: "old"}), "PutAccount")
	})
	written, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	// Registered after newStore's Close, so it runs first: a failure must
	// not leave Close waiting for the held transaction.
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	txErr := make(chan error, 1)
	go func() {
		txErr <- s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
			if err := tx.PutAccount(ctx, marketplace.Account{ID: "acct-1", VendorUserID: "new"}); err != nil {
				return err
			}
			if err := tx.PutEntitlement(ctx, marketplace.Entitlement{ID: "ent-1", AccountID: "acct-1"}); err != nil {
				return err
			}
			if _, err := tx.MarkProcessed(ctx, "ev-1", base); err != nil {
				return err
			}
			close(written)
			<-release
			return nil
		})
	}()
	select {
	case <-written:
	case err := <-txErr:
		t.Fatalf("InTx: %v", err)
	}

	type seen struct {
		vendorUserID string
		entErr       error
		processed    bool
	}
	viewed := make(chan seen, 1)
	viewErr := make(chan error, 1)
	go func() {
		var got seen
		viewErr <- v.View(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
			a, err := tx.GetAccount(ctx, "acct-1")
			if err != nil {
				return err
			}
			got.vendorUserID = a.VendorUserID
			_, got.entErr = tx.GetEntitlement(ctx, "ent-1")
			got.processed, err = tx.IsProcessed(ctx, "ev-1")
			return err
		})
		viewed <- got
	}()
	select {
	case err := <-viewErr:
		noErr(t, err, "View beside an open InTx")
	case <-time.After(30 * time.Second): // a guard against a hang, never reached by a correct store
		t.Fatal("View waited for a running InTx; set Harness.ViewWaitsForInTx if the store does that by design")
	}
	got := <-viewed
	equal(t, got.vendorUserID, "old", "VendorUserID seen beside the open InTx")
	isErr(t, got.entErr, marketplace.ErrNotFound, "GetEntitlement of an uncommitted insert")
	equal(t, got.processed, false, "uncommitted MarkProcessed seen")

	releaseOnce.Do(func() { close(release) })
	noErr(t, <-txErr, "InTx")
	inView(t, v, func(ctx context.Context, tx marketplace.Tx) {
		a, err := tx.GetAccount(ctx, "acct-1")
		noErr(t, err, "GetAccount after commit")
		equal(t, a.VendorUserID, "new", "VendorUserID after commit")
		done, err := tx.IsProcessed(ctx, "ev-1")
		noErr(t, err, "IsProcessed after commit")
		equal(t, done, true, "processed after commit")
	})
}

// testViewNeverSeesRolledBack runs a View while a transaction that will roll
// back holds its writes; whether the View waits for it or not, it must not
// see them.
func testViewNeverSeesRolledBack(t *testing.T, h Harness) {
	s, v := newViewer(t, h)
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.PutAccount(ctx, marketplace.Account{ID: "acct-1", VendorUserID: "old"}), "PutAccount")
	})
	errRollback := errors.New("deliberate rollback")
	written, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	txErr := make(chan error, 1)
	go func() {
		txErr <- s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
			if err := tx.PutAccount(ctx, marketplace.Account{ID: "acct-1", VendorUserID: "rolled back"}); err != nil {
				return err
			}
			close(written)
			<-release
			return errRollback
		})
	}()
	select {
	case <-written:
	case err := <-txErr:
		t.Fatalf("InTx: %v", err)
	}
	const viewers = 4
	seen := make(chan string, viewers)
	var wg sync.WaitGroup
	for range viewers {
		wg.Go(func() {
			err := v.View(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
				a, err := tx.GetAccount(ctx, "acct-1")
				seen <- a.VendorUserID
				return err
			})
			if err != nil {
				t.Errorf("View: %v", err)
			}
		})
	}
	releaseOnce.Do(func() { close(release) })
	isErr(t, <-txErr, errRollback, "InTx")
	wg.Wait()
	close(seen)
	for got := range seen {
		equal(t, got, "old", "VendorUserID seen by a View")
	}
}

func testViewWritesRefused(t *testing.T, h Harness) {
	s, v := newViewer(t, h)
	acct, ent, app, poison := seed(t, s)
	newEnt := ent
	newEnt.ID, newEnt.UpdateTime = "ent-new", at(time.Hour)
	newer := ent
	newer.Plan, newer.UpdateTime = "enterprise", at(time.Hour)
	writes := []struct {
		name string
		call func(ctx context.Context, tx marketplace.Tx) error
	}{
		{"MarkProcessed", func(ctx context.Context, tx marketplace.Tx) error {
			_, err := tx.MarkProcessed(ctx, "ev-2", base)
			return err
		}},
		{"PruneProcessed", func(ctx context.Context, tx marketplace.Tx) error {
			_, err := tx.PruneProcessed(ctx, at(time.Hour))
			return err
		}},
		{"PutAccount", func(ctx context.Context, tx marketplace.Tx) error {
			return tx.PutAccount(ctx, marketplace.Account{ID: acct.ID, VendorUserID: "changed"})
		}},
		{"PutAccount/New", func(ctx context.Context, tx marketplace.Tx) error {
			return tx.PutAccount(ctx, marketplace.Account{ID: "acct-new"})
		}},
		{"DeleteAccount", func(ctx context.Context, tx marketplace.Tx) error { return tx.DeleteAccount(ctx, acct.ID) }},
		{"PutEntitlement", func(ctx context.Context, tx marketplace.Tx) error { return tx.PutEntitlement(ctx, newEnt) }},
		{"AdvanceEntitlement", func(ctx context.Context, tx marketplace.Tx) error {
			_, err := tx.AdvanceEntitlement(ctx, newer)
			return err
		}},
		{"DeleteEntitlement", func(ctx context.Context, tx marketplace.Tx) error { return tx.DeleteEntitlement(ctx, ent.ID) }},
		{"EnqueueApproval", func(ctx context.Context, tx marketplace.Tx) error {
			_, err := tx.EnqueueApproval(ctx, marketplace.ApprovalRequest{EntitlementID: "ent-new", Kind: marketplace.ApprovalEntitlement})
			return err
		}},
		{"DeleteApproval", func(ctx context.Context, tx marketplace.Tx) error {
			return tx.DeleteApproval(ctx, app.EntitlementID, app.Kind)
		}},
		{"RecordPoison", func(ctx context.Context, tx marketplace.Tx) error {
			return tx.RecordPoison(ctx, marketplace.Poison{MessageID: "msg-2", At: base})
		}},
		{"DeletePoison", func(ctx context.Context, tx marketplace.Tx) error { return tx.DeletePoison(ctx, poison.MessageID) }},
		{"AppendTransition", func(ctx context.Context, tx marketplace.Tx) error {
			return tx.AppendTransition(ctx, marketplace.Transition{EntitlementID: "ent-x", AccountID: "acct-1", At: base})
		}},
	}
	err := v.View(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		for _, w := range writes {
			isErr(t, w.call(ctx, tx), marketplace.ErrReadOnly, w.name+" in a View")
		}
		// A refused write leaves the transaction usable, and changed
		// nothing, not even within the transaction.
		requireSeeded(ctx, t, tx, acct, ent, app, poison)
		return nil
	})
	noErr(t, err, "View")
	// Nor after it.
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		requireSeeded(ctx, t, tx, acct, ent, app, poison)
	})
}

func testViewError(t *testing.T, h Harness) {
	_, v := newViewer(t, h)
	errBoom := errors.New("boom")
	err := v.View(context.Background(), func(context.Context, marketplace.Tx) error {
		return fmt.Errorf("reader: %w", errBoom)
	})
	isErr(t, err, errBoom, "View")
	equal(t, err.Error(), "reader: boom", "View returns fn's error unchanged")
	// A not-found read that fn passes on is returned as it is.
	err = v.View(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		_, err := tx.GetAccount(ctx, "acct-missing")
		return err
	})
	isErr(t, err, marketplace.ErrNotFound, "View returning a read's error")
}

func testViewPanic(t *testing.T, h Harness) {
	s, v := newViewer(t, h)
	type panicValue struct{ n int }
	// More panics than a store is likely to have reader connections or
	// lock slots: each must give its own back.
	for i := range 8 {
		var recovered any
		func() {
			defer func() { recovered = recover() }()
			_ = v.View(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
				if _, err := tx.ListAccounts(ctx); err != nil {
					return err
				}
				panic(panicValue{i})
			})
		}()
		equal(t, recovered, any(panicValue{i}), "re-raised panic value")
	}
	// Readers and the writer are both usable afterwards.
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.PutAccount(ctx, marketplace.Account{ID: "acct-1"}), "PutAccount after panicking Views")
	})
	inView(t, v, func(ctx context.Context, tx marketplace.Tx) {
		accts, err := tx.ListAccounts(ctx)
		noErr(t, err, "ListAccounts after panicking Views")
		equal(t, len(accts), 1, "accounts")
	})
}

func testViewContextDone(t *testing.T, h Harness) {
	s, v := newViewer(t, h)
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.PutAccount(ctx, marketplace.Account{ID: "acct-1"}), "PutAccount")
	})
	called := false
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := v.View(ctx, func(context.Context, marketplace.Tx) error {
		called = true
		return nil
	})
	isErr(t, err, context.Canceled, "View with cancelled ctx")
	equal(t, called, false, "fn called")

	ctx, cancel = context.WithDeadline(context.Background(), base)
	defer cancel()
	err = v.View(ctx, func(context.Context, marketplace.Tx) error {
		called = true
		return nil
	})
	isErr(t, err, context.DeadlineExceeded, "View with expired ctx")
	equal(t, called, false, "fn called")

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	err = v.View(ctx, func(ctx context.Context, tx marketplace.Tx) error {
		_, err := tx.GetAccount(ctx, "acct-1")
		noErr(t, err, "GetAccount before cancel")
		cancel()
		_, err = tx.ListAccounts(ctx)
		isErr(t, err, context.Canceled, "ListAccounts after cancel")
		_, err = tx.GetAccount(ctx, "acct-1")
		isErr(t, err, context.Canceled, "GetAccount after cancel")
		return err
	})
	isErr(t, err, context.Canceled, "View")
	// The store is unaffected.
	inView(t, v, func(ctx context.Context, tx marketplace.Tx) {
		_, err := tx.GetAccount(ctx, "acct-1")
		noErr(t, err, "GetAccount in a later View")
	})
}

func testViewTxUnusableAfterEnd(t *testing.T, h Harness) {
	_, v := newViewer(t, h)
	var leaked marketplace.Tx
	inView(t, v, func(_ context.Context, tx marketplace.Tx) { leaked = tx })
	ctx := context.Background()
	_, err := leaked.GetAccount(ctx, "acct-1")
	isErr(t, err, marketplace.ErrTxDone, "GetAccount on an ended View")
	_, err = leaked.ListEntitlements(ctx, marketplace.EntitlementQuery{})
	isErr(t, err, marketplace.ErrTxDone, "ListEntitlements on an ended View")
	_, err = leaked.IsProcessed(ctx, "ev-1")
	isErr(t, err, marketplace.ErrTxDone, "IsProcessed on an ended View")
	if err := leaked.PutAccount(ctx, marketplace.Account{ID: "acct-1"}); err == nil {
		t.Fatal("PutAccount on an ended View: no error")
	}
}

func testViewAfterClose(t *testing.T, h Harness) {
	s, v := newViewer(t, h)
	noErr(t, s.Close(), "Close")
	called := false
	err := v.View(context.Background(), func(context.Context, marketplace.Tx) error {
		called = true
		return nil
	})
	isErr(t, err, marketplace.ErrClosed, "View after Close")
	equal(t, called, false, "fn called after Close")
}

// testViewConcurrentWithWriters runs Views beside writers that change an
// account and an entitlement together. Every View must see the pair from
// one commit (a consistent snapshot), never go back in time, and see a
// writer's commit once its InTx has returned.
func testViewConcurrentWithWriters(t *testing.T, h Harness) {
	s, v := newViewer(t, h)
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.PutAccount(ctx, marketplace.Account{ID: "acct-pair", VendorUserID: "0"}), "PutAccount")
		noErr(t, tx.PutEntitlement(ctx, marketplace.Entitlement{ID: "ent-pair", AccountID: "acct-pair", Plan: "0"}), "PutEntitlement")
	})
	// read returns the pair's counter, checking both halves agree.
	read := func(ctx context.Context, tx marketplace.Tx) (int, error) {
		a, err := tx.GetAccount(ctx, "acct-pair")
		if err != nil {
			return 0, err
		}
		e, err := tx.GetEntitlement(ctx, "ent-pair")
		if err != nil {
			return 0, err
		}
		if a.VendorUserID != e.Plan {
			return 0, fmt.Errorf("torn read: account at %s, entitlement at %s", a.VendorUserID, e.Plan)
		}
		return strconv.Atoi(e.Plan)
	}
	const writers, rounds, viewers = 4, 15, 6
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range viewers {
		readers.Go(func() {
			last := 0
			for {
				select {
				case <-stop:
					return
				default:
				}
				var n int
				err := v.View(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
					var err error
					n, err = read(ctx, tx)
					return err
				})
				if err != nil {
					t.Errorf("View: %v", err)
					return
				}
				if n < last {
					t.Errorf("View went back in time: counter %d after %d", n, last)
					return
				}
				last = n
			}
		})
	}
	var writersWG sync.WaitGroup
	for range writers {
		writersWG.Go(func() {
			for range rounds {
				var wrote int
				err := s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
					if err := tx.Lock(ctx, "acct-pair"); err != nil {
						return err
					}
					n, err := read(ctx, tx)
					if err != nil {
						return err
					}
					wrote = n + 1
					if err := tx.PutAccount(ctx, marketplace.Account{ID: "acct-pair", VendorUserID: strconv.Itoa(wrote)}); err != nil {
						return err
					}
					return tx.PutEntitlement(ctx, marketplace.Entitlement{ID: "ent-pair", AccountID: "acct-pair", Plan: strconv.Itoa(wrote)})
				})
				if err != nil {
					t.Errorf("InTx: %v", err)
					return
				}
				var n int
				err = v.View(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
					var err error
					n, err = read(ctx, tx)
					return err
				})
				if err != nil {
					t.Errorf("View after InTx: %v", err)
					return
				}
				if n < wrote {
					t.Errorf("View after a returned InTx sees counter %d, want at least %d", n, wrote)
					return
				}
			}
		})
	}
	writersWG.Wait()
	close(stop)
	readers.Wait()
	if t.Failed() {
		return
	}
	inView(t, v, func(ctx context.Context, tx marketplace.Tx) {
		n, err := read(ctx, tx)
		noErr(t, err, "final read")
		equal(t, n, writers*rounds, "counter")
	})
}
