package storetest

import (
	"context"
	"sync"
	"testing"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

// Cases for marketplace.OriginRecorder, skipped for stores without it.
var originCases = []testCase{
	{"FirstRecordWins", testOriginFirstRecordWins},
	{"RefusesEmpty", testOriginRefusesEmpty},
	{"ConcurrentFirstRecords", testOriginConcurrentFirstRecords},
	{"SurvivesReopen", testOriginSurvivesReopen},
	{"AfterClose", testOriginAfterClose},
}

var (
	originGoogle   = marketplace.Origin{ProviderID: "acme", Endpoint: marketplace.OriginGoogle}
	originEmulator = marketplace.Origin{ProviderID: "acme", Endpoint: "http://127.0.0.1:4242"}
	originOther    = marketplace.Origin{ProviderID: "other", Endpoint: marketplace.OriginGoogle}
)

func originRecorder(t *testing.T, s marketplace.Store) marketplace.OriginRecorder {
	t.Helper()
	r, ok := s.(marketplace.OriginRecorder)
	if !ok {
		t.Skip("store does not implement marketplace.OriginRecorder")
	}
	return r
}

func recordOrigin(t *testing.T, r marketplace.OriginRecorder, o marketplace.Origin) marketplace.Origin {
	t.Helper()
	got, err := r.RecordOrigin(context.Background(), o)
	noErr(t, err, "RecordOrigin")
	return got
}

func testOriginFirstRecordWins(t *testing.T, h Harness) {
	r := originRecorder(t, newStore(t, h))
	equal(t, recordOrigin(t, r, originGoogle), originGoogle, "first RecordOrigin")
	equal(t, recordOrigin(t, r, originGoogle), originGoogle, "RecordOrigin of the same origin")
	equal(t, recordOrigin(t, r, originEmulator), originGoogle, "RecordOrigin of another endpoint returns the recorded one")
	equal(t, recordOrigin(t, r, originOther), originGoogle, "RecordOrigin of another provider returns the recorded one")
}

func testOriginRefusesEmpty(t *testing.T, h Harness) {
	r := originRecorder(t, newStore(t, h))
	for _, o := range []marketplace.Origin{{}, {ProviderID: "acme"}, {Endpoint: marketplace.OriginGoogle}} {
		_, err := r.RecordOrigin(context.Background(), o)
		isErr(t, err, marketplace.ErrInvalid, "RecordOrigin of an empty field")
	}
	equal(t, recordOrigin(t, r, originEmulator), originEmulator, "RecordOrigin after refused ones records")
}

// Replicas starting together on a new database: exactly one origin is
// recorded, and every caller is told the same one.
func testOriginConcurrentFirstRecords(t *testing.T, h Harness) {
	r := originRecorder(t, newStore(t, h))
	candidates := []marketplace.Origin{originGoogle, originEmulator, originOther}
	results := make([]marketplace.Origin, 12)
	errs := make([]error, len(results))
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			results[i], errs[i] = r.RecordOrigin(context.Background(), candidates[i%len(candidates)])
		})
	}
	wg.Wait()
	for i := range results {
		noErr(t, errs[i], "concurrent RecordOrigin")
		equal(t, results[i], results[0], "every concurrent RecordOrigin returns the one recorded")
	}
	equal(t, recordOrigin(t, r, originGoogle), results[0], "RecordOrigin afterwards")
}

func testOriginSurvivesReopen(t *testing.T, h Harness) {
	s := newStore(t, h)
	equal(t, recordOrigin(t, originRecorder(t, s), originEmulator), originEmulator, "first RecordOrigin")
	reopened := reopen(t, h, s)
	equal(t, recordOrigin(t, originRecorder(t, reopened), originGoogle), originEmulator, "RecordOrigin after reopening")
}

func testOriginAfterClose(t *testing.T, h Harness) {
	s := newStore(t, h)
	r := originRecorder(t, s)
	noErr(t, s.Close(), "Close")
	_, err := r.RecordOrigin(context.Background(), originGoogle)
	isErr(t, err, marketplace.ErrClosed, "RecordOrigin after Close")
}
