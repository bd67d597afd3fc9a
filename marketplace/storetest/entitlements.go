package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

var entitlementCases = []testCase{
	{"RoundTripAllFields", testEntitlementRoundTrip},
	{"GetMissing", testEntitlementMissing},
	{"PutIsUnconditional", testEntitlementPutUnconditional},
	{"AdvanceWhenAbsent", testAdvanceAbsent},
	{"AdvanceOlderIsIgnored", testAdvanceOlder},
	{"AdvanceEqualIsIgnored", testAdvanceEqual},
	{"AdvanceNewerReplacesAllFields", testAdvanceNewer},
	{"AdvanceOverZeroUpdateTime", testAdvanceOverZero},
	{"ListFilters", testEntitlementListFilters},
	{"ParkAndUnpark", testEntitlementParking},
	{"Delete", testEntitlementDelete},
}

// requireEntitlement compares every field, times by instant and in UTC.
func requireEntitlement(t *testing.T, got, want marketplace.Entitlement, what string) {
	t.Helper()
	sameTime(t, got.UpdateTime, want.UpdateTime, what+": UpdateTime")
	sameTime(t, got.ParkedAt, want.ParkedAt, what+": ParkedAt")
	sameTime(t, got.CancelTime, want.CancelTime, what+": CancelTime")
	got.UpdateTime, got.ParkedAt, got.CancelTime = time.Time{}, time.Time{}, time.Time{}
	want.UpdateTime, want.ParkedAt, want.CancelTime = time.Time{}, time.Time{}, time.Time{}
	equal(t, got, want, what)
}

func getEntitlement(t *testing.T, s marketplace.Store, id string) (marketplace.Entitlement, error) {
	t.Helper()
	var e marketplace.Entitlement
	var getErr error
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) { e, getErr = tx.GetEntitlement(ctx, id) })
	return e, getErr
}

func advance(t *testing.T, s marketplace.Store, e marketplace.Entitlement) bool {
	t.Helper()
	return view(t, s, func(ctx context.Context, tx marketplace.Tx) (bool, error) {
		return tx.AdvanceEntitlement(ctx, e)
	})
}

func fullEntitlement() marketplace.Entitlement {
	return marketplace.Entitlement{
		ID:               "ent-0f3a",
		AccountID:        "acct-E-1234",
		Product:          "example-saas.endpoints.example-project.cloud.goog",
		Plan:             "basic",
		PendingPlan:      "premium",
		Offer:            "projects/123/services/example-saas.endpoints.example-project.cloud.goog/privateOffers/offer-1",
		State:            "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL",
		UsageReportingID: "project_number:123456789",
		UpdateTime:       at(3 * time.Second).In(time.FixedZone("CET", 3600)),
		Parked:           true,
		ParkedAt:         at(-time.Minute),
		CancelTime:       at(30 * 24 * time.Hour),
	}
}

func testEntitlementRoundTrip(t *testing.T, h Harness) {
	s := newStore(t, h)
	want := fullEntitlement()
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.PutEntitlement(ctx, want), "PutEntitlement")
	})
	got, err := getEntitlement(t, s, want.ID)
	noErr(t, err, "GetEntitlement")
	requireEntitlement(t, got, want, "entitlement")

	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.PutEntitlement(ctx, marketplace.Entitlement{ID: "ent-zero"}), "PutEntitlement")
	})
	got, err = getEntitlement(t, s, "ent-zero")
	noErr(t, err, "GetEntitlement")
	requireEntitlement(t, got, marketplace.Entitlement{ID: "ent-zero"}, "zero entitlement")
}

func testEntitlementMissing(t *testing.T, h Harness) {
	s := newStore(t, h)
	_, err := getEntitlement(t, s, "ent-nope")
	isErr(t, err, marketplace.ErrNotFound, "GetEntitlement of a missing id")
}

func testEntitlementPutUnconditional(t *testing.T, h Harness) {
	s := newStore(t, h)
	newer := marketplace.Entitlement{ID: "ent-1", Plan: "premium", State: "ENTITLEMENT_ACTIVE", UpdateTime: at(time.Hour)}
	older := marketplace.Entitlement{ID: "ent-1", Plan: "basic", UpdateTime: base}
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.PutEntitlement(ctx, newer), "PutEntitlement newer")
	})
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.PutEntitlement(ctx, older), "PutEntitlement older")
	})
	got, err := getEntitlement(t, s, "ent-1")
	noErr(t, err, "GetEntitlement")
	requireEntitlement(t, got, older, "entitlement after an older Put")
}

func testAdvanceAbsent(t *testing.T, h Harness) {
	s := newStore(t, h)
	e := fullEntitlement()
	equal(t, advance(t, s, e), true, "applied when absent")
	got, err := getEntitlement(t, s, e.ID)
	noErr(t, err, "GetEntitlement")
	requireEntitlement(t, got, e, "entitlement")

	// Even a zero UpdateTime is applied when nothing is stored.
	equal(t, advance(t, s, marketplace.Entitlement{ID: "ent-zero", Plan: "p"}), true, "applied when absent with zero time")
}

