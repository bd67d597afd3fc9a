package marketplace_test

import (
	"context"
	"fmt"
	"log"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// An entitlement's history: each change the processor committed, with
// what caused it. The purchase came by message (and was parked); the
// sign-up approved it.
func ExampleProcessor_History() {
	ctx := context.Background()
	srv := marketplacetest.New(nil)
	defer srv.Close()
	client, err := procurement.NewClient(ctx, srv.ProviderID(), srv.ClientOptions()...)
	if err != nil {
		log.Fatal(err)
	}
	proc, err := marketplace.New(memstore.New(), client, marketplace.HandlerDefaults{}, nil)
	if err != nil {
		log.Fatal(err)
	}
	entID, _ := srv.Purchase(ctx, marketplacetest.PurchaseParams{Plan: "pro"})
	for _, p := range srv.Published() {
		if err := proc.HandleMessage(ctx, marketplace.Message{ID: p.MessageID, Data: p.Data}); err != nil {
			log.Fatal(err)
		}
	}
	ent, _ := srv.Entitlement(entID)
	if _, err := proc.CompleteSignup(ctx, marketplace.SignupParams{AccountID: ent.AccountID, VendorUserID: "tenant-42"}); err != nil {
		log.Fatal(err)
	}

	history, err := proc.History(ctx, marketplace.HistoryQuery{EntitlementID: entID})
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range history {
		fmt.Printf("%s by %s: %q -> %s\n", t.Change, t.Source, t.FromState, t.ToState)
	}
	// Output:
	// ENTITLEMENT_CREATION_REQUESTED by message: "" -> ENTITLEMENT_ACTIVATION_REQUESTED
	// ENTITLEMENT_ACTIVE by signup: "ENTITLEMENT_ACTIVATION_REQUESTED" -> ENTITLEMENT_ACTIVE
}
