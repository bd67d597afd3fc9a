package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

var poisonCases = []testCase{
	{"NewestFirstWithLimit", testPoisonOrder},
	{"RoundTripAndDataPrefix", testPoisonData},
	{"Delete", testPoisonDelete},
}

func listPoison(t *testing.T, s marketplace.Store, limit int) []marketplace.Poison {
	t.Helper()
	return view(t, s, func(ctx context.Context, tx marketplace.Tx) ([]marketplace.Poison, error) {
		return tx.ListPoison(ctx, limit)
	})
}

func poisonIDs(ps []marketplace.Poison) []string {
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.MessageID
	}
	return ids
}

func testPoisonOrder(t *testing.T, h Harness) {
	s := newStore(t, h)
	equal(t, len(listPoison(t, s, 0)), 0, "empty")
	// Recorded out of time order.
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		for _, p := range []marketplace.Poison{
			{MessageID: "m2", At: at(2 * time.Second)},
			{MessageID: "m4", At: at(4 * time.Second)},
			{MessageID: "m1", At: at(time.Second)},
		} {
			noErr(t, tx.RecordPoison(ctx, p), "RecordPoison")
		}
	})
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.RecordPoison(ctx, marketplace.Poison{MessageID: "m3", At: at(3 * time.Second)}), "RecordPoison")
	})
	equalStrings(t, poisonIDs(listPoison(t, s, 0)), []string{"m4", "m3", "m2", "m1"}, "all, newest first")
	equalStrings(t, poisonIDs(listPoison(t, s, -1)), []string{"m4", "m3", "m2", "m1"}, "negative limit")
	equalStrings(t, poisonIDs(listPoison(t, s, 2)), []string{"m4", "m3"}, "limit 2")
	equalStrings(t, poisonIDs(listPoison(t, s, 10)), []string{"m4", "m3", "m2", "m1"}, "limit above count")
}

func testPoisonData(t *testing.T, h Harness) {
	s := newStore(t, h)
	small := marketplace.Poison{MessageID: "m1", EventID: "ev-1", Reason: "unknown event type \"X\"", Data: []byte(`{"eventType":"X"}`), At: base.In(time.FixedZone("X", 7200))}
	big := make([]byte, 3*marketplace.PoisonDataLimit)
	for i := range big {
		big[i] = byte(i % 251)
	}
	caller := bytes.Clone(big)
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.RecordPoison(ctx, small), "RecordPoison")
		noErr(t, tx.RecordPoison(ctx, marketplace.Poison{MessageID: "m2", Reason: "undecodable", Data: caller, At: at(time.Second)}), "RecordPoison")
		noErr(t, tx.RecordPoison(ctx, marketplace.Poison{MessageID: "m0", At: at(-time.Second)}), "RecordPoison")
	})
	caller[0] ^= 0xff // the store must not alias the caller's buffer

	got := listPoison(t, s, 0)
	equal(t, len(got), 3, "poison count")
	equal(t, got[0].MessageID, "m2", "newest")
	equal(t, got[0].Reason, "undecodable", "Reason")
	equal(t, got[0].EventID, "", "EventID of an undecodable message")
	if n := len(got[0].Data); n < marketplace.PoisonDataLimit || !bytes.Equal(got[0].Data, big[:n]) {
		t.Fatalf("Data: got %d bytes (prefix match %v), want a prefix of the payload of at least %d bytes",
			n, bytes.HasPrefix(big, got[0].Data), marketplace.PoisonDataLimit)
	}
	sameTime(t, got[1].At, small.At, "At")
	equal(t, got[1].MessageID, small.MessageID, "MessageID")
	equal(t, got[1].EventID, small.EventID, "EventID")
	equal(t, got[1].Reason, small.Reason, "Reason")
	equal(t, string(got[1].Data), string(small.Data), "Data")
	equal(t, len(got[2].Data), 0, "empty Data")

	// Returned slices are copies too.
	got[1].Data[0] = 'Z'
	again := listPoison(t, s, 0)
	equal(t, string(again[1].Data), string(small.Data), "Data after mutating a returned copy")
}

func testPoisonDelete(t *testing.T, h Harness) {
	s := newStore(t, h)
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		for _, p := range []marketplace.Poison{
			{MessageID: "m1", At: at(time.Second)},
			{MessageID: "m2", At: at(2 * time.Second)},
			{MessageID: "m1", Reason: "again", At: at(3 * time.Second)}, // recorded twice
		} {
			noErr(t, tx.RecordPoison(ctx, p), "RecordPoison")
		}
	})
	inTx(t, s, func(ctx context.Context, tx marketplace.Tx) {
		noErr(t, tx.DeletePoison(ctx, "m1"), "DeletePoison")
		noErr(t, tx.DeletePoison(ctx, "absent"), "DeletePoison of an absent message")
	})
	equalStrings(t, poisonIDs(listPoison(t, s, 0)), []string{"m2"}, "after DeletePoison(m1)")

	// A rolled back delete leaves the record.
	errRollback := errors.New("deliberate rollback")
	err := s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		noErr(t, tx.DeletePoison(ctx, "m2"), "DeletePoison")
		return errRollback
	})
	isErr(t, err, errRollback, "InTx")
	equalStrings(t, poisonIDs(listPoison(t, s, 0)), []string{"m2"}, "after a rolled back DeletePoison")
}
