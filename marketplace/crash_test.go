package marketplace_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// errCrash stands for the death of the process.
var errCrash = errors.New("process killed")

// crash makes the first callback that starts after one of methods reached
// Google fail without effect, as if the process had died at that moment:
// nothing the processor does after Google's change (callbacks, commit)
// survives. It returns the type of the callback that died, once it has.
func crash(env *procEnv, methods ...marketplacetest.Method) func() events.Type {
	calls := func() (n int) {
		for _, m := range methods {
			n += env.srv.Calls(m)
		}
		return n
	}
	before := calls()
	var (
		mu   sync.Mutex
		died events.Type
	)
	env.rec.setFail(func(_ context.Context, c *marketplace.Change) error {
		mu.Lock()
		defer mu.Unlock()
		if died != "" || calls() == before {
			return nil
		}
		died = c.Type
		return errCrash
	})
	return func() events.Type {
		mu.Lock()
		defer mu.Unlock()
		return died
	}
}

// deliver feeds msgs, then every event published meanwhile, redelivering
// those whose processing failed until every one is acknowledged, as
// Pub/Sub does. It returns how many deliveries failed.
func (e *procEnv) deliver(msgs []marketplace.Message) int {
	e.t.Helper()
	failed := 0
	for round := 0; len(msgs) > 0; round++ {
		require.Less(e.t, round, 10, "messages still failing after %d rounds", round)
		var again []marketplace.Message
		for _, m := range msgs {
			if err := e.proc.HandleMessage(e.ctx, m); err != nil {
				require.ErrorIs(e.t, err, errCrash)
				failed++
				again = append(again, m)
			}
		}
		msgs = append(again, e.newMessages()...)
	}
	return failed
}

