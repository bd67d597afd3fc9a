package ops_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/ops"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// Mount the ops console and API next to the application's own routes,
// behind a bearer token (or the vendor's own Authenticator), and read the
// overview as a monitoring script would. The emulator plays Google.
func Example() {
	ctx := context.Background()
	srv := marketplacetest.New(nil)
	defer srv.Close()
	client, err := procurement.NewClient(ctx, srv.ProviderID(), srv.ClientOptions()...)
	if err != nil {
		log.Fatal(err)
	}
	rt := gcpmarketplace.Runtime{Clock: srv.Clock().Now}
	proc, err := marketplace.New(memstore.New(), client, marketplace.HandlerFunc(
		func(context.Context, *marketplace.Change) error { return nil }), &marketplace.Config{Runtime: rt})
	if err != nil {
		log.Fatal(err)
	}
	defer proc.Close()

	h, err := ops.New(ops.Config{
		Runtime:   rt,
		Processor: proc,
		Auth:      ops.BearerTokens(map[string]string{"change-me": "oncall"}),
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ops/", h)
	web := httptest.NewServer(mux)
	defer web.Close()

	// A customer buys but never finishes signing up: parked.
	if _, err := srv.Purchase(ctx, marketplacetest.PurchaseParams{}); err != nil {
		log.Fatal(err)
	}
	for _, p := range srv.Published() {
		if err := proc.HandleMessage(ctx, marketplace.Message{ID: p.MessageID, Data: p.Data}); err != nil {
			log.Fatal(err)
		}
	}

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, web.URL+"/ops/api/v1/overview", nil)
	req.Header.Set("Authorization", "Bearer change-me")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var counts map[string]int
	if err := json.NewDecoder(resp.Body).Decode(&counts); err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Status, "parked:", counts["parked"], "poison:", counts["poison"])
	// Output: 200 OK parked: 1 poison: 0
}
