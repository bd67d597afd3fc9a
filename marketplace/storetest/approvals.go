package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

var approvalCases = []testCase{
	{"FIFO", testApprovalFIFO},
	{"EnqueueExistingKeepsPlace", testApprovalIdempotent},
	{"KindsAreSeparateEntries", testApprovalKinds},
	{"DeleteAndRequeue", testApprovalDelete},
	{"GetMissing", testApprovalMissing},
}

func requireApproval(t *testing.T, got, want marketplace.ApprovalRequest, what string) {
	t.Helper()
	sameTime(t, got.RequestedAt, want.RequestedAt, what+": RequestedAt")
	got.RequestedAt, want.RequestedAt = time.Time{}, time.Time{}
	equal(t, got, want, what)
}

func enqueue(t *testing.T, s marketplace.Store, r marketplace.ApprovalRequest) marketplace.ApprovalRequest {
	t.Helper()
	return view(t, s, func(ctx context.Context, tx marketplace.Tx) (marketplace.ApprovalRequest, error) {
		return tx.EnqueueApproval(ctx, r)
	})
}

func listApprovals(t *testing.T, s marketplace.Store) []marketplace.ApprovalRequest {
	t.Helper()
	return view(t, s, func(ctx context.Context, tx marketplace.Tx) ([]marketplace.ApprovalRequest, error) {
		return tx.ListApprovals(ctx)
	})
}

func approvalIDs(rs []marketplace.ApprovalRequest) []string {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.EntitlementID + "/" + string(r.Kind)
	}
	return ids
}

func equalStrings(t *testing.T, got, want []string, what string) {
	t.Helper()
	equal(t, len(got), len(want), what+": length")
	for i := range got {
		equal(t, got[i], want[i], what)
	}
}

func testApprovalFIFO(t *testing.T, h Harness) {
	s := newStore(t, h)
	equal(t, len(listApprovals(t, s)), 0, "empty queue")
	// Ids deliberately out of lexical order: the queue is by arrival.
	reqs := []marketplace.ApprovalRequest{
		{EntitlementID: "ent-c", Kind: marketplace.ApprovalEntitlement, AccountID: "acct-1", Plan: "basic", RequestedAt: base},
		{EntitlementID: "ent-a", Kind: marketplace.ApprovalPlanChange, AccountID: "acct-2", Plan: "premium", RequestedAt: at(time.Second).In(time.FixedZone("X", -3600))},
		{EntitlementID: "ent-b", Kind: marketplace.ApprovalEntitlement, AccountID: "acct-1", Plan: "basic", RequestedAt: at(-time.Hour)},
	}
	var prev int64
	for i, r := range reqs {
		got := enqueue(t, s, r)
		if got.Seq <= prev {
			t.Fatalf("Seq of request %d = %d, want > %d", i, got.Seq, prev)
		}
		prev = got.Seq
		reqs[i].Seq = got.Seq
		requireApproval(t, got, reqs[i], "enqueued request")
	}
	got := listApprovals(t, s)
	equal(t, len(got), 3, "queue length")
	for i := range reqs {
		requireApproval(t, got[i], reqs[i], "queued request")
	}
	one := view(t, s, func(ctx context.Context, tx marketplace.Tx) (marketplace.ApprovalRequest, error) {
		return tx.GetApproval(ctx, "ent-a", marketplace.ApprovalPlanChange)
	})
	requireApproval(t, one, reqs[1], "GetApproval")
}

