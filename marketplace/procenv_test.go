package marketplace_test

import (
	"context"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/internal/testenv"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// procCall is one callback the recorder saw.
type procCall struct {
	Type     events.Type // the callback (the event's type)
	Resource string      // entitlement or account id
	EventID  string
	State    procurement.EntitlementState // the Change's entitlement's, if any
	Plan     string
}

// procRecorder is a marketplace.Handler that records every callback and can be
// told to fail.
type procRecorder struct {
	mu    sync.Mutex
	calls []procCall
	// fail, if set, is called before a callback is recorded; a non-nil
	// error (or a panic) is the callback's result, and the call is not
	// recorded.
	fail func(ctx context.Context, c *marketplace.Change) error
}

func (r *procRecorder) handler() marketplace.Handler {
	return marketplace.HandlerFunc(func(ctx context.Context, c *marketplace.Change) error {
		r.mu.Lock()
		fail := r.fail
		r.mu.Unlock()
		if fail != nil {
			if err := fail(ctx, c); err != nil {
				return err
			}
		}
		call := procCall{Type: c.Type, Resource: testenv.ResourceOf(c).ID}
		if c.Trigger != nil {
			call.EventID = c.Trigger.ID()
		}
		if c.Entitlement != nil {
			call.State, call.Plan = c.Entitlement.State, c.Entitlement.Plan
		}
		r.mu.Lock()
		r.calls = append(r.calls, call)
		r.mu.Unlock()
		return nil
	})
}

func (r *procRecorder) setFail(f func(ctx context.Context, c *marketplace.Change) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = f
}

func (r *procRecorder) all() []procCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]procCall(nil), r.calls...)
}

// types lists the callbacks made for one resource, in order.
func (r *procRecorder) types(resource string) []events.Type {
	var out []events.Type
	for _, c := range r.all() {
		if c.Resource == resource {
			out = append(out, c.Type)
		}
	}
	return out
}

// counts counts callbacks by "TYPE resource".
func (r *procRecorder) counts() map[string]int {
	out := map[string]int{}
	for _, c := range r.all() {
		out[string(c.Type)+" "+c.Resource]++
	}
	return out
}

type procEnv struct {
	t      testing.TB
	ctx    context.Context
	srv    *marketplacetest.Server
	client *procurement.Client
	store  marketplace.Store
	rec    *procRecorder
	proc   *marketplace.Processor
	feed   *testenv.Feed // hands Published() to HandleMessage
}

type procEnvConfig struct {
	serverOpts []marketplacetest.Option
	procCfg    marketplace.Config
	store      marketplace.Store
}

type procEnvOption func(*procEnvConfig)

func withServer(opts ...marketplacetest.Option) procEnvOption {
	return func(c *procEnvConfig) { c.serverOpts = append(c.serverOpts, opts...) }
}

// withProc configures the processor; the emulator's clock is the default
// Clock.
func withProc(cfg marketplace.Config) procEnvOption {
	return func(c *procEnvConfig) { c.procCfg = cfg }
}

func withStore(s marketplace.Store) procEnvOption { return func(c *procEnvConfig) { c.store = s } }

func newProcEnv(t testing.TB, opts ...procEnvOption) *procEnv {
	t.Helper()
	var cfg procEnvConfig
	for _, o := range opts {
		o(&cfg)
	}
	ctx := context.Background()
	te := testenv.New(t, cfg.serverOpts...)
	srv, client := te.Server, te.Client
	store := cfg.store
	if store == nil {
		store = memstore.New()
	}
	rec := &procRecorder{}
	pcfg := cfg.procCfg
	if pcfg.Clock == nil {
		pcfg.Clock = srv.Clock().Now
	}
	proc, err := marketplace.New(store, client, rec.handler(), &pcfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proc.Close() })
	return &procEnv{t: t, ctx: ctx, srv: srv, client: client, store: store, rec: rec, proc: proc, feed: testenv.NewFeed(srv)}
}

// newMessages returns the published events not yet handed out.
func (e *procEnv) newMessages() []marketplace.Message { return e.feed.Next() }

