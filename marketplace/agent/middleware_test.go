package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/internal/testenv"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/agent"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
)

const testAudience = "https://agent.example"

// identEnv is an agent.Registry over the emulator whose processor knows what the
// emulator published (drain), and whose store holds orders the tests
// insert as DCR would have: the middleware's side, without DCR.
type identEnv struct {
	env      *testenv.Env
	store    *memstore.Store
	proc     *marketplace.Processor
	r        *agent.Registry
	feed     *testenv.Feed
	verifies atomic.Int32 // RSA verifications of software statements
}

// noIdP is an IdentityProvider the middleware never calls.
type noIdP struct{}

func (noIdP) CreateClient(context.Context, agent.ClientRequest) (agent.Client, error) {
	return agent.Client{}, errors.New("not in these tests")
}
func (noIdP) DeleteClient(context.Context, string) error { return nil }

func newIdentEnv(t testing.TB) *identEnv {
	t.Helper()
	e := &identEnv{env: testenv.New(t), store: memstore.New()}
	e.feed = testenv.NewFeed(e.env.Server)
	rt := gcpmarketplace.Runtime{Clock: e.env.Server.Clock().Now}
	var err error
	e.proc, err = marketplace.New(e.store, e.env.Client, marketplace.HandlerDefaults{}, &marketplace.Config{Runtime: rt})
	require.NoError(t, err)
	v, err := verify.NewStatementVerifier(testAudience, &verify.Config{Runtime: rt, StatementCertsURL: e.env.Server.StatementCertsURL()})
	require.NoError(t, err)
	e.r, err = agent.New(agent.Config{Runtime: rt, Processor: e.proc, Procurement: e.env.Client, Store: e.store,
		Verifier: v, IdP: noIdP{}, SecretKey: make([]byte, 32)})
	require.NoError(t, err)
	e.r.CountVerifications(func() { e.verifies.Add(1) })
	return e
}

// buy makes the emulator sell an order, tells the processor, and stores
// the order with client "client-<order>"; it returns the order.
func (e *identEnv) buy(t testing.TB, orderID string) agent.Order {
	t.Helper()
	ctx := t.Context()
	id, err := e.env.Server.Purchase(ctx, marketplacetest.PurchaseParams{UsageBased: true, AutoApprove: true, OrderID: orderID})
	require.NoError(t, err)
	e.feed.Drain(t, ctx, e.proc)
	ent, _ := e.env.Server.Entitlement(id)
	o := agent.Order{ID: orderID, AccountID: ent.AccountID, EntitlementID: id, UsageReportingID: ent.UsageReportingID,
		ClientID: "client-" + orderID, CreatedAt: e.env.Server.Clock().Now()}
	_, inserted, err := e.store.InsertOrder(ctx, agent.OrderRecord{Order: o, SealedSecret: []byte("sealed")})
	require.NoError(t, err)
	require.True(t, inserted)
	return o
}

// tokens is the app's token check: "token-<client>" belongs to <client>.
var tokens = agent.TokenCheckerFunc(func(_ context.Context, tok string) (string, error) {
	if c, ok := strings.CutPrefix(tok, "token-"); ok && c != "" {
		return c, nil
	}
	return "", errors.New("unknown token")
})

// call sends a request through the middleware and returns the status,
// the decoded JSON-RPC error code (0 if none), and the caller the handler
// saw.
func (e *identEnv) call(t *testing.T, authorization string) (int, int, http.Header, agent.Caller) {
	t.Helper()
	var got agent.Caller
	h := e.r.Middleware(tokens)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := agent.CallerFrom(r.Context())
		require.True(t, ok)
		got = c
	}))
	req := httptest.NewRequest(http.MethodPost, "/a2a", nil)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var body struct {
		JSONRPC string `json:"jsonrpc"`
		Error   struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	if w.Code != http.StatusOK {
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body), w.Body.String())
		assert.Equal(t, "2.0", body.JSONRPC)
		assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	}
	return w.Code, body.Error.Code, w.Header(), got
}

func TestMiddleware(t *testing.T) {
	t.Parallel()
	e := newIdentEnv(t)
	o := e.buy(t, "order-1")

	status, code, hdr, _ := e.call(t, "")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, agent.JSONRPCUnauthorized, code)
	assert.Equal(t, "Bearer", hdr.Get("WWW-Authenticate"))
	status, _, hdr, _ = e.call(t, "Basic abc")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "Bearer", hdr.Get("WWW-Authenticate"))
	status, code, hdr, _ = e.call(t, "Bearer nope")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, agent.JSONRPCUnauthorized, code)
	assert.Contains(t, hdr.Get("WWW-Authenticate"), `error="invalid_token"`)
	status, code, _, _ = e.call(t, "Bearer token-stranger")
	assert.Equal(t, http.StatusForbidden, status, "a client with no order")
	assert.Equal(t, agent.JSONRPCUnauthorized, code)

	status, _, _, c := e.call(t, "bearer token-"+o.ClientID)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, o.ID, c.Order.ID)
	assert.Equal(t, o.AccountID, c.Order.AccountID)
	assert.Equal(t, o.EntitlementID, c.Entitlement.ID)
	assert.Equal(t, o.UsageReportingID, c.Entitlement.UsageReportingID)
}

