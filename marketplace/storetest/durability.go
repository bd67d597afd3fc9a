package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

var durabilityCases = []testCase{
	{"ReopenKeepsEverything", testReopenKeepsEverything},
	{"ReopenDropsRolledBack", testReopenDropsRolledBack},
}

func reopen(t *testing.T, h Harness, s marketplace.Store) marketplace.Store {
	t.Helper()
	if h.Reopen == nil {
		t.Skip("store is not durable (Harness.Reopen is nil)")
	}
	r := h.Reopen(t, s)
	if r == nil {
		t.Fatal("storetest: Harness.Reopen returned nil")
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close reopened store: %v", err)
		}
	})
	return r
}

func testReopenKeepsEverything(t *testing.T, h Harness) {
	if h.Reopen == nil {
		t.Skip("store is not durable (Harness.Reopen is nil)")
	}
	s := newStore(t, h)
	acct := marketplace.Account{ID: "acct-1", SignupApproved: true, VendorUserID: "tenant-1", UserIdentity: "uid", UpdateTime: base, CreatedAt: at(-time.Hour)}
	ent := fullEntitlement()
	app := marketplace.ApprovalRequest{EntitlementID: ent.ID, Kind: marketplace.ApprovalPlanChange, AccountID: acct.ID, Plan: "premium", RequestedAt: at(time.Second)}
	poison := marketplace.Poison{MessageID: "m1", EventID: "ev-9", Reason: "r", Data: []byte("payload"), At: at(time.Minute)}
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		_, err := tx.MarkProcessed(ctx, "ev-1", base)
		noErr(t, err, "MarkProcessed")
		noErr(t, tx.PutAccount(ctx, acct), "PutAccount")
		noErr(t, tx.PutEntitlement(ctx, ent), "PutEntitlement")
		app, err = tx.EnqueueApproval(ctx, app)
		noErr(t, err, "EnqueueApproval")
		noErr(t, tx.RecordPoison(ctx, poison), "RecordPoison")
	})

	r := reopen(t, h, s)
	inTx(t, r, func(ctx context.Context, tx marketplace.Tx) {
		first, err := tx.MarkProcessed(ctx, "ev-1", base)
		noErr(t, err, "MarkProcessed")
		equal(t, first, false, "MarkProcessed of an id processed before reopening")
		a, err := tx.GetAccount(ctx, acct.ID)
		noErr(t, err, "GetAccount")
		requireAccount(t, a, acct, "account")
		e, err := tx.GetEntitlement(ctx, ent.ID)
		noErr(t, err, "GetEntitlement")
		requireEntitlement(t, e, ent, "entitlement")
		apps, err := tx.ListApprovals(ctx)
		noErr(t, err, "ListApprovals")
		equal(t, len(apps), 1, "approvals")
		requireApproval(t, apps[0], app, "approval")
		ps, err := tx.ListPoison(ctx, 0)
		noErr(t, err, "ListPoison")
		equal(t, len(ps), 1, "poison")
		equal(t, string(ps[0].Data), "payload", "poison Data")
		sameTime(t, ps[0].At, poison.At, "poison At")
		// The approval sequence continues after the old one.
		next, err := tx.EnqueueApproval(ctx, marketplace.ApprovalRequest{EntitlementID: "ent-2", Kind: marketplace.ApprovalEntitlement})
		noErr(t, err, "EnqueueApproval")
		if next.Seq <= app.Seq {
			t.Fatalf("Seq after reopen %d, want > %d", next.Seq, app.Seq)
		}
	})
}

func testReopenDropsRolledBack(t *testing.T, h Harness) {
	if h.Reopen == nil {
		t.Skip("store is not durable (Harness.Reopen is nil)")
	}
	s := newStore(t, h)
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.PutAccount(ctx, marketplace.Account{ID: "acct-kept"}), "PutAccount")
	})
	errAbort := errors.New("abort")
	err := s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		noErr(t, tx.PutAccount(ctx, marketplace.Account{ID: "acct-dropped"}), "PutAccount")
		return errAbort
	})
	isErr(t, err, errAbort, "InTx")
	r := reopen(t, h, s)
	accts := view(t, r, func(ctx context.Context, tx marketplace.Tx) ([]marketplace.Account, error) {
		return tx.ListAccounts(ctx)
	})
	equal(t, len(accts), 1, "accounts after reopen")
	equal(t, accts[0].ID, "acct-kept", "account kept")
}