func testAdvanceOlder(t *testing.T, h Harness) {
	s := newStore(t, h)
	stored := marketplace.Entitlement{ID: "ent-1", Plan: "premium", State: "ENTITLEMENT_ACTIVE", UpdateTime: base}
	equal(t, advance(t, s, stored), true, "first advance")
	stale := marketplace.Entitlement{ID: "ent-1", Plan: "basic", State: "ENTITLEMENT_ACTIVATION_REQUESTED", UpdateTime: at(-time.Microsecond)}
	equal(t, advance(t, s, stale), false, "applied an older update")
	got, err := getEntitlement(t, s, "ent-1")
	noErr(t, err, "GetEntitlement")
	requireEntitlement(t, got, stored, "entitlement after a stale update")
}

func testAdvanceEqual(t *testing.T, h Harness) {
	s := newStore(t, h)
	stored := marketplace.Entitlement{ID: "ent-1", Plan: "premium", UpdateTime: base}
	equal(t, advance(t, s, stored), true, "first advance")
	// Same instant expressed in another zone: still not strictly after.
	same := marketplace.Entitlement{ID: "ent-1", Plan: "basic", UpdateTime: base.In(time.FixedZone("X", 5400))}
	equal(t, advance(t, s, same), false, "applied an equal update")
	got, err := getEntitlement(t, s, "ent-1")
	noErr(t, err, "GetEntitlement")
	requireEntitlement(t, got, stored, "entitlement after an equal update")
}

func testAdvanceNewer(t *testing.T, h Harness) {
	s := newStore(t, h)
	stored := fullEntitlement()
	equal(t, advance(t, s, stored), true, "first advance")
	newer := marketplace.Entitlement{
		ID:         stored.ID,
		AccountID:  stored.AccountID,
		Product:    stored.Product,
		Plan:       "premium",
		State:      "ENTITLEMENT_ACTIVE",
		UpdateTime: stored.UpdateTime.Add(time.Microsecond),
	}
	equal(t, advance(t, s, newer), true, "applied a newer update")
	got, err := getEntitlement(t, s, stored.ID)
	noErr(t, err, "GetEntitlement")
	// Every field is replaced: PendingPlan, Parked and the times are cleared.
	requireEntitlement(t, got, newer, "entitlement after a newer update")
}

func testAdvanceOverZero(t *testing.T, h Harness) {
	s := newStore(t, h)
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.PutEntitlement(ctx, marketplace.Entitlement{ID: "ent-1", Plan: "local"}), "PutEntitlement")
	})
	equal(t, advance(t, s, marketplace.Entitlement{ID: "ent-1", Plan: "zero-again"}), false, "zero over zero")
	first := marketplace.Entitlement{ID: "ent-1", Plan: "from-google", UpdateTime: time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)}
	equal(t, advance(t, s, first), true, "first real update over a zero UpdateTime")
	got, err := getEntitlement(t, s, "ent-1")
	noErr(t, err, "GetEntitlement")
	requireEntitlement(t, got, first, "entitlement")
}

func testEntitlementListFilters(t *testing.T, h Harness) {
	s := newStore(t, h)
	ents := []marketplace.Entitlement{
		{ID: "e5", AccountID: "a1", State: "ENTITLEMENT_ACTIVE"},
		{ID: "e1", AccountID: "a1", State: "ENTITLEMENT_ACTIVATION_REQUESTED", Parked: true, ParkedAt: base},
		{ID: "e3", AccountID: "a2", State: "ENTITLEMENT_ACTIVE"},
		{ID: "e2", AccountID: "a2", State: "ENTITLEMENT_ACTIVATION_REQUESTED", Parked: true, ParkedAt: base},
		{ID: "e4", AccountID: "a1", State: "ENTITLEMENT_CANCELLED", CancelTime: base},
	}
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		for _, e := range ents {
			noErr(t, tx.PutEntitlement(ctx, e), "PutEntitlement "+e.ID)
		}
	})
	cases := []struct {
		q    marketplace.EntitlementQuery
		want []string
	}{
		{marketplace.EntitlementQuery{}, []string{"e1", "e2", "e3", "e4", "e5"}},
		{marketplace.EntitlementQuery{AccountID: "a1"}, []string{"e1", "e4", "e5"}},
		{marketplace.EntitlementQuery{State: "ENTITLEMENT_ACTIVE"}, []string{"e3", "e5"}},
		{marketplace.EntitlementQuery{ParkedOnly: true}, []string{"e1", "e2"}},
		{marketplace.EntitlementQuery{AccountID: "a2", ParkedOnly: true}, []string{"e2"}},
		{marketplace.EntitlementQuery{AccountID: "a1", State: "ENTITLEMENT_ACTIVE"}, []string{"e5"}},
		{marketplace.EntitlementQuery{AccountID: "a2", State: "ENTITLEMENT_CANCELLED"}, nil},
		{marketplace.EntitlementQuery{AccountID: "a9"}, nil},
	}
	for _, c := range cases {
		got := view(t, s, func(ctx context.Context, tx marketplace.Tx) ([]marketplace.Entitlement, error) {
			return tx.ListEntitlements(ctx, c.q)
		})
		ids := make([]string, len(got))
		for i, e := range got {
			ids[i] = e.ID
		}
		equal(t, len(ids), len(c.want), "number of results for "+queryString(c.q))
		for i := range ids {
			equal(t, ids[i], c.want[i], "result order for "+queryString(c.q))
		}
		// Listed records are complete, not just ids.
		for _, g := range got {
			for _, e := range ents {
				if e.ID == g.ID {
					requireEntitlement(t, g, e, "listed "+g.ID)
				}
			}
		}
	}
}

