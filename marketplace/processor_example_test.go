package marketplace_test

import (
	"context"
	"fmt"
	"log"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// A customer buys before finishing the sign-up: the entitlement is parked,
// then approved when the sign-up completes. The app's handler sees each
// change once, with the entitlement as the Procurement API has it. The
// emulator plays Google; messages are fed to HandleMessage as Receive
// would.
func Example() {
	ctx := context.Background()
	srv := marketplacetest.New(nil)
	defer srv.Close()
	client, err := procurement.NewClient(ctx, srv.ProviderID(), srv.ClientOptions()...)
	if err != nil {
		log.Fatal(err)
	}
	handler := marketplace.HandlerFunc(func(ctx context.Context, c *marketplace.Change) error {
		if c.Entitlement != nil {
			fmt.Printf("%s: plan %s, %s\n", c.Type, c.Entitlement.Plan, c.Entitlement.State)
		} else {
			fmt.Printf("%s\n", c.Type)
		}
		return nil
	})
	proc, err := marketplace.New(memstore.New(), client, handler,
		&marketplace.Config{Runtime: gcpmarketplace.Runtime{Clock: srv.Clock().Now}}) // nil Policy: approve automatically
	if err != nil {
		log.Fatal(err)
	}
	deliver := func(from int) int {
		pub := srv.Published()
		for _, p := range pub[from:] {
			if err := proc.HandleMessage(ctx, marketplace.Message{ID: p.MessageID, Data: p.Data}); err != nil {
				log.Fatal(err)
			}
		}
		return len(pub)
	}

	entID, err := srv.Purchase(ctx, marketplacetest.PurchaseParams{Plan: "pro"})
	if err != nil {
		log.Fatal(err)
	}
	seen := deliver(0) // account message, ENTITLEMENT_CREATION_REQUESTED: parked

	ent, _ := srv.Entitlement(entID)
	res, err := proc.CompleteSignup(ctx, marketplace.SignupParams{AccountID: ent.AccountID, VendorUserID: "tenant-42"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sign-up:", res.Entitlements[0].Outcomes, res.Entitlements[0].State)
	deliver(seen) // ENTITLEMENT_ACTIVE, already applied: no callback

	// Output:
	// ACCOUNT_ACTIVE
	// ENTITLEMENT_CREATION_REQUESTED: plan pro, ENTITLEMENT_ACTIVATION_REQUESTED
	// ENTITLEMENT_ACTIVE: plan pro, ENTITLEMENT_ACTIVE
	// sign-up: [approved] ENTITLEMENT_ACTIVE
}

// A manual approval queue: requests wait for an operator while the
// customer sees a status message.
func ExampleManualApproval() {
	ctx := context.Background()
	srv := marketplacetest.New(nil)
	defer srv.Close()
	client, err := procurement.NewClient(ctx, srv.ProviderID(), srv.ClientOptions()...)
	if err != nil {
		log.Fatal(err)
	}
	proc, err := marketplace.New(memstore.New(), client, marketplace.HandlerDefaults{},
		&marketplace.Config{Policy: marketplace.ManualApproval("Provisioning, expect 1 business day")})
	if err != nil {
		log.Fatal(err)
	}
	acct, _ := srv.CreateAccount(ctx)
	if _, err := proc.CompleteSignup(ctx, marketplace.SignupParams{AccountID: acct, VendorUserID: "tenant-7"}); err != nil {
		log.Fatal(err)
	}
	entID, _ := srv.Purchase(ctx, marketplacetest.PurchaseParams{AccountID: acct})
	for _, p := range srv.Published() {
		if err := proc.HandleMessage(ctx, marketplace.Message{ID: p.MessageID, Data: p.Data}); err != nil {
			log.Fatal(err)
		}
	}
	queue, _ := proc.PendingApprovals(ctx)
	ent, _ := srv.Entitlement(entID)
	fmt.Printf("%d waiting (%s); the customer sees %q\n", len(queue), queue[0].Kind, ent.MessageToUser)

	if err := proc.Approve(ctx, entID); err != nil {
		log.Fatal(err)
	}
	ent, _ = srv.Entitlement(entID)
	fmt.Println(ent.State)
	// Output:
	// 1 waiting (entitlement); the customer sees "Provisioning, expect 1 business day"
	// ENTITLEMENT_ACTIVE
}
