package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/internal/testlog"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/internal/testenv"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/agent"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

const testAudience = "https://acme.example"

// testKey is the tests' SecretKey (32 bytes).
var testKey = []byte("0123456789abcdef0123456789abcdef")

// testIdP is an identity provider in memory: it counts clients, and fails
// as told.
type testIdP struct {
	mu        sync.Mutex
	n         int
	clients   map[string]agent.ClientRequest // live clients
	deleted   []string
	createErr error         // returned by the next CreateClient calls while set
	deleteErr error         // likewise for DeleteClient
	hold      chan struct{} // if set, CreateClient waits for it to close (concurrency tests)
	waiting   int           // CreateClient calls waiting for hold
	// idempotent makes CreateClient "create or return": a live client of
	// the same order is returned instead of a new one.
	idempotent bool
	secrets    map[string]string // client id → secret
}

func newTestIdP() *testIdP {
	return &testIdP{clients: map[string]agent.ClientRequest{}, secrets: map[string]string{}}
}

func (p *testIdP) CreateClient(ctx context.Context, r agent.ClientRequest) (agent.Client, error) {
	p.mu.Lock()
	hold, err := p.hold, p.createErr
	p.mu.Unlock()
	if hold != nil {
		p.set(func(p *testIdP) { p.waiting++ })
		<-hold
	}
	if err != nil {
		return agent.Client{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.idempotent {
		for id, c := range p.clients {
			if c.OrderID == r.OrderID {
				return agent.Client{ID: id, Secret: p.secrets[id]}, nil
			}
		}
	}
	p.n++
	id := fmt.Sprintf("client-%d", p.n)
	p.clients[id] = r
	p.secrets[id] = fmt.Sprintf("secret-%d-%s", p.n, strings.Repeat("x", 8))
	return agent.Client{ID: id, Secret: p.secrets[id]}, nil
}

func (p *testIdP) DeleteClient(ctx context.Context, clientID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.deleteErr != nil {
		return p.deleteErr
	}
	delete(p.clients, clientID)
	p.deleted = append(p.deleted, clientID)
	return nil
}

func (p *testIdP) set(f func(p *testIdP)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

// live returns the ids of the clients not deleted.
func (p *testIdP) live() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.clients)
}

func (p *testIdP) deletedIDs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.deleted...)
}

// appHandler records the app's callbacks the wrapper passes on.
type appHandler struct {
	marketplace.HandlerDefaults
	mu    sync.Mutex
	calls []string
}

func (a *appHandler) record(c *marketplace.Change) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, string(c.Type))
	return nil
}

func (a *appHandler) OnEntitlementCancelled(_ context.Context, c *marketplace.Change) error {
	return a.record(c)
}
func (a *appHandler) OnEntitlementDeleted(_ context.Context, c *marketplace.Change) error {
	return a.record(c)
}
func (a *appHandler) OnAccountDeleted(_ context.Context, c *marketplace.Change) error {
	return a.record(c)
}

// env is the emulator playing Google, a processor on memstore, a
// Registry with the test IdP, and its DCR endpoint over real HTTP.
type env struct {
	t     testing.TB
	srv   *marketplacetest.Server
	store *memstore.Store
	proc  *marketplace.Processor
	feed  *testenv.Feed
	idp   *testIdP
	app   *appHandler
	reg   *agent.Registry
	dcr   *httptest.Server
	logs  *testlog.Buffer

	client   *procurement.Client
	verifier *verify.StatementVerifier
	cfg      agent.Config // the Registry's, for replicas
}

const (
	timeout = 5 * time.Second
	tick    = time.Millisecond
)

