package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

var historyCases = []testCase{
	{"RoundTripInOrder", testHistoryRoundTrip},
	{"QueryAndLimit", testHistoryQuery},
	{"RolledBackNotKept", testHistoryRollback},
	{"DeletedWithAccount", testHistoryDeletedWithAccount},
	{"EmptyEntitlementID", testHistoryInvalid},
}

func listHistory(t *testing.T, s marketplace.Store, q marketplace.HistoryQuery) []marketplace.Transition {
	t.Helper()
	return view(t, s, func(ctx context.Context, tx marketplace.Tx) ([]marketplace.Transition, error) {
		return tx.ListTransitions(ctx, q)
	})
}

func appendHistory(t *testing.T, s marketplace.Store, trs ...marketplace.Transition) {
	t.Helper()
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		for _, tr := range trs {
			noErr(t, tx.AppendTransition(ctx, tr), "AppendTransition")
		}
	})
}

// hist is a transition of entitlement ent of account acct, told apart by
// its event id.
func hist(acct, ent, eventID string) marketplace.Transition {
	return marketplace.Transition{EntitlementID: ent, AccountID: acct, At: base, Source: "message", EventID: eventID}
}

func historyEvents(trs []marketplace.Transition) []string {
	out := make([]string, len(trs))
	for i, tr := range trs {
		out[i] = tr.EventID
	}
	return out
}

func testHistoryRoundTrip(t *testing.T, h Harness) {
	s := newStore(t, h)
	equal(t, len(listHistory(t, s, marketplace.HistoryQuery{})), 0, "empty history")
	full := marketplace.Transition{
		Seq: 999, EntitlementID: "ent-1", AccountID: "acct-1", At: at(time.Minute).In(time.FixedZone("X", 3600)),
		Change: events.TypeEntitlementPlanChanged, FromState: procurement.EntitlementPendingPlanChangeApproval,
		ToState: procurement.EntitlementActive, FromPlan: "basic", ToPlan: "premium", Source: "operator", EventID: "ev-1",
	}
	first := marketplace.Transition{EntitlementID: "ent-1", AccountID: "acct-1", At: base,
		Change: events.TypeEntitlementCreationRequested, ToState: procurement.EntitlementActivationRequested, ToPlan: "basic", Source: "signup"}
	appendHistory(t, s, first)
	appendHistory(t, s, full)
	got := listHistory(t, s, marketplace.HistoryQuery{})
	equal(t, len(got), 2, "transitions")
	if got[0].Seq <= 0 || got[1].Seq <= got[0].Seq {
		t.Fatalf("Seq: got %d then %d, want positive and increasing", got[0].Seq, got[1].Seq)
	}
	sameTime(t, got[1].At, full.At, "At")
	got[1].At, full.Seq = full.At, got[1].Seq
	equal(t, got[1], full, "second transition, every field")
	sameTime(t, got[0].At, base, "first At")
	first.Seq = got[0].Seq
	equal(t, got[0], first, "first transition (empty from-state and event id)")
}

func testHistoryQuery(t *testing.T, h Harness) {
	s := newStore(t, h)
	appendHistory(t, s, hist("acct-1", "ent-1", "e1"), hist("acct-2", "ent-2", "e2"))
	appendHistory(t, s, hist("acct-1", "ent-3", "e3"), hist("acct-1", "ent-1", "e4"))
	appendHistory(t, s, hist("acct-2", "ent-2", "e5"))
	cases := []struct {
		q    marketplace.HistoryQuery
		want []string
	}{
		{marketplace.HistoryQuery{}, []string{"e1", "e2", "e3", "e4", "e5"}},
		{marketplace.HistoryQuery{AccountID: "acct-1"}, []string{"e1", "e3", "e4"}},
		{marketplace.HistoryQuery{EntitlementID: "ent-1"}, []string{"e1", "e4"}},
		{marketplace.HistoryQuery{AccountID: "acct-2", EntitlementID: "ent-2"}, []string{"e2", "e5"}},
		{marketplace.HistoryQuery{AccountID: "acct-2", EntitlementID: "ent-1"}, []string{}},
		{marketplace.HistoryQuery{AccountID: "nobody"}, []string{}},
		{marketplace.HistoryQuery{Limit: 2}, []string{"e4", "e5"}},
		{marketplace.HistoryQuery{AccountID: "acct-1", Limit: 2}, []string{"e3", "e4"}},
		{marketplace.HistoryQuery{EntitlementID: "ent-2", Limit: 10}, []string{"e2", "e5"}},
		{marketplace.HistoryQuery{Limit: -1}, []string{"e1", "e2", "e3", "e4", "e5"}},
	}
	for _, c := range cases {
		equalStrings(t, historyEvents(listHistory(t, s, c.q)), c.want, "ListTransitions")
	}
}

func testHistoryRollback(t *testing.T, h Harness) {
	s := newStore(t, h)
	appendHistory(t, s, hist("acct-1", "ent-1", "kept"))
	boom := errors.New("boom")
	err := s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		noErr(t, tx.AppendTransition(ctx, hist("acct-1", "ent-1", "rolled-back")), "AppendTransition")
		return boom
	})
	isErr(t, err, boom, "InTx")
	appendHistory(t, s, hist("acct-1", "ent-1", "after"))
	got := listHistory(t, s, marketplace.HistoryQuery{})
	equalStrings(t, historyEvents(got), []string{"kept", "after"}, "history after a rollback")
	if got[1].Seq <= got[0].Seq {
		t.Fatalf("Seq after a rollback: got %d then %d, want increasing", got[0].Seq, got[1].Seq)
	}
}

func testHistoryDeletedWithAccount(t *testing.T, h Harness) {
	s := newStore(t, h)
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.PutAccount(ctx, marketplace.Account{ID: "acct-1", UpdateTime: base, CreatedAt: base}), "PutAccount")
	})
	appendHistory(t, s, hist("acct-1", "ent-1", "e1"), hist("acct-2", "ent-2", "e2"), hist("acct-1", "ent-3", "e3"))
	// The account purged is deleted whether it was stored or only its
	// entitlements were.
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.DeleteAccount(ctx, "acct-1"), "DeleteAccount")
	})
	equalStrings(t, historyEvents(listHistory(t, s, marketplace.HistoryQuery{})), []string{"e2"}, "history after DeleteAccount(acct-1)")
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.DeleteAccount(ctx, "acct-2"), "DeleteAccount of an account never stored")
	})
	equal(t, len(listHistory(t, s, marketplace.HistoryQuery{})), 0, "history after DeleteAccount(acct-2)")
}

func testHistoryInvalid(t *testing.T, h Harness) {
	s := newStore(t, h)
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		isErr(t, tx.AppendTransition(ctx, marketplace.Transition{AccountID: "acct-1", At: base}), marketplace.ErrInvalid, "AppendTransition without EntitlementID")
		// The transaction stays usable.
		noErr(t, tx.AppendTransition(ctx, hist("acct-1", "ent-1", "e1")), "AppendTransition after ErrInvalid")
	})
	equal(t, len(listHistory(t, s, marketplace.HistoryQuery{})), 1, "transitions")
}
