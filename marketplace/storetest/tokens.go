package storetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/signup"
)

// The signup.UsedTokens cases, for stores that implement it.
var usedTokenCases = []testCase{
	{"FirstThenReplay", testUsedTokenFirstThenReplay},
	{"EmptyKeyInvalid", testUsedTokenEmptyKey},
	{"ExactlyOnceUnderConcurrency", testUsedTokenConcurrent},
	{"PruneBoundaries", testUsedTokenPrune},
	{"SurvivesReopen", testUsedTokenDurable},
}

// usedTokens returns a fresh store as a signup.UsedTokens, or skips.
func usedTokens(t *testing.T, h Harness) (marketplace.Store, signup.UsedTokens) {
	t.Helper()
	s := newStore(t, h)
	u, ok := s.(signup.UsedTokens)
	if !ok {
		t.Skip("store does not implement signup.UsedTokens")
	}
	return s, u
}

func useToken(t *testing.T, u signup.UsedTokens, key string, expires time.Time) bool {
	t.Helper()
	first, err := u.UseToken(context.Background(), key, expires)
	noErr(t, err, "UseToken "+key)
	return first
}

func testUsedTokenFirstThenReplay(t *testing.T, h Harness) {
	_, u := usedTokens(t, h)
	equal(t, useToken(t, u, "k1", at(5*time.Minute)), true, "first use")
	equal(t, useToken(t, u, "k1", at(5*time.Minute)), false, "second use")
	equal(t, useToken(t, u, "k1", at(time.Hour)), false, "second use with another expiry")
	equal(t, useToken(t, u, "k2", at(5*time.Minute)), true, "another key")
}

func testUsedTokenEmptyKey(t *testing.T, h Harness) {
	_, u := usedTokens(t, h)
	_, err := u.UseToken(context.Background(), "", at(time.Minute))
	isErr(t, err, marketplace.ErrInvalid, "UseToken with an empty key")
}

func testUsedTokenConcurrent(t *testing.T, h Harness) {
	_, u := usedTokens(t, h)
	const callers = 8
	var firsts atomic.Int32
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			first, err := u.UseToken(context.Background(), "contended", at(time.Minute))
			if err != nil {
				t.Errorf("UseToken: %v", err)
			}
			if first {
				firsts.Add(1)
			}
		})
	}
	wg.Wait()
	equal(t, firsts.Load(), int32(1), "callers told first")
}

func testUsedTokenPrune(t *testing.T, h Harness) {
	_, u := usedTokens(t, h)
	useToken(t, u, "early", at(time.Minute))
	useToken(t, u, "boundary", at(2*time.Minute))
	useToken(t, u, "late", at(3*time.Minute))
	n, err := u.PruneUsedTokens(context.Background(), at(2*time.Minute))
	noErr(t, err, "PruneUsedTokens")
	equal(t, n, 1, "pruned (strictly before)")
	equal(t, useToken(t, u, "early", at(time.Minute)), true, "a pruned key is new again")
	equal(t, useToken(t, u, "boundary", at(2*time.Minute)), false, "the key expiring at the bound is kept")
	equal(t, useToken(t, u, "late", at(3*time.Minute)), false, "a later key is kept")
}

func testUsedTokenDurable(t *testing.T, h Harness) {
	s, u := usedTokens(t, h)
	useToken(t, u, "k1", at(time.Hour))
	u2, ok := reopen(t, h, s).(signup.UsedTokens)
	if !ok {
		t.Fatal("the reopened store does not implement signup.UsedTokens")
	}
	equal(t, useToken(t, u2, "k1", at(time.Hour)), false, "use after reopen")
}