// A cancelled entitlement is refused 403; this process forgets the cached
// caller at once when told (forgetOrder, forgetEntitlement), other
// replicas after CallerCacheTTL.
func TestMiddlewareRefusesEndedOrders(t *testing.T) {
	t.Parallel()
	e := newIdentEnv(t)
	ctx := t.Context()
	o := e.buy(t, "order-a")
	o2 := e.buy(t, "order-b")
	for _, x := range []agent.Order{o, o2} {
		status, _, _, _ := e.call(t, "Bearer token-"+x.ClientID)
		require.Equal(t, http.StatusOK, status)
	}
	require.NoError(t, e.env.Server.Cancel(ctx, o.EntitlementID, true))
	require.NoError(t, e.env.Server.Cancel(ctx, o2.EntitlementID, true))
	e.feed.Drain(t, ctx, e.proc)

	status, _, _, _ := e.call(t, "Bearer token-"+o.ClientID)
	assert.Equal(t, http.StatusOK, status, "cached: another replica's view until the TTL")
	e.r.ForgetOrder(o.ID)
	status, code, _, _ := e.call(t, "Bearer token-"+o.ClientID)
	assert.Equal(t, http.StatusForbidden, status)
	assert.Equal(t, agent.JSONRPCUnauthorized, code)
	e.r.ForgetEntitlement(o2.EntitlementID)
	status, _, _, _ = e.call(t, "Bearer token-"+o2.ClientID)
	assert.Equal(t, http.StatusForbidden, status)

	// A revoked order whose entitlement is (again) fine: still refused.
	o3 := e.buy(t, "order-c")
	status, _, _, _ = e.call(t, "Bearer token-"+o3.ClientID)
	require.Equal(t, http.StatusOK, status)
	require.NoError(t, e.store.RevokeOrder(ctx, o3.ID, e.env.Server.Clock().Now()))
	e.env.Server.Clock().Advance(agent.CallerCacheTTL)
	status, _, _, _ = e.call(t, "Bearer token-"+o3.ClientID)
	assert.Equal(t, http.StatusForbidden, status, "the TTL bounds a stale entry")
}

func TestIdentifyStatement(t *testing.T) {
	t.Parallel()
	e := newIdentEnv(t)
	ctx := t.Context()
	o := e.buy(t, "order-s")
	p := marketplacetest.StatementParams{AccountID: o.AccountID, OrderID: o.ID, Audience: testAudience}
	stmt := e.env.Server.StatementToken(p)

	for range 3 {
		c, err := e.r.IdentifyStatement(ctx, stmt)
		require.NoError(t, err)
		assert.Equal(t, o.ID, c.Order.ID)
		assert.Equal(t, o.UsageReportingID, c.Entitlement.UsageReportingID)
	}
	assert.Equal(t, int32(1), e.verifies.Load(), "verified once, then looked up")

	// Expired: verified again, and refused.
	e.env.Server.Clock().Advance(marketplacetest.StatementTokenLifetime + time.Hour)
	_, err := e.r.IdentifyStatement(ctx, stmt)
	var te *verify.TokenError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, int32(2), e.verifies.Load())

	// A forged statement, an unknown order, another account's claim.
	_, err = e.r.IdentifyStatement(ctx, e.env.Server.StatementToken(marketplacetest.StatementParams{
		AccountID: o.AccountID, OrderID: o.ID, Audience: testAudience, Bad: marketplacetest.BadTokenForeignKey}))
	require.ErrorAs(t, err, &te)
	_, err = e.r.IdentifyStatement(ctx, e.env.Server.StatementToken(marketplacetest.StatementParams{
		AccountID: o.AccountID, OrderID: "order-unknown", Audience: testAudience}))
	require.ErrorIs(t, err, marketplace.ErrNotFound)
	_, err = e.r.IdentifyStatement(ctx, e.env.Server.StatementToken(marketplacetest.StatementParams{
		AccountID: "someone-else", OrderID: o.ID, Audience: testAudience}))
	require.ErrorIs(t, err, agent.ErrStatementMismatch)

	// Cancelled: refused once forgotten.
	require.NoError(t, e.env.Server.Cancel(ctx, o.EntitlementID, true))
	e.feed.Drain(t, ctx, e.proc)
	e.r.ForgetOrder(o.ID)
	_, err = e.r.IdentifyStatement(ctx, e.env.Server.StatementToken(p))
	require.ErrorIs(t, err, agent.ErrOrderInactive)
}

// BenchmarkIdentifyStatement: a statement seen before (warm: a hash and
// two lookups) against one verified every time (cold: RSA and claims), in
// the same run.
func BenchmarkIdentifyStatement(b *testing.B) {
	e := newIdentEnv(b)
	o := e.buy(b, "order-bench")
	stmt := e.env.Server.StatementToken(marketplacetest.StatementParams{AccountID: o.AccountID, OrderID: o.ID, Audience: testAudience})
	ctx := context.Background()
	_, err := e.r.IdentifyStatement(ctx, stmt)
	require.NoError(b, err)
	b.Run("warm", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.r.IdentifyStatement(ctx, stmt); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			e.r.ForgetStatements()
			if _, err := e.r.IdentifyStatement(ctx, stmt); err != nil {
				b.Fatal(err)
			}
		}
	})
}
