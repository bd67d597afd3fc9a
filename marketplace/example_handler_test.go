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

// provisioner is an application's Handler: it embeds HandlerDefaults and
// writes the callbacks it needs. Each reads its argument: the entitlement
// as just re-read (c.Entitlement), the state before (c.Previous) and the
// customer linked at sign-up (c.Linked).
type provisioner struct {
	marketplace.HandlerDefaults
}

func (provisioner) OnEntitlementActive(_ context.Context, c *marketplace.Change) error {
	fmt.Printf("provision plan %s for %s\n", c.Entitlement.Plan, c.Linked.VendorUserID)
	return nil
}

func (provisioner) OnEntitlementPlanChanged(_ context.Context, c *marketplace.Change) error {
	fmt.Printf("move %s from plan %s to %s\n", c.Linked.VendorUserID, c.Previous.Plan, c.Entitlement.Plan)
	return nil
}

func (provisioner) OnEntitlementCancelled(_ context.Context, c *marketplace.Change) error {
	fmt.Printf("turn off %s's plan %s (%s)\n", c.Linked.VendorUserID, c.Entitlement.Plan, c.Entitlement.State)
	return nil
}

func (provisioner) OnAccountDeleted(_ context.Context, c *marketplace.Change) error {
	fmt.Printf("purge %s\n", c.Linked.VendorUserID)
	return nil
}

// A Handler sees each change of a customer's subscription once, with the
// state to act on in its argument. The emulator plays Google; messages are
// fed to HandleMessage as Run would.
func ExampleHandler() {
	ctx := context.Background()
	srv := marketplacetest.New(nil)
	defer srv.Close()
	client, err := procurement.NewClient(ctx, srv.ProviderID(), srv.ClientOptions()...)
	if err != nil {
		log.Fatal(err)
	}
	proc, err := marketplace.New(memstore.New(), client, provisioner{}, nil)
	if err != nil {
		log.Fatal(err)
	}
	fed := 0
	deliver := func() {
		pub := srv.Published()
		for _, p := range pub[fed:] {
			if err := proc.HandleMessage(ctx, marketplace.Message{ID: p.MessageID, Data: p.Data}); err != nil {
				log.Fatal(err)
			}
		}
		fed = len(pub)
	}

	acct, _ := srv.CreateAccount(ctx)
	if _, err := proc.CompleteSignup(ctx, marketplace.SignupParams{AccountID: acct, VendorUserID: "tenant-42"}); err != nil {
		log.Fatal(err)
	}
	ent, _ := srv.Purchase(ctx, marketplacetest.PurchaseParams{AccountID: acct, Plan: "basic"})
	deliver()
	_ = srv.RequestPlanChange(ctx, ent, "pro")
	deliver()
	_ = srv.Cancel(ctx, ent, true)
	deliver()
	_ = srv.DeleteAccount(ctx, acct)
	deliver()
	// Output:
	// provision plan basic for tenant-42
	// move tenant-42 from plan basic to pro
	// turn off tenant-42's plan pro (ENTITLEMENT_CANCELLED)
	// purge tenant-42
}