// The process dies after the processor approved or rejected something at
// Google and before it committed: the redelivery still fires every
// callback exactly once, because what was observed before Google's change
// was committed before it.
func TestCrashAfterChangeAtGoogle(t *testing.T) {
	t.Parallel()
	policy := marketplace.PolicyFunc(func(_ context.Context, r marketplace.PolicyRequest) (marketplace.Decision, error) {
		reject := marketplace.Decision{Outcome: marketplace.OutcomeRejected, Reason: "not sold here"}
		switch {
		case r.Kind == marketplace.ApprovalEntitlement && r.Entitlement.Plan == "forbidden",
			r.Kind == marketplace.ApprovalPlanChange && r.Entitlement.NewPendingPlan == "forbidden":
			return reject, nil
		}
		return marketplace.Decision{Outcome: marketplace.OutcomeApproved}, nil
	})
	signedUp := func(t *testing.T, env *procEnv) string {
		acct, err := env.srv.CreateAccount(env.ctx)
		require.NoError(t, err)
		env.signup(acct)
		env.drain()
		return acct
	}
	// purchaseAndDeliver has a signed-up customer buy plan; the processor
	// approves or rejects on ENTITLEMENT_CREATION_REQUESTED.
	purchaseAndDeliver := func(plan string) func(t *testing.T, env *procEnv) (string, trigger) {
		return func(t *testing.T, env *procEnv) (string, trigger) {
			acct := signedUp(t, env)
			_, ent := env.purchase(marketplacetest.PurchaseParams{AccountID: acct, Plan: plan})
			return ent, func() ([]marketplace.Message, error) { return deliverOnce(env) }
		}
	}
	planChange := func(plan string) func(t *testing.T, env *procEnv) (string, trigger) {
		return func(t *testing.T, env *procEnv) (string, trigger) {
			_, ent := activeEntitlement(t, env, marketplacetest.PurchaseParams{Plan: "standard"})
			require.NoError(t, env.srv.RequestPlanChange(env.ctx, ent, plan))
			return ent, func() ([]marketplace.Message, error) { return deliverOnce(env) }
		}
	}
	tests := []struct {
		name string
		// setup prepares the entitlement and returns the action that makes
		// the processor change it at Google (and die).
		setup   func(t *testing.T, env *procEnv) (ent string, do trigger)
		method  marketplacetest.Method
		stored  procurement.EntitlementState // the local state the crash leaves
		died    events.Type                  // the first callback after Google's change
		want    []events.Type
		removed bool // the entitlement no longer exists at the end
	}{{
		name:   "entitlement approved",
		setup:  purchaseAndDeliver("standard"),
		method: marketplacetest.MethodEntitlementsApprove,
		stored: procurement.EntitlementActivationRequested,
		died:   tActive,
		want:   []events.Type{tCreationRequested, tActive},
	}, {
		name:    "entitlement rejected",
		setup:   purchaseAndDeliver("forbidden"),
		method:  marketplacetest.MethodEntitlementsReject,
		stored:  procurement.EntitlementActivationRequested,
		died:    tCancelled,
		want:    []events.Type{tCreationRequested, tCancelled, tDeleted},
		removed: true,
	}, {
		name:   "plan change approved",
		setup:  planChange("premium"),
		method: marketplacetest.MethodEntitlementsApprovePlanChange,
		stored: procurement.EntitlementPendingPlanChangeApproval,
		died:   tPlanChanged,
		want:   []events.Type{tCreationRequested, tActive, tPlanChangeRequested, tPlanChanged},
	}, {
		name:   "plan change rejected",
		setup:  planChange("forbidden"),
		method: marketplacetest.MethodEntitlementsRejectPlanChange,
		stored: procurement.EntitlementPendingPlanChangeApproval,
		died:   tPlanChangeCancelled,
		want:   []events.Type{tCreationRequested, tActive, tPlanChangeRequested, tPlanChangeCancelled},
	}, {
		// The entitlement's message has not arrived: CompleteSignup finds
		// it through the API and approves it.
		name: "entitlement approved by CompleteSignup",
		setup: func(t *testing.T, env *procEnv) (string, trigger) {
			acct, ent := env.purchase(marketplacetest.PurchaseParams{})
			return ent, func() ([]marketplace.Message, error) {
				res, err := env.proc.CompleteSignup(env.ctx, marketplace.SignupParams{AccountID: acct, VendorUserID: "tenant"})
				require.NoError(t, err, "the sign-up itself succeeds")
				require.Len(t, res.Entitlements, 1)
				return nil, res.Entitlements[0].Err
			}
		},
		method: marketplacetest.MethodEntitlementsApprove,
		stored: procurement.EntitlementActivationRequested,
		died:   tActive,
		want:   []events.Type{tCreationRequested, tActive},
	}, {
		name: "entitlement approved by Reconcile",
		setup: func(t *testing.T, env *procEnv) (string, trigger) {
			acct := signedUp(t, env)
			_, ent := env.purchase(marketplacetest.PurchaseParams{AccountID: acct})
			return ent, func() ([]marketplace.Message, error) {
				_, err := env.proc.Reconcile(env.ctx)
				return nil, err
			}
		},
		method: marketplacetest.MethodEntitlementsApprove,
		stored: procurement.EntitlementActivationRequested,
		died:   tActive,
		want:   []events.Type{tCreationRequested, tActive},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := newProcEnv(t, withProc(marketplace.Config{Policy: policy}))
			ent, do := tt.setup(t, env)
			died := crash(env, tt.method)
			unacked, err := do()
			require.ErrorIs(t, err, errCrash)
			require.Equal(t, tt.died, died(), "the process died in the first callback after Google's change")
			require.Equal(t, 1, env.srv.Calls(tt.method))
			local, ok := env.localEntitlement(ent)
			require.True(t, ok, "committed before Google's change")
			assert.Equal(t, tt.stored, local.State)

			// Restart: Pub/Sub redelivers what was not acknowledged, with
			// what Google published meanwhile.
			env.rec.setFail(nil)
			assert.Zero(t, env.deliver(append(unacked, env.newMessages()...)))
			assert.Equal(t, tt.want, env.rec.types(ent), "every callback exactly once, in order")
			assert.Equal(t, 1, env.srv.Calls(tt.method), "Google's change is not repeated")
			_, exists := env.srv.Entitlement(ent)
			assert.Equal(t, !tt.removed, exists)
			env.requireInSync()
		})
	}
}

// trigger makes the processor act; it returns the messages it failed to
// process, which Pub/Sub would redeliver.
type trigger func() (unacked []marketplace.Message, err error)