func testApprovalIdempotent(t *testing.T, h Harness) {
	s := newStore(t, h)
	first := enqueue(t, s, marketplace.ApprovalRequest{EntitlementID: "ent-1", Kind: marketplace.ApprovalPlanChange, AccountID: "acct-1", Plan: "premium", RequestedAt: base})
	second := enqueue(t, s, marketplace.ApprovalRequest{EntitlementID: "ent-2", Kind: marketplace.ApprovalPlanChange, AccountID: "acct-1", Plan: "basic", RequestedAt: base})
	// Redelivery, or the customer changed the requested plan again.
	again := marketplace.ApprovalRequest{EntitlementID: "ent-1", Kind: marketplace.ApprovalPlanChange, AccountID: "acct-1", Plan: "enterprise", RequestedAt: at(time.Minute)}
	got := enqueue(t, s, again)
	again.Seq = first.Seq
	requireApproval(t, got, again, "re-enqueued request")
	q := listApprovals(t, s)
	equalStrings(t, approvalIDs(q), []string{"ent-1/plan_change", "ent-2/plan_change"}, "queue")
	requireApproval(t, q[0], again, "first in queue")
	requireApproval(t, q[1], second, "second in queue")
}

func testApprovalKinds(t *testing.T, h Harness) {
	s := newStore(t, h)
	a := enqueue(t, s, marketplace.ApprovalRequest{EntitlementID: "ent-1", Kind: marketplace.ApprovalEntitlement, Plan: "basic"})
	b := enqueue(t, s, marketplace.ApprovalRequest{EntitlementID: "ent-1", Kind: marketplace.ApprovalPlanChange, Plan: "premium"})
	if a.Seq == b.Seq {
		t.Fatalf("two kinds for one entitlement share Seq %d", a.Seq)
	}
	equalStrings(t, approvalIDs(listApprovals(t, s)), []string{"ent-1/entitlement", "ent-1/plan_change"}, "queue")
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.DeleteApproval(ctx, "ent-1", marketplace.ApprovalEntitlement), "DeleteApproval")
	})
	q := listApprovals(t, s)
	equal(t, len(q), 1, "queue length")
	requireApproval(t, q[0], b, "remaining request")
}

func testApprovalDelete(t *testing.T, h Harness) {
	s := newStore(t, h)
	a := enqueue(t, s, marketplace.ApprovalRequest{EntitlementID: "ent-a", Kind: marketplace.ApprovalEntitlement})
	enqueue(t, s, marketplace.ApprovalRequest{EntitlementID: "ent-b", Kind: marketplace.ApprovalEntitlement})
	c := enqueue(t, s, marketplace.ApprovalRequest{EntitlementID: "ent-c", Kind: marketplace.ApprovalEntitlement})
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.DeleteApproval(ctx, "ent-b", marketplace.ApprovalEntitlement), "DeleteApproval")
		noErr(t, tx.DeleteApproval(ctx, "ent-b", marketplace.ApprovalEntitlement), "DeleteApproval again")
		noErr(t, tx.DeleteApproval(ctx, "ent-never", marketplace.ApprovalEntitlement), "DeleteApproval of an absent key")
	})
	equalStrings(t, approvalIDs(listApprovals(t, s)), []string{"ent-a/entitlement", "ent-c/entitlement"}, "queue after delete")
	// Requeued after deletion: it goes to the back, with a Seq never used before.
	b2 := enqueue(t, s, marketplace.ApprovalRequest{EntitlementID: "ent-b", Kind: marketplace.ApprovalEntitlement})
	if b2.Seq <= c.Seq || b2.Seq <= a.Seq {
		t.Fatalf("requeued Seq %d not after %d and %d", b2.Seq, a.Seq, c.Seq)
	}
	equalStrings(t, approvalIDs(listApprovals(t, s)), []string{"ent-a/entitlement", "ent-c/entitlement", "ent-b/entitlement"}, "queue after requeue")
}

func testApprovalMissing(t *testing.T, h Harness) {
	s := newStore(t, h)
	enqueue(t, s, marketplace.ApprovalRequest{EntitlementID: "ent-1", Kind: marketplace.ApprovalEntitlement})
	err := s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		_, err := tx.GetApproval(ctx, "ent-1", marketplace.ApprovalPlanChange)
		return err
	})
	isErr(t, err, marketplace.ErrNotFound, "GetApproval of a missing key")
}