func newEnv(t testing.TB, edit ...func(*agent.Config)) *env {
	t.Helper()
	e := &env{t: t, srv: marketplacetest.New(t), store: memstore.New(), idp: newTestIdP(), app: &appHandler{}, logs: &testlog.Buffer{}}
	rt := gcpmarketplace.Runtime{Clock: e.srv.Clock().Now, Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	e.client = testenv.Client(t, e.srv, nil)
	client := e.client
	v, err := verify.NewStatementVerifier(testAudience, &verify.Config{Runtime: rt, StatementCertsURL: e.srv.StatementCertsURL()})
	require.NoError(t, err)
	e.verifier = v
	cfg := agent.Config{Runtime: rt, Procurement: client, Store: e.store, Verifier: v, IdP: e.idp, SecretKey: testKey}
	for _, f := range edit {
		f(&cfg)
	}
	e.cfg = cfg
	e.reg, err = agent.New(cfg)
	require.NoError(t, err)
	e.proc, err = marketplace.New(e.store, client, e.reg.Handler(e.app), &marketplace.Config{Runtime: rt})
	require.NoError(t, err)
	e.reg.Attach(e.proc)
	e.feed = testenv.NewFeed(e.srv)
	e.dcr = httptest.NewServer(e.reg.DCRHandler())
	t.Cleanup(e.dcr.Close)
	return e
}

// buy purchases an active entitlement (its id is also its order id) and
// lets the processor hear of it when deliver is set.
func (e *env) buy(deliver bool) (accountID, orderID string) {
	e.t.Helper()
	id, err := e.srv.Purchase(context.Background(), marketplacetestPurchase(""))
	require.NoError(e.t, err)
	if deliver {
		e.drain()
	}
	ent, ok := e.srv.Entitlement(id)
	require.True(e.t, ok)
	return ent.AccountID, ent.OrderID
}

func (e *env) drain() { e.feed.Drain(e.t, context.Background(), e.proc) }

func (e *env) statement(accountID, orderID string) string {
	return e.srv.StatementToken(marketplacetest.StatementParams{AccountID: accountID, OrderID: orderID, Audience: testAudience})
}

// dcrReply is a DCR answer: the status, headers and decoded JSON body.
type dcrReply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r dcrReply) str(key string) string { s, _ := r.body[key].(string); return s }

func (e *env) do(method, body string) dcrReply {
	e.t.Helper()
	req, err := http.NewRequest(method, e.dcr.URL, strings.NewReader(body))
	require.NoError(e.t, err)
	return send(e.t, req)
}

// send sends a DCR request and reads the reply. It may run on any
// goroutine: failures are reported with Errorf.
func send(tb testing.TB, req *http.Request) dcrReply {
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Errorf("DCR request: %v", err)
		return dcrReply{}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Errorf("DCR reply: %v", err)
	}
	r := dcrReply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (e *env) register(statement string) dcrReply {
	e.t.Helper()
	body, err := json.Marshal(map[string]string{"software_statement": statement})
	require.NoError(e.t, err)
	return e.do(http.MethodPost, string(body))
}

// marketplacetestPurchase is an active, usage-based purchase by accountID
// ("" for a new account).
func marketplacetestPurchase(accountID string) marketplacetest.PurchaseParams {
	return marketplacetest.PurchaseParams{AccountID: accountID, AutoApprove: true, UsageBased: true}
}

// releaseTogether lets the concurrent registrations held in CreateClient
// go once all len(replies) of them wait there (so that none inserts before
// every one created a client), waits for them, and checks that they all got
// the one client left at the identity provider.
func (e *env) releaseTogether(t *testing.T, wg *sync.WaitGroup, hold chan struct{}, replies []dcrReply) {
	t.Helper()
	require.Eventually(t, func() bool {
		waiting := 0
		e.idp.set(func(p *testIdP) { waiting = p.waiting })
		return waiting == len(replies)
	}, timeout, tick)
	close(hold)
	wg.Wait()
	for i, r := range replies {
		require.Equal(t, http.StatusCreated, r.status, "reply %d: %s", i, r.raw)
		assert.Equal(t, replies[0].str("client_id"), r.str("client_id"), "reply %d", i)
		assert.Equal(t, replies[0].str("client_secret"), r.str("client_secret"), "reply %d", i)
	}
	assert.Equal(t, 1, e.idp.live(), "clients left at the identity provider")
}