func queryString(q marketplace.EntitlementQuery) string {
	s := "{AccountID:" + q.AccountID + " State:" + string(q.State)
	if q.ParkedOnly {
		s += " ParkedOnly"
	}
	return s + "}"
}

// testEntitlementParking walks the parking life cycle: an entitlement
// requested before its account signed up is parked, found through
// ParkedOnly, and released when the account is approved.
func testEntitlementParking(t *testing.T, h Harness) {
	s := newStore(t, h)
	parked := marketplace.Entitlement{ID: "ent-1", AccountID: "acct-1", State: "ENTITLEMENT_ACTIVATION_REQUESTED", UpdateTime: base, Parked: true, ParkedAt: at(time.Second)}
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		applied, err := tx.AdvanceEntitlement(ctx, parked)
		noErr(t, err, "AdvanceEntitlement")
		equal(t, applied, true, "applied")
		noErr(t, tx.PutEntitlement(ctx, marketplace.Entitlement{ID: "ent-2", AccountID: "acct-1", State: "ENTITLEMENT_ACTIVE"}), "PutEntitlement")
	})
	list := func() []marketplace.Entitlement {
		return view(t, s, func(ctx context.Context, tx marketplace.Tx) ([]marketplace.Entitlement, error) {
			return tx.ListEntitlements(ctx, marketplace.EntitlementQuery{AccountID: "acct-1", ParkedOnly: true})
		})
	}
	got := list()
	equal(t, len(got), 1, "parked entitlements")
	requireEntitlement(t, got[0], parked, "parked entitlement")

	// Sign-up completes: the app unparks within the account's transaction.
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.Lock(ctx, "acct-1"), "Lock")
		noErr(t, tx.PutAccount(ctx, marketplace.Account{ID: "acct-1", SignupApproved: true}), "PutAccount")
		ents, err := tx.ListEntitlements(ctx, marketplace.EntitlementQuery{AccountID: "acct-1", ParkedOnly: true})
		noErr(t, err, "ListEntitlements")
		for _, e := range ents {
			e.Parked, e.ParkedAt = false, time.Time{}
			noErr(t, tx.PutEntitlement(ctx, e), "PutEntitlement")
		}
	})
	equal(t, len(list()), 0, "parked entitlements after unparking")
	e, err := getEntitlement(t, s, "ent-1")
	noErr(t, err, "GetEntitlement")
	want := parked
	want.Parked, want.ParkedAt = false, time.Time{}
	requireEntitlement(t, e, want, "unparked entitlement")
}

func testEntitlementDelete(t *testing.T, h Harness) {
	s := newStore(t, h)
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.PutEntitlement(ctx, marketplace.Entitlement{ID: "ent-1", UpdateTime: at(time.Hour)}), "PutEntitlement")
		noErr(t, tx.PutEntitlement(ctx, marketplace.Entitlement{ID: "ent-2"}), "PutEntitlement")
	})
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.DeleteEntitlement(ctx, "ent-1"), "DeleteEntitlement")
		noErr(t, tx.DeleteEntitlement(ctx, "ent-1"), "DeleteEntitlement again")
		noErr(t, tx.DeleteEntitlement(ctx, "ent-never"), "DeleteEntitlement of an absent id")
	})
	_, err := getEntitlement(t, s, "ent-1")
	isErr(t, err, marketplace.ErrNotFound, "GetEntitlement after delete")
	// A deleted entitlement no longer guards: any update applies again.
	equal(t, advance(t, s, marketplace.Entitlement{ID: "ent-1", UpdateTime: base}), true, "advance after delete")
	ents := view(t, s, func(ctx context.Context, tx marketplace.Tx) ([]marketplace.Entitlement, error) {
		return tx.ListEntitlements(ctx, marketplace.EntitlementQuery{})
	})
	equal(t, len(ents), 2, "entitlements")
}