// drain feeds every published event to HandleMessage, in order, until no
// new event is published (the processor's approvals publish more).
func (e *procEnv) drain() {
	e.t.Helper()
	e.feed.Drain(e.t, e.ctx, e.proc)
}

// drainChaos feeds the published events like a misbehaving Pub/Sub: each
// delivered one to three times, shuffled, by several goroutines at once.
func (e *procEnv) drainChaos(rng *rand.Rand, workers int) {
	e.t.Helper()
	e.feed.DrainChaos(e.t, e.ctx, e.proc, rng, workers)
}

// purchase buys for a new account and returns (account id, entitlement id).
func (e *procEnv) purchase(p marketplacetest.PurchaseParams) (string, string) {
	e.t.Helper()
	id, err := e.srv.Purchase(e.ctx, p)
	require.NoError(e.t, err)
	ent, ok := e.srv.Entitlement(id)
	require.True(e.t, ok)
	return ent.AccountID, id
}

func (e *procEnv) signup(accountID string) marketplace.SignupResult {
	e.t.Helper()
	res, err := e.proc.CompleteSignup(e.ctx, marketplace.SignupParams{AccountID: accountID, VendorUserID: "tenant-" + accountID[:8], UserIdentity: "uid"})
	require.NoError(e.t, err)
	return res
}

func (e *procEnv) localEntitlement(id string) (marketplace.Entitlement, bool) {
	e.t.Helper()
	var out marketplace.Entitlement
	found := true
	err := e.store.InTx(e.ctx, func(ctx context.Context, tx marketplace.Tx) error {
		var err error
		out, err = tx.GetEntitlement(ctx, id)
		if err != nil {
			found = false
		}
		return nil
	})
	require.NoError(e.t, err)
	return out, found
}

func (e *procEnv) localAccount(id string) (marketplace.Account, bool) {
	e.t.Helper()
	var out marketplace.Account
	found := true
	err := e.store.InTx(e.ctx, func(ctx context.Context, tx marketplace.Tx) error {
		var err error
		out, err = tx.GetAccount(ctx, id)
		if err != nil {
			found = false
		}
		return nil
	})
	require.NoError(e.t, err)
	return out, found
}

func (e *procEnv) poison() []marketplace.Poison {
	e.t.Helper()
	out, err := e.proc.Poison(e.ctx, 0)
	require.NoError(e.t, err)
	return out
}

// requireInSync checks that local state equals the emulator's: the same
// accounts, and the same entitlements with the same state, plan and
// pending plan.
func (e *procEnv) requireInSync() {
	e.t.Helper()
	var accts []marketplace.Account
	var ents []marketplace.Entitlement
	require.NoError(e.t, e.store.InTx(e.ctx, func(ctx context.Context, tx marketplace.Tx) error {
		var err error
		if accts, err = tx.ListAccounts(ctx); err != nil {
			return err
		}
		ents, err = tx.ListEntitlements(ctx, marketplace.EntitlementQuery{})
		return err
	}))
	type entKey struct{ ID, Account, State, Plan, Pending string }
	var want, got []entKey
	for _, x := range e.srv.Entitlements() {
		want = append(want, entKey{x.ID, x.AccountID, x.State, x.Plan, x.NewPendingPlan})
	}
	for _, x := range ents {
		got = append(got, entKey{x.ID, x.AccountID, string(x.State), x.Plan, x.PendingPlan})
	}
	sort.Slice(want, func(i, j int) bool { return want[i].ID < want[j].ID })
	require.Equal(e.t, want, got, "local entitlements differ from the emulator's")
	var wantA, gotA []string
	for _, a := range e.srv.Accounts() {
		wantA = append(wantA, a.ID)
	}
	for _, a := range accts {
		gotA = append(gotA, a.ID)
	}
	sort.Strings(wantA)
	require.Equal(e.t, wantA, gotA, "local accounts differ from the emulator's")
}

// message builds a message with the given body.
func rawMessage(id, body string) marketplace.Message {
	return marketplace.Message{ID: id, Data: []byte(body)}
}
