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

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/agent"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
)

// tokens is the app's token check: "token-<client>" belongs to <client>.
var tokens = agent.TokenCheckerFunc(func(_ context.Context, tok string) (string, error) {
	if c, ok := strings.CutPrefix(tok, "token-"); ok && c != "" {
		return c, nil
	}
	return "", errors.New("unknown token")
})

// call sends a request through the middleware and returns the status, the
// JSON-RPC error code (0 if none), the headers, and the caller the handler
// saw.
func (e *env) call(authorization string) (int, int, http.Header, agent.Caller) {
	e.t.Helper()
	var got agent.Caller
	h := e.reg.Middleware(tokens)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := agent.CallerFrom(r.Context())
		require.True(e.t, ok)
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
		require.NoError(e.t, json.Unmarshal(w.Body.Bytes(), &body), w.Body.String())
		assert.Equal(e.t, "2.0", body.JSONRPC)
		assert.Equal(e.t, "application/json", w.Header().Get("Content-Type"))
	}
	return w.Code, body.Error.Code, w.Header(), got
}

func TestMiddleware(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acct, order, client := e.registered()

	status, code, hdr, _ := e.call("")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, agent.JSONRPCUnauthorized, code)
	assert.Equal(t, "Bearer", hdr.Get("WWW-Authenticate"))
	status, _, hdr, _ = e.call("Basic abc")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "Bearer", hdr.Get("WWW-Authenticate"))
	status, code, hdr, _ = e.call("Bearer nope")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, agent.JSONRPCUnauthorized, code)
	assert.Contains(t, hdr.Get("WWW-Authenticate"), `error="invalid_token"`)
	status, code, _, _ = e.call("Bearer token-stranger")
	assert.Equal(t, http.StatusForbidden, status, "a client with no order")
	assert.Equal(t, agent.JSONRPCUnauthorized, code)

	ent, _ := e.srv.Entitlement(order)
	for range 2 { // the second from the cache
		status, _, _, c := e.call("bearer token-" + client)
		require.Equal(t, http.StatusOK, status)
		assert.Equal(t, order, c.Order.ID)
		assert.Equal(t, acct, c.Order.AccountID)
		assert.Equal(t, ent.ID, c.Entitlement.ID)
		assert.Equal(t, ent.UsageReportingID, c.Entitlement.UsageReportingID)
	}
}

// A cancellation is refused at once by the process whose Registry.Handler
// ran it (the cache is told); a revocation this process did not see is
// refused after CallerCacheTTL.
func TestMiddlewareRefusesEndedOrders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	_, order, client := e.registered()
	status, _, _, _ := e.call("Bearer token-" + client)
	require.Equal(t, http.StatusOK, status)
	require.NoError(t, e.srv.Cancel(ctx, order, true))
	e.drain()
	status, code, _, _ := e.call("Bearer token-" + client)
	assert.Equal(t, http.StatusForbidden, status)
	assert.Equal(t, agent.JSONRPCUnauthorized, code)

	_, order2, client2 := e.registered()
	status, _, _, _ = e.call("Bearer token-" + client2)
	require.Equal(t, http.StatusOK, status)
	require.NoError(t, e.store.RevokeOrder(ctx, order2, e.srv.Clock().Now())) // another replica revoked it
	status, _, _, _ = e.call("Bearer token-" + client2)
	assert.Equal(t, http.StatusOK, status, "cached until the TTL")
	e.srv.Clock().Advance(agent.CallerCacheTTL)
	status, _, _, _ = e.call("Bearer token-" + client2)
	assert.Equal(t, http.StatusForbidden, status, "the TTL bounds a stale entry")
}

func TestIdentifyStatement(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var verifies atomic.Int32
	e.reg.CountVerifications(func() { verifies.Add(1) })
	ctx := t.Context()
	acct, order, _ := e.registered()
	ent, _ := e.srv.Entitlement(order)
	stmt := e.statement(acct, order)
	verifies.Store(0) // the registration's

	for range 3 {
		c, err := e.reg.IdentifyStatement(ctx, stmt)
		require.NoError(t, err)
		assert.Equal(t, order, c.Order.ID)
		assert.Equal(t, ent.UsageReportingID, c.Entitlement.UsageReportingID)
	}
	assert.Equal(t, int32(1), verifies.Load(), "verified once, then looked up")

	// Expired: verified again, and refused.
	e.srv.Clock().Advance(marketplacetest.StatementTokenLifetime + time.Hour)
	_, err := e.reg.IdentifyStatement(ctx, stmt)
	var te *verify.TokenError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, int32(2), verifies.Load())

	// A forged statement, an unknown order, another account's claim.
	_, err = e.reg.IdentifyStatement(ctx, e.srv.StatementToken(marketplacetest.StatementParams{
		AccountID: acct, OrderID: order, Audience: testAudience, Bad: marketplacetest.BadTokenForeignKey}))
	require.ErrorAs(t, err, &te)
	_, err = e.reg.IdentifyStatement(ctx, e.statement(acct, "order-unknown"))
	require.ErrorIs(t, err, marketplace.ErrNotFound)
	_, err = e.reg.IdentifyStatement(ctx, e.statement("someone-else", order))
	require.ErrorIs(t, err, agent.ErrStatementMismatch)

	// Cancelled: refused at once.
	require.NoError(t, e.srv.Cancel(ctx, order, true))
	e.drain()
	_, err = e.reg.IdentifyStatement(ctx, e.statement(acct, order))
	require.ErrorIs(t, err, agent.ErrOrderInactive)
}

// downStore is a Store whose client lookups fail, as a database that is
// down.
type downStore struct{ agent.Store }

func (downStore) GetOrderByClient(context.Context, string) (agent.OrderRecord, error) {
	return agent.OrderRecord{}, errors.New("connection refused")
}

// A store failure is ours, not the caller's: 503, a JSON-RPC internal
// error, and the caller may retry.
func TestMiddlewareStoreDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *agent.Config) { c.Store = downStore{c.Store} })
	status, code, _, _ := e.call("Bearer token-some-client")
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Equal(t, -32603, code)
	assert.Contains(t, e.logs.String(), "connection refused")
}

// BenchmarkIdentifyStatement: a real statement seen before (warm: a hash
// and two lookups) against the same statement verified every time (cold:
// RSA and the claims), in the same run.
func BenchmarkIdentifyStatement(b *testing.B) {
	e := newEnv(b)
	acct, order := e.buy(true)
	stmt := e.statement(acct, order)
	ctx := context.Background()
	if r := e.register(stmt); r.status != http.StatusCreated {
		b.Fatalf("registration: %d %s", r.status, r.raw)
	}
	b.Run("warm", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.reg.IdentifyStatement(ctx, stmt); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			e.reg.ForgetStatements()
			if _, err := e.reg.IdentifyStatement(ctx, stmt); err != nil {
				b.Fatal(err)
			}
		}
	})
}
