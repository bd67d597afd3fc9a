package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/agent"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// exampleIdP stands in for the vendor's authorization server (Keycloak,
// Okta...): a real one creates the OAuth client over its admin API.
type exampleIdP struct {
	mu      sync.Mutex
	clients map[string]bool
}

func (p *exampleIdP) CreateClient(_ context.Context, r agent.ClientRequest) (agent.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := "client-for-" + r.OrderID
	p.clients[id] = true
	return agent.Client{ID: id, Secret: "generated-secret"}, nil
}

func (p *exampleIdP) DeleteClient(_ context.Context, clientID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.clients, clientID)
	return nil
}

// A customer buys the agent; Gemini Enterprise registers twice over DCR
// and gets the same client; the customer cancels and the client is
// deleted. The emulator plays Google.
func Example() {
	ctx := context.Background()
	srv := marketplacetest.New(nil)
	defer srv.Close()
	rt := gcpmarketplace.Runtime{Clock: srv.Clock().Now}
	client, err := procurement.NewClient(ctx, srv.ProviderID(), srv.ClientOptions()...)
	if err != nil {
		log.Fatal(err)
	}
	store := memstore.New() // also an agent.Store; so are sqlitestore and pgstore
	// Against Google: &verify.Config{} (the agentspace keys at Google's URL).
	verifier, err := verify.NewStatementVerifier("https://acme.example",
		&verify.Config{Runtime: rt, StatementCertsURL: srv.StatementCertsURL()})
	if err != nil {
		log.Fatal(err)
	}
	idp := &exampleIdP{clients: map[string]bool{}}
	reg, err := agent.New(agent.Config{Runtime: rt, Procurement: client, Store: store,
		Verifier: verifier, IdP: idp, SecretKey: []byte("32 bytes from your secret store!")}) // openssl rand -hex 32, decoded
	if err != nil {
		log.Fatal(err)
	}
	proc, err := marketplace.New(store, client, reg.Handler(marketplace.HandlerDefaults{}), // your app's handler
		&marketplace.Config{Runtime: rt})
	if err != nil {
		log.Fatal(err)
	}
	reg.Attach(proc)                            // the Registry reads the stored entitlements through it
	dcr := httptest.NewServer(reg.DCRHandler()) // the agent card's DCR target_url
	defer dcr.Close()
	deliver := func() { // what Pub/Sub and Processor.Run do
		for _, p := range srv.Published() {
			if err := proc.HandleMessage(ctx, marketplace.Message{ID: p.EventID, Data: p.Data}); err != nil {
				log.Fatal(err)
			}
		}
	}

	order, err := srv.Purchase(ctx, marketplacetest.PurchaseParams{AutoApprove: true})
	if err != nil {
		log.Fatal(err)
	}
	deliver()
	ent, _ := srv.Entitlement(order)
	for range 2 {
		stmt := srv.StatementToken(marketplacetest.StatementParams{AccountID: ent.AccountID, OrderID: ent.OrderID, Audience: "https://acme.example"})
		resp, err := http.Post(dcr.URL, "application/json", strings.NewReader(`{"software_statement":"`+stmt+`"}`))
		if err != nil {
			log.Fatal(err)
		}
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, out["client_id"] == "client-for-"+order, out["client_secret"], out["client_secret_expires_at"])
	}

	if err := srv.Cancel(ctx, order, true); err != nil {
		log.Fatal(err)
	}
	deliver()
	o, err := reg.Order(ctx, ent.OrderID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("revoked:", o.Revoked(), "clients left:", len(idp.clients))
	// Output:
	// 201 true generated-secret 0
	// 201 true generated-secret 0
	// revoked: true clients left: 0
}
