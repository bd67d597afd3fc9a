package agent_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/agent"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

func TestDCRSameCredentialsPerOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acct, order := e.buy(true)
	stmt := e.statement(acct, order)
	first := e.register(stmt)
	require.Equal(t, http.StatusCreated, first.status, first.raw)
	assert.Equal(t, "no-store", first.header.Get("Cache-Control"))
	assert.Equal(t, "no-cache", first.header.Get("Pragma"))
	assert.Equal(t, "application/json", first.header.Get("Content-Type"))
	assert.NotEmpty(t, first.str("client_id"))
	assert.NotEmpty(t, first.str("client_secret"))
	assert.Equal(t, float64(0), first.body["client_secret_expires_at"])
	assert.Equal(t, float64(e.srv.Clock().Now().Unix()), first.body["client_id_issued_at"])

	// Gemini Enterprise registers again, with a new statement and a field
	// this endpoint does not know.
	again := e.do(http.MethodPost, fmt.Sprintf(`{"software_statement":%q,"client_name":"GE"}`, e.statement(acct, order)))
	require.Equal(t, http.StatusCreated, again.status, again.raw)
	assert.Equal(t, first.str("client_id"), again.str("client_id"))
	assert.Equal(t, first.str("client_secret"), again.str("client_secret"))
	assert.Equal(t, 1, e.idp.live(), "clients at the identity provider")

	o, err := e.reg.OrderByClient(context.Background(), first.str("client_id"))
	require.NoError(t, err)
	ent, _ := e.srv.Entitlement(order)
	assert.Equal(t, agent.Order{ID: order, AccountID: acct, EntitlementID: ent.ID, UsageReportingID: ent.UsageReportingID,
		ClientID: first.str("client_id"), RedirectURIs: marketplacetest.GeminiEnterpriseRedirectURIs(), CreatedAt: o.CreatedAt}, o)
	assert.NotEmpty(t, ent.UsageReportingID)
	byID, err := e.reg.Order(context.Background(), order)
	require.NoError(t, err)
	assert.Equal(t, o, byID)

	rec, err := e.store.GetOrder(context.Background(), order)
	require.NoError(t, err)
	assert.NotContains(t, string(rec.SealedSecret), first.str("client_secret"), "the secret is stored sealed")
	assert.NotContains(t, e.logs.String(), first.str("client_secret"), "logs")
	assert.NotContains(t, e.logs.String(), stmt, "logs")
	assert.Contains(t, e.logs.String(), "DCR registered")
}

// A registration that arrives before the processor heard of the
// entitlement reads Procurement instead of refusing.
func TestDCRBeforePubSub(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acct, order := e.buy(false)
	_, err := e.proc.Entitlement(context.Background(), order)
	require.ErrorIs(t, err, marketplace.ErrNotFound)
	r := e.register(e.statement(acct, order))
	require.Equal(t, http.StatusCreated, r.status, r.raw)

	// The order's first request, still before the Pub/Sub message: the
	// Middleware reads Procurement too.
	status, _, _, c := e.call("Bearer token-" + r.str("client_id"))
	require.Equal(t, http.StatusOK, status)
	ent, _ := e.srv.Entitlement(order)
	assert.Equal(t, ent.ID, c.Entitlement.ID)
	assert.Equal(t, ent.UsageReportingID, c.Entitlement.UsageReportingID)
	assert.Equal(t, procurement.EntitlementActive, c.Entitlement.State)
	_, err = e.proc.Entitlement(context.Background(), order)
	require.ErrorIs(t, err, marketplace.ErrNotFound, "still not delivered")
}

func TestDCRRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acct, order := e.buy(true)
	otherAcct, otherOrder := e.buy(true)
	cancelledAcct, cancelled := e.buy(true)
	require.NoError(t, e.srv.Cancel(context.Background(), cancelled, true))
	e.drain()
	mint := func(p marketplacetest.StatementParams) string {
		if p.Audience == "" {
			p.Audience = testAudience
		}
		return e.srv.StatementToken(p)
	}
	cases := []struct {
		name, body string
		status     int
		code       string
	}{
		{"not JSON", `software_statement=x`, 400, agent.CodeInvalidSoftwareStatement},
		{"statement not a string", `{"software_statement":1}`, 400, agent.CodeInvalidSoftwareStatement},
		{"no statement", `{"client_name":"x"}`, 400, agent.CodeInvalidSoftwareStatement},
		{"body too large", `{"software_statement":"` + strings.Repeat("a", agent.DefaultMaxBodyBytes) + `"}`, 400, agent.CodeInvalidSoftwareStatement},
		{"not a JWT", `{"software_statement":"abc"}`, 400, agent.CodeInvalidSoftwareStatement},
		{"expired", stmtBody(mint(marketplacetest.StatementParams{AccountID: acct, OrderID: order, Bad: marketplacetest.BadTokenExpired})), 400, agent.CodeInvalidSoftwareStatement},
		{"other audience", stmtBody(mint(marketplacetest.StatementParams{AccountID: acct, OrderID: order, Audience: "https://evil.example"})), 400, agent.CodeInvalidSoftwareStatement},
		{"forged", stmtBody(mint(marketplacetest.StatementParams{AccountID: acct, OrderID: order, Bad: marketplacetest.BadTokenForeignKey})), 400, agent.CodeInvalidSoftwareStatement},
		{"no order", stmtBody(mint(marketplacetest.StatementParams{AccountID: acct, OrderID: order, Bad: marketplacetest.BadTokenNoOrder})), 400, agent.CodeInvalidSoftwareStatement},
		{"unknown account", stmtBody(mint(marketplacetest.StatementParams{AccountID: "no-such-account", OrderID: order})), 400, agent.CodeUnapprovedSoftwareStatement},
		{"unknown order", stmtBody(mint(marketplacetest.StatementParams{AccountID: acct, OrderID: "no-such-order"})), 400, agent.CodeUnapprovedSoftwareStatement},
		{"another account's order", stmtBody(mint(marketplacetest.StatementParams{AccountID: acct, OrderID: otherOrder})), 400, agent.CodeUnapprovedSoftwareStatement},
		{"order of the other account, its own", stmtBody(mint(marketplacetest.StatementParams{AccountID: otherAcct, OrderID: order})), 400, agent.CodeUnapprovedSoftwareStatement},
		{"cancelled entitlement", stmtBody(mint(marketplacetest.StatementParams{AccountID: cancelledAcct, OrderID: cancelled})), 400, agent.CodeUnapprovedSoftwareStatement},
		{"no redirect URIs", stmtBody(mint(marketplacetest.StatementParams{AccountID: acct, OrderID: order, Omit: []string{"auth_app_redirect_uris"}})), 400, agent.CodeInvalidRedirectURI},
	}
	for _, c := range cases {
		r := e.do(http.MethodPost, c.body)
		assert.Equal(t, c.status, r.status, "%s: %s", c.name, r.raw)
		assert.Equal(t, c.code, r.str("error"), c.name)
		assert.NotEmpty(t, r.str("error_description"), c.name)
		assert.Equal(t, "no-store", r.header.Get("Cache-Control"), c.name)
		if stmt, ok := strings.CutPrefix(c.body, `{"software_statement":"`); ok && len(stmt) > 40 {
			assert.NotContains(t, e.logs.String(), stmt[:40], "%s: the statement is not logged", c.name)
		}
	}
	assert.Equal(t, 0, e.idp.live(), "no client created")
	r := e.register(mint(marketplacetest.StatementParams{AccountID: acct, OrderID: order, Bad: marketplacetest.BadTokenExpired}))
	assert.Equal(t, "the software statement does not verify: "+string(verify.ErrTokenExpired), r.str("error_description"))
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		r := e.do(m, "")
		assert.Equal(t, http.StatusMethodNotAllowed, r.status, m)
		assert.Equal(t, http.MethodPost, r.header.Get("Allow"), m)
	}
}

func stmtBody(stmt string) string { return fmt.Sprintf(`{"software_statement":%q}`, stmt) }

func TestDCRIdentityProviderFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acct, order := e.buy(true)
	e.idp.set(func(p *testIdP) { p.createErr = fmt.Errorf("keycloak: 400 invalid redirect: %w", agent.ErrRefused) })
	r := e.register(e.statement(acct, order))
	assert.Equal(t, http.StatusBadRequest, r.status, r.raw)
	assert.Equal(t, agent.CodeInvalidRedirectURI, r.str("error"))

	e.idp.set(func(p *testIdP) { p.createErr = errors.New("keycloak: 503") })
	r = e.register(e.statement(acct, order))
	assert.Equal(t, http.StatusInternalServerError, r.status, r.raw)
	assert.Equal(t, agent.CodeServerError, r.str("error"))
	assert.NotContains(t, r.raw, "keycloak", "causes stay in the log")
	assert.Contains(t, e.logs.String(), "keycloak: 503")

	e.idp.set(func(p *testIdP) { p.createErr = nil })
	r = e.register(e.statement(acct, order))
	assert.Equal(t, http.StatusCreated, r.status, r.raw)
}

