package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

var accountCases = []testCase{
	{"RoundTripAllFields", testAccountRoundTrip},
	{"UpsertReplaces", testAccountUpsert},
	{"GetMissing", testAccountMissing},
	{"Delete", testAccountDelete},
	{"ListSortedByID", testAccountList},
}

// requireAccount compares every field, times by instant and in UTC.
func requireAccount(t *testing.T, got, want marketplace.Account, what string) {
	t.Helper()
	sameTime(t, got.UpdateTime, want.UpdateTime, what+": UpdateTime")
	sameTime(t, got.CreatedAt, want.CreatedAt, what+": CreatedAt")
	got.UpdateTime, got.CreatedAt = time.Time{}, time.Time{}
	want.UpdateTime, want.CreatedAt = time.Time{}, time.Time{}
	equal(t, got, want, what)
}

func getAccount(t *testing.T, s marketplace.Store, id string) (marketplace.Account, error) {
	t.Helper()
	var a marketplace.Account
	var getErr error
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) { a, getErr = tx.GetAccount(ctx, id) })
	return a, getErr
}

func testAccountRoundTrip(t *testing.T, h Harness) {
	s := newStore(t, h)
	tokyo := time.FixedZone("JST", 9*3600)
	want := marketplace.Account{
		ID:             "acct-E-1234",
		SignupApproved: true,
		VendorUserID:   "tenant-ü-42", // non-ASCII survives
		UserIdentity:   "117000000000000000001",
		UpdateTime:     at(time.Minute).In(tokyo),
		CreatedAt:      at(-time.Hour),
	}
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.PutAccount(ctx, want), "PutAccount")
	})
	got, err := getAccount(t, s, want.ID)
	noErr(t, err, "GetAccount")
	requireAccount(t, got, want, "account")
	equal(t, got.UpdateTime.Location(), time.UTC, "UpdateTime location")

	// Zero values round-trip as zero values.
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.PutAccount(ctx, marketplace.Account{ID: "acct-zero"}), "PutAccount")
	})
	got, err = getAccount(t, s, "acct-zero")
	noErr(t, err, "GetAccount")
	equal(t, got.UpdateTime.IsZero(), true, "zero UpdateTime")
	equal(t, got.CreatedAt.IsZero(), true, "zero CreatedAt")
	requireAccount(t, got, marketplace.Account{ID: "acct-zero"}, "zero account")
}

func testAccountUpsert(t *testing.T, h Harness) {
	s := newStore(t, h)
	first := marketplace.Account{ID: "acct-1", UserIdentity: "uid-1", UpdateTime: base, CreatedAt: base}
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.PutAccount(ctx, first), "PutAccount")
	})
	// Linking at sign-up: the app supplies its own tenant id.
	linked := first
	linked.SignupApproved = true
	linked.VendorUserID = "tenant-7"
	linked.UpdateTime = at(time.Second)
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.PutAccount(ctx, linked), "PutAccount")
	})
	got, err := getAccount(t, s, "acct-1")
	noErr(t, err, "GetAccount")
	requireAccount(t, got, linked, "linked account")

	// Put replaces every field, including clearing the link.
	unlinked := marketplace.Account{ID: "acct-1"}
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.PutAccount(ctx, unlinked), "PutAccount")
	})
	got, err = getAccount(t, s, "acct-1")
	noErr(t, err, "GetAccount")
	requireAccount(t, got, unlinked, "replaced account")
}

func testAccountMissing(t *testing.T, h Harness) {
	s := newStore(t, h)
	_, err := getAccount(t, s, "acct-nope")
	isErr(t, err, marketplace.ErrNotFound, "GetAccount of a missing id")
}

func testAccountDelete(t *testing.T, h Harness) {
	s := newStore(t, h)
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.PutAccount(ctx, marketplace.Account{ID: "acct-1"}), "PutAccount")
		noErr(t, tx.PutAccount(ctx, marketplace.Account{ID: "acct-2"}), "PutAccount")
	})
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.DeleteAccount(ctx, "acct-1"), "DeleteAccount")
		noErr(t, tx.DeleteAccount(ctx, "acct-1"), "DeleteAccount again")
		noErr(t, tx.DeleteAccount(ctx, "acct-never"), "DeleteAccount of an absent id")
	})
	_, err := getAccount(t, s, "acct-1")
	isErr(t, err, marketplace.ErrNotFound, "GetAccount after delete")
	a, err := getAccount(t, s, "acct-2")
	noErr(t, err, "GetAccount of the other account")
	equal(t, a.ID, "acct-2", "other account")
}

func testAccountList(t *testing.T, h Harness) {
	s := newStore(t, h)
	empty := view(t, s, func(ctx context.Context, tx marketplace.Tx) ([]marketplace.Account, error) {
		return tx.ListAccounts(ctx)
	})
	equal(t, len(empty), 0, "accounts in an empty store")
	ids := []string{"b", "a-2", "C", "a-10", "a"}
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		for _, id := range ids {
			noErr(t, tx.PutAccount(ctx, marketplace.Account{ID: id, VendorUserID: "v-" + id}), "PutAccount")
		}
	})
	got := view(t, s, func(ctx context.Context, tx marketplace.Tx) ([]marketplace.Account, error) {
		return tx.ListAccounts(ctx)
	})
	want := []string{"C", "a", "a-10", "a-2", "b"} // byte order
	equal(t, len(got), len(want), "number of accounts")
	for i := range want {
		equal(t, got[i].ID, want[i], "account order")
		equal(t, got[i].VendorUserID, "v-"+want[i], "account fields")
	}
}
