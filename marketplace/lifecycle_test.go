package marketplace_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

// lifecycleScript drives n customers through a scripted lifecycle in
// phases; after each phase, settle is called to process what was published.
// It returns the callbacks expected, as counts by "TYPE id": every app
// callback must fire exactly once per logical change.
//
// Customer i, by i%4:
//
//	all: buys before signing up (parked), signs up (approved, provisioned)
//	0:   plan change approved; then cancelled at once; i%8==0 also deletes its account
//	1:   cancels at term end; the term ends; the entitlement is deleted
//	2:   the term renews
//	3:   plan change rejected by the policy
func lifecycleScript(t testing.TB, env *procEnv, n int, settle func()) map[string]int {
	ctx := env.ctx
	want := map[string]int{}
	type customer struct{ acct, ent string }
	cs := make([]customer, n)
	for i := range cs {
		cs[i].acct, cs[i].ent = env.purchase(marketplacetest.PurchaseParams{Plan: "standard", OfferDuration: "P1M"})
		want[string(tAccountActive)+" "+cs[i].acct]++
		want[string(tCreationRequested)+" "+cs[i].ent]++
		want[string(tActive)+" "+cs[i].ent]++
	}
	settle()
	for _, c := range cs {
		env.signup(c.acct)
	}
	settle()
	for i, c := range cs {
		switch i % 4 {
		case 0:
			require.NoError(t, env.srv.RequestPlanChange(ctx, c.ent, "premium"))
			want[string(tPlanChangeRequested)+" "+c.ent]++
			want[string(tPlanChanged)+" "+c.ent]++
		case 1:
			require.NoError(t, env.srv.Cancel(ctx, c.ent, false))
			want[string(tPendingCancellation)+" "+c.ent]++
		case 3:
			require.NoError(t, env.srv.RequestPlanChange(ctx, c.ent, "forbidden"))
			want[string(tPlanChangeRequested)+" "+c.ent]++
			want[string(tPlanChangeCancelled)+" "+c.ent]++
		}
	}
	settle()
	for i, c := range cs {
		switch i % 4 {
		case 0:
			require.NoError(t, env.srv.Cancel(ctx, c.ent, true))
			want[string(tCancelled)+" "+c.ent]++
		case 1, 2:
			require.NoError(t, env.srv.EndTerm(ctx, c.ent))
			if i%4 == 1 {
				want[string(tCancelled)+" "+c.ent]++
			} else {
				want[string(tRenewed)+" "+c.ent]++
			}
		}
	}
	settle()
	for i, c := range cs {
		switch {
		case i%8 == 0:
			require.NoError(t, env.srv.DeleteAccount(ctx, c.acct))
			want[string(tDeleted)+" "+c.ent]++
			want[string(tAccountDeleted)+" "+c.acct]++
		case i%4 == 1:
			require.NoError(t, env.srv.DeleteEntitlement(ctx, c.ent))
			want[string(tDeleted)+" "+c.ent]++
		}
	}
	settle()
	return want
}

// lifecyclePolicy approves everything but the plan "forbidden".
var lifecyclePolicy = marketplace.PolicyFunc(func(_ context.Context, r marketplace.PolicyRequest) (marketplace.Decision, error) {
	if r.Kind == marketplace.ApprovalPlanChange && r.Entitlement.NewPendingPlan == "forbidden" {
		return marketplace.Decision{Outcome: marketplace.OutcomeRejected, Reason: "plan not sold any more"}, nil
	}
	return marketplace.Decision{Outcome: marketplace.OutcomeApproved}, nil
})

// 200 customers, every message delivered one to three times, shuffled, by
// eight goroutines at once: every callback fires exactly once per logical
// change and the final local state equals the emulator's.
func TestLifecycleDuplicatedAndReordered(t *testing.T) {
	t.Parallel()
	n := 200
	if testing.Short() {
		n = 40
	}
	env := newProcEnv(t, withProc(marketplace.Config{Policy: lifecyclePolicy}))
	rng := rand.New(rand.NewPCG(7, 11))
	want := lifecycleScript(t, env, n, func() { env.drainChaos(rng, 8) })
	require.Equal(t, want, env.rec.counts())
	env.requireInSync()
	require.Empty(t, env.poison())

	// A replay of the whole history changes nothing.
	env.feed.Rewind()
	env.drainChaos(rng, 8)
	require.Equal(t, want, env.rec.counts())
	env.requireInSync()
}

// Every event type the emulator publishes appears in the lifecycle.
func TestLifecycleCoversEventTypes(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t, withProc(marketplace.Config{Policy: lifecyclePolicy}))
	lifecycleScript(t, env, 8, env.drain)
	seen := map[string]bool{}
	for _, p := range env.srv.Published() {
		seen[p.EventType] = true
	}
	for _, typ := range []events.Type{"", tCreationRequested, tActive, tPlanChangeRequested, tPlanChanged,
		tPlanChangeCancelled, tPendingCancellation, tCancelling, tCancelled, tDeleted, tRenewed, tAccountDeleted} {
		require.True(t, seen[string(typ)], "lifecycle publishes %q", typ)
	}
}
