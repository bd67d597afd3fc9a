package agent_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/internal/testenv"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/agent"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// The agent's A2A endpoint behind the middleware: the handler learns
// which order is calling and bills its entitlement; a token the app's
// check refuses gets 401.
func ExampleRegistry_Middleware() {
	ctx := context.Background()
	emu := marketplacetest.New(nil)
	defer emu.Close()
	client, err := procurement.NewClient(ctx, emu.ProviderID(), emu.ClientOptions()...)
	if err != nil {
		log.Fatal(err)
	}
	store := memstore.New()
	rt := gcpmarketplace.Runtime{Clock: emu.Clock().Now}
	verifier, err := verify.NewStatementVerifier("https://agent.example",
		&verify.Config{Runtime: rt, StatementCertsURL: emu.StatementCertsURL()})
	if err != nil {
		log.Fatal(err)
	}
	// SecretKey: 32 random bytes from your secret store (openssl rand -hex 32).
	reg, err := agent.New(agent.Config{Runtime: rt, Procurement: client, Store: store,
		Verifier: verifier, IdP: &exampleIdP{clients: map[string]bool{}}, SecretKey: []byte("32 bytes from your secret store!")})
	if err != nil {
		log.Fatal(err)
	}
	proc, err := marketplace.New(store, client, reg.Handler(marketplace.HandlerDefaults{}), &marketplace.Config{Runtime: rt})
	if err != nil {
		log.Fatal(err)
	}
	reg.Attach(proc)

	// A customer bought; Pub/Sub told the processor; Gemini Enterprise
	// registered at the DCR endpoint.
	id, err := emu.Purchase(ctx, marketplacetest.PurchaseParams{UsageBased: true, AutoApprove: true, OrderID: "order-1"})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range testenv.NewFeed(emu).Next() {
		if err := proc.HandleMessage(ctx, m); err != nil {
			log.Fatal(err)
		}
	}
	ent, _ := emu.Entitlement(id)
	dcr := httptest.NewServer(reg.DCRHandler())
	defer dcr.Close()
	clientID, _, err := emu.RegisterAgent(ctx, dcr.URL, marketplacetest.StatementParams{
		AccountID: ent.AccountID, OrderID: "order-1", Audience: "https://agent.example"})
	if err != nil {
		log.Fatal(err)
	}

	// Your authorization server's token check (introspection, JWT).
	tokens := agent.TokenCheckerFunc(func(_ context.Context, tok string) (string, error) {
		if tok == "token-of-"+clientID {
			return clientID, nil
		}
		return "", fmt.Errorf("unknown token")
	})
	a2a := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, _ := agent.CallerFrom(r.Context())
		// usage.Record{EntitlementID: caller.Entitlement.ID, ...}
		fmt.Println("order", caller.Order.ID, "bills", caller.Entitlement.UsageReportingID == ent.UsageReportingID)
	})
	h := reg.Middleware(tokens)(a2a)

	for _, tok := range []string{"token-of-" + clientID, "forged"} {
		req := httptest.NewRequest(http.MethodPost, "/a2a", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		fmt.Println(w.Code)
	}
	// Output:
	// order order-1 bills true
	// 200
	// 401
}