// Concurrent registrations for one order create one client: the losers
// delete theirs and answer with the winner's.
func TestDCRConcurrentRegistrations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acct, order := e.buy(true)
	hold := make(chan struct{})
	e.idp.set(func(p *testIdP) { p.hold = hold })
	const n = 6
	replies := make([]dcrReply, n)
	stmts := make([]string, n)
	for i := range stmts {
		stmts[i] = e.statement(acct, order)
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { replies[i] = e.register(stmts[i]) })
	}
	e.releaseTogether(t, &wg, hold, replies)
	assert.NotContains(t, e.idp.deletedIDs(), replies[0].str("client_id"))
}

// An idempotent identity provider gives every concurrent registration of
// an order the same client: the losers must not delete it, since the
// winner's order holds it.
func TestDCRConcurrentRegistrationsIdempotentIdP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	acct, order := e.buy(true)
	hold := make(chan struct{})
	e.idp.set(func(p *testIdP) { p.hold, p.idempotent = hold, true })
	const n = 4
	replies := make([]dcrReply, n)
	stmts := make([]string, n)
	for i := range stmts {
		stmts[i] = e.statement(acct, order)
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { replies[i] = e.register(stmts[i]) })
	}
	e.releaseTogether(t, &wg, hold, replies)
	assert.Empty(t, e.idp.deletedIDs(), "the one client is the stored order's")
	o, err := e.reg.Order(context.Background(), order)
	require.NoError(t, err)
	assert.Equal(t, replies[0].str("client_id"), o.ClientID)
}

func TestDCRSuccessStatusIsConfigurable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *agent.Config) { c.SuccessStatus = http.StatusOK })
	acct, order := e.buy(true)
	r := e.register(e.statement(acct, order))
	assert.Equal(t, http.StatusOK, r.status, r.raw)
}

// By default a customer who is still paying (a pending cancellation or
// plan change) registers and is served; UsableStates can narrow that.
func TestDCRUsableStates(t *testing.T) {
	t.Parallel()
	pendingCancellation := func(e *env) (string, string) {
		acct, order := e.buy(true)
		require.NoError(t, e.srv.Cancel(context.Background(), order, false)) // at the end of the term
		e.drain()
		ent, _ := e.srv.Entitlement(order)
		require.Equal(t, string(procurement.EntitlementPendingCancellation), string(ent.State))
		return acct, order
	}
	e := newEnv(t)
	r := e.register(e.statement(pendingCancellation(e)))
	assert.Equal(t, http.StatusCreated, r.status, r.raw)
	status, _, _, _ := e.call("Bearer token-" + r.str("client_id"))
	assert.Equal(t, http.StatusOK, status, "served until the term ends")
	for _, s := range agent.DefaultUsableStates() {
		assert.True(t, e.reg.Usable(s), s)
	}
	assert.True(t, e.reg.Usable(procurement.EntitlementPendingPlanChangeApproval))
	assert.False(t, e.reg.Usable(procurement.EntitlementCancelled))
	assert.False(t, e.reg.Usable(procurement.EntitlementActivationRequested))

	strict := newEnv(t, func(c *agent.Config) {
		c.UsableStates = []procurement.EntitlementState{procurement.EntitlementActive}
	})
	r = strict.register(strict.statement(pendingCancellation(strict)))
	assert.Equal(t, http.StatusBadRequest, r.status, r.raw)
	assert.Equal(t, agent.CodeUnapprovedSoftwareStatement, r.str("error"))
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	good := func() agent.Config {
		return agent.Config{Procurement: e.client, Store: e.store,
			Verifier: e.verifier, IdP: e.idp, SecretKey: testKey}
	}
	_, err := agent.New(good())
	require.NoError(t, err)
	bad := map[string]func(c *agent.Config){
		"no procurement": func(c *agent.Config) { c.Procurement = nil },
		"no store":       func(c *agent.Config) { c.Store = nil },
		"no verifier":    func(c *agent.Config) { c.Verifier = nil },
		"no idp":         func(c *agent.Config) { c.IdP = nil },
		"short key":      func(c *agent.Config) { c.SecretKey = testKey[:16] },
		"no key":         func(c *agent.Config) { c.SecretKey = nil },
		"zero key":       func(c *agent.Config) { c.SecretKey = make([]byte, 32) },
		"status 202":     func(c *agent.Config) { c.SuccessStatus = http.StatusAccepted },
		"negative body":  func(c *agent.Config) { c.MaxBodyBytes = -1 },
		"cancelled usable": func(c *agent.Config) {
			c.UsableStates = []procurement.EntitlementState{procurement.EntitlementCancelled}
		},
	}
	for name, edit := range bad {
		c := good()
		edit(&c)
		_, err := agent.New(c)
		assert.ErrorIs(t, err, agent.ErrInvalidConfig, name)
	}
}

func TestOrderLookupsNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.reg.Order(context.Background(), "nope")
	assert.ErrorIs(t, err, marketplace.ErrNotFound)
	_, err = e.reg.OrderByClient(context.Background(), "nope")
	assert.ErrorIs(t, err, marketplace.ErrNotFound)
}

func TestClientHidesItsSecret(t *testing.T) {
	t.Parallel()
	c := agent.Client{ID: "c1", Secret: "s3cret"}
	assert.NotContains(t, fmt.Sprint(c), "s3cret")
	assert.NotContains(t, fmt.Sprintf("%v %+v %s", c, c, c), "s3cret")
	assert.NotContains(t, c.LogValue().String(), "s3cret")
}

// A cancellation processed while a first registration creates its client
// finds no order to revoke; the registration re-reads the entitlement
// after storing the order, and revokes it itself.
func TestDCRRacingCancellation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	acct, order := e.buy(true)
	hold := make(chan struct{})
	e.idp.set(func(p *testIdP) { p.hold = hold })
	reply := make(chan dcrReply, 1)
	stmt := e.statement(acct, order)
	go func() { reply <- e.register(stmt) }()
	require.Eventually(t, func() bool {
		waiting := 0
		e.idp.set(func(p *testIdP) { waiting = p.waiting })
		return waiting == 1
	}, timeout, tick)
	require.NoError(t, e.srv.Cancel(ctx, order, true))
	e.drain() // the lifecycle finds no order yet
	close(hold)
	r := <-reply
	assert.Equal(t, http.StatusBadRequest, r.status, r.raw)
	assert.Equal(t, agent.CodeUnapprovedSoftwareStatement, r.str("error"))
	o, err := e.reg.Order(ctx, order)
	require.NoError(t, err)
	assert.True(t, o.Revoked())
	assert.Equal(t, 0, e.idp.live(), "the client was deleted")
}

// A listing without a sign-up page: the account waits for a sign-up that
// never comes, so registration is refused, unless ApproveAccounts signs it
// up at its first registration.
func TestDCRApproveAccounts(t *testing.T) {
	t.Parallel()
	buyUnapproved := func(e *env) (string, string) {
		id, err := e.srv.Purchase(context.Background(), marketplacetest.PurchaseParams{UsageBased: true})
		require.NoError(t, err)
		e.drain()
		ent, ok := e.srv.Entitlement(id)
		require.True(t, ok)
		acct, err := e.client.GetAccount(context.Background(), ent.AccountID, nil)
		require.NoError(t, err)
		require.False(t, acct.SignupApproved())
		return ent.AccountID, ent.OrderID
	}
	e := newEnv(t)
	r := e.register(e.statement(buyUnapproved(e)))
	assert.Equal(t, http.StatusBadRequest, r.status, r.raw)
	assert.Equal(t, agent.CodeUnapprovedSoftwareStatement, r.str("error"))

	e = newEnv(t, func(c *agent.Config) { c.ApproveAccounts = true })
	acct, order := buyUnapproved(e)
	r = e.register(e.statement(acct, order))
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	a, err := e.proc.Account(context.Background(), acct)
	require.NoError(t, err)
	assert.Equal(t, acct, a.VendorUserID, "signed up with the account id")
	got, err := e.client.GetAccount(context.Background(), acct, nil)
	require.NoError(t, err)
	assert.True(t, got.SignupApproved())
	ent, _ := e.srv.Entitlement(order)
	assert.Equal(t, string(procurement.EntitlementActive), string(ent.State), "the parked entitlement approved")
	again := e.register(e.statement(acct, order))
	assert.Equal(t, r.str("client_id"), again.str("client_id"))
}
