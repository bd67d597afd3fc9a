package testenv

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// Market is a whole integration on the emulator, as an operator sees it: a
// Processor over a memstore, wired to a usage Reporter on the same store,
// with callbacks that can be told to fail. The emulator's clock is the
// clock of both.
type Market struct {
	tb     testing.TB
	Ctx    context.Context
	Server *marketplacetest.Server
	Store  *memstore.Store
	Proc   *marketplace.Processor
	Rep    *usage.Reporter
	Feed   *Feed

	mu   sync.Mutex
	fail func(c *marketplace.Change) error
}

// MarketMetric is the metric the Market's Reporter accepts (Record it as
// "requests").
const MarketMetric = "requests"

// NewMarket builds a Market; policy, if not nil, is the Processor's
// approval policy (nil approves everything).
func NewMarket(tb testing.TB, policy marketplace.Policy, opts ...marketplacetest.Option) *Market {
	tb.Helper()
	ctx := context.Background()
	env := New(tb, opts...)
	srv := env.Server
	m := &Market{tb: tb, Ctx: ctx, Server: srv, Store: memstore.New(), Feed: NewFeed(srv)}
	// Quiet: the tests read what they need through the API, not the logs.
	rt := gcpmarketplace.Runtime{Clock: srv.Clock().Now, Logger: slog.New(slog.DiscardHandler)}
	rep, err := usage.New(ctx, srv.ServiceName(), m.Store, &usage.Config{
		Runtime: rt,
		Metrics: map[string]usage.MetricKind{srv.ServiceName() + "/" + MarketMetric: usage.Int64},
	}, srv.ClientOptions()...)
	if err != nil {
		tb.Fatalf("testenv: usage.New: %v", err)
	}
	handler := marketplace.HandlerFunc(func(ctx context.Context, c *marketplace.Change) error {
		m.mu.Lock()
		fail := m.fail
		m.mu.Unlock()
		if fail != nil {
			return fail(c)
		}
		return nil
	})
	proc, err := marketplace.New(m.Store, env.Client, handler, &marketplace.Config{Runtime: rt, Usage: rep, Policy: policy})
	if err != nil {
		tb.Fatalf("testenv: marketplace.New: %v", err)
	}
	tb.Cleanup(func() {
		_ = proc.Close()
		_ = rep.Close(context.Background())
	})
	m.Proc, m.Rep = proc, rep
	return m
}

// FailWith makes every callback return f's result (nil: succeed).
func (m *Market) FailWith(f func(c *marketplace.Change) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = f
}

// Drain hands every published message to the Processor, until none is
// left.
func (m *Market) Drain() {
	m.tb.Helper()
	m.Feed.Drain(m.tb, m.Ctx, m.Proc)
}

// Purchase buys as p says and returns (account id, entitlement id); the
// messages are not drained.
func (m *Market) Purchase(p marketplacetest.PurchaseParams) (string, string) {
	m.tb.Helper()
	id, err := m.Server.Purchase(m.Ctx, p)
	if err != nil {
		m.tb.Fatalf("testenv: purchase: %v", err)
	}
	ent, ok := m.Server.Entitlement(id)
	if !ok {
		m.tb.Fatalf("testenv: purchased entitlement %s not found", id)
	}
	return ent.AccountID, id
}

// Signup completes the account's sign-up, linked to vendor user
// "tenant-<account>", and drains what follows.
func (m *Market) Signup(accountID string) {
	m.tb.Helper()
	_, err := m.Proc.CompleteSignup(m.Ctx, marketplace.SignupParams{AccountID: accountID, VendorUserID: "tenant-" + accountID, UserIdentity: "uid-" + accountID})
	if err != nil {
		m.tb.Fatalf("testenv: sign-up of %s: %v", accountID, err)
	}
	m.Drain()
}

// Customer buys a usage-based plan for a new account, signs it up and
// returns (account id, entitlement id): a consumer registered with the
// Reporter.
func (m *Market) Customer() (string, string) {
	m.tb.Helper()
	acct, ent := m.Purchase(marketplacetest.PurchaseParams{UsageBased: true})
	m.Drain()
	m.Signup(acct)
	return acct, ent
}

// Bill records n requests for the entitlement now, lets an hour and a bit
// pass and flushes: the usage is sealed and reported.
func (m *Market) Bill(entitlementID string, n int64) {
	m.tb.Helper()
	m.Server.Clock().Advance(time.Minute)
	if err := m.Rep.Record(m.Ctx, usage.Record{EntitlementID: entitlementID, Metric: MarketMetric, Int64: n, Time: m.Server.Clock().Now()}); err != nil {
		m.tb.Fatalf("testenv: record usage: %v", err)
	}
	m.Server.Clock().Advance(time.Hour + 5*time.Minute)
	if err := m.Rep.Flush(m.Ctx); err != nil {
		m.tb.Fatalf("testenv: flush usage: %v", err)
	}
}