// deliverOnce feeds the events published so far, each once.
func deliverOnce(env *procEnv) ([]marketplace.Message, error) {
	var (
		unacked []marketplace.Message
		errs    []error
	)
	for _, m := range env.newMessages() {
		if err := env.proc.HandleMessage(env.ctx, m); err != nil {
			unacked = append(unacked, m)
			errs = append(errs, err)
		}
	}
	return unacked, errors.Join(errs...)
}

// The commit before Google's change is made only when the processor
// approves or rejects something, and only if it observed something not
// stored yet.
func TestCommitBeforeChangeOnlyWhenActing(t *testing.T) {
	t.Parallel()
	// commits returns how many transactions processing the events published
	// so far took, by event type.
	commits := func(env *procEnv, store *countingStore) map[events.Type]int64 {
		out := map[events.Type]int64{}
		for _, m := range env.newMessages() {
			ev, err := events.Decode(m.Data)
			require.NoError(t, err)
			before := int64(store.txs.Load())
			require.NoError(t, env.proc.HandleMessage(env.ctx, m))
			out[ev.Type()] += int64(store.txs.Load()) - before
		}
		return out
	}

	t.Run("approved", func(t *testing.T) {
		t.Parallel()
		store := &countingStore{Store: memstore.New()}
		env := newProcEnv(t, withStore(store))
		acct, err := env.srv.CreateAccount(env.ctx)
		require.NoError(t, err)
		env.signup(acct)
		env.drain()
		_, ent := env.purchase(marketplacetest.PurchaseParams{AccountID: acct})
		assert.Equal(t, map[events.Type]int64{tCreationRequested: 2}, commits(env, store), "observed, then approved")
		assert.Equal(t, map[events.Type]int64{tActive: 0}, commits(env, store), "nothing new")

		require.NoError(t, env.srv.RequestPlanChange(env.ctx, ent, "premium"))
		assert.Equal(t, map[events.Type]int64{tPlanChangeRequested: 2}, commits(env, store))
		assert.Equal(t, map[events.Type]int64{tPlanChanged: 0}, commits(env, store))
		require.NoError(t, env.srv.Cancel(env.ctx, ent, false))
		assert.Equal(t, map[events.Type]int64{tPendingCancellation: 1}, commits(env, store), "nothing to do at Google")
	})
	t.Run("parked, then released by CompleteSignup", func(t *testing.T) {
		t.Parallel()
		store := &countingStore{Store: memstore.New()}
		env := newProcEnv(t, withStore(store))
		acct, ent := env.purchase(marketplacetest.PurchaseParams{})
		got := commits(env, store)
		assert.Equal(t, int64(1), got[tCreationRequested], "parked: nothing to do at Google")
		local, _ := env.localEntitlement(ent)
		require.True(t, local.Parked)

		before := int64(store.txs.Load())
		res := env.signup(acct)
		require.Equal(t, []marketplace.Outcome{marketplace.OutcomeApproved}, res.Entitlements[0].Outcomes)
		assert.Equal(t, int64(2), int64(store.txs.Load())-before,
			"the account's link and the approval's commit: the parked state was stored already")
		assert.Equal(t, []events.Type{tCreationRequested, tActive}, env.rec.types(ent))
	})
	t.Run("held", func(t *testing.T) {
		t.Parallel()
		store := &countingStore{Store: memstore.New()}
		env := newProcEnv(t, withStore(store), withProc(marketplace.Config{Policy: marketplace.ManualApproval("soon")}))
		acct, err := env.srv.CreateAccount(env.ctx)
		require.NoError(t, err)
		env.signup(acct)
		env.drain()
		_, ent := env.purchase(marketplacetest.PurchaseParams{AccountID: acct})
		assert.Equal(t, map[events.Type]int64{tCreationRequested: 1}, commits(env, store), "held: only messageToUser changes at Google")

		before := int64(store.txs.Load())
		require.NoError(t, env.proc.Approve(env.ctx, ent))
		assert.Equal(t, int64(1), int64(store.txs.Load())-before, "the operator's approval: the request was stored already")
		assert.Equal(t, []events.Type{tCreationRequested, tActive}, env.rec.types(ent))
	})
}
