package procurement_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// newExampleClient starts an emulated Marketplace and a client on it. In
// production: procurement.NewClient(ctx, "your-provider-id") with
// Application Default Credentials.
func newExampleClient(ctx context.Context) (*marketplacetest.Server, *procurement.Client) {
	srv := marketplacetest.New(nil)
	client, err := procurement.NewClient(ctx, srv.ProviderID(), srv.ClientOptions()...)
	if err != nil {
		log.Fatal(err)
	}
	return srv, client
}

// Approve the account once the customer has signed up (accountID is the
// "sub" of the sign-up JWT), then the entitlements that were waiting for
// it. Running the same code again, as a redelivered Pub/Sub message would,
// changes nothing and reports it.
func ExampleClient_ApproveAccountSignup() {
	ctx := context.Background()
	srv, client := newExampleClient(ctx)
	defer srv.Close()

	// The customer buys before finishing sign-up.
	accountID, _ := srv.CreateAccount(ctx)
	_, _ = srv.Purchase(ctx, marketplacetest.PurchaseParams{AccountID: accountID, Plan: "standard"})

	for range 2 {
		res, err := client.ApproveAccountSignup(ctx, accountID)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("sign-up:", res.Outcome)

		waiting := procurement.And(
			procurement.FilterAccount(accountID),
			procurement.FilterState(procurement.EntitlementActivationRequested),
		)
		for e, err := range client.ListEntitlements(ctx, &procurement.ListEntitlementsParams{Filter: waiting}) {
			if err != nil {
				log.Fatal(err)
			}
			res, err := client.ApproveEntitlement(ctx, e.ID, nil)
			if err != nil {
				log.Fatal(err)
			}
			fmt.Println("entitlement:", res.Outcome, res.Entitlement.State)
		}
	}
	// Output:
	// sign-up: applied
	// entitlement: applied ENTITLEMENT_ACTIVE
	// sign-up: already done
}

// Approving an entitlement before the account's sign-up fails with an
// error that says what to do.
func ExampleClient_ApproveEntitlement() {
	ctx := context.Background()
	srv, client := newExampleClient(ctx)
	defer srv.Close()

	accountID, _ := srv.CreateAccount(ctx)
	entitlementID, _ := srv.Purchase(ctx, marketplacetest.PurchaseParams{AccountID: accountID})

	_, err := client.ApproveEntitlement(ctx, entitlementID, nil)
	fmt.Println("before sign-up, sign-up not approved:", errors.Is(err, procurement.ErrSignupNotApproved))
	fmt.Println("before sign-up, failed precondition:", errors.Is(err, procurement.ErrFailedPrecondition))

	if _, err := client.ApproveAccountSignup(ctx, accountID); err != nil {
		log.Fatal(err)
	}
	for range 2 { // e.g. the ENTITLEMENT_CREATION_REQUESTED message delivered twice
		res, err := client.ApproveEntitlement(ctx, entitlementID, nil)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(res.Outcome, res.Entitlement.State)
	}
	// Output:
	// before sign-up, sign-up not approved: true
	// before sign-up, failed precondition: true
	// applied ENTITLEMENT_ACTIVE
	// already done ENTITLEMENT_ACTIVE
}

// ApprovePlanChange approves the pending plan read from the API. With
// ExpectedPlan it refuses to approve a plan the caller did not review.
func ExampleClient_ApprovePlanChange() {
	ctx := context.Background()
	srv, client := newExampleClient(ctx)
	defer srv.Close()

	accountID, _ := srv.CreateAccount(ctx)
	if _, err := client.ApproveAccountSignup(ctx, accountID); err != nil {
		log.Fatal(err)
	}
	entitlementID, _ := srv.Purchase(ctx, marketplacetest.PurchaseParams{AccountID: accountID, Plan: "standard"})
	if _, err := client.ApproveEntitlement(ctx, entitlementID, nil); err != nil {
		log.Fatal(err)
	}
	_ = srv.RequestPlanChange(ctx, entitlementID, "enterprise")

	_, err := client.ApprovePlanChange(ctx, entitlementID, &procurement.ApprovePlanChangeParams{ExpectedPlan: "pro"})
	var mismatch *procurement.PlanMismatchError
	if errors.As(err, &mismatch) {
		fmt.Printf("not approved: pending plan is %s, expected %s\n", mismatch.Actual, mismatch.Expected)
	}

	res, err := client.ApprovePlanChange(ctx, entitlementID, &procurement.ApprovePlanChangeParams{ExpectedPlan: "enterprise"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Outcome, res.Entitlement.State, res.Entitlement.Plan)

	res, err = client.ApprovePlanChange(ctx, entitlementID, &procurement.ApprovePlanChangeParams{ExpectedPlan: "enterprise"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Outcome, res.Entitlement.Plan)
	// Output:
	// not approved: pending plan is enterprise, expected pro
	// applied ENTITLEMENT_ACTIVE enterprise
	// already done enterprise
}

func ExampleFilter() {
	f := procurement.And(
		procurement.FilterAccount("E-1234-5678"),
		procurement.Or(
			procurement.FilterState(procurement.EntitlementActive),
			procurement.FilterState(procurement.EntitlementPendingCancellation),
		),
		procurement.Not(procurement.FilterPlan("legacy")),
	)
	fmt.Println(f)
	// Output:
	// account="E-1234-5678" AND (state=ENTITLEMENT_ACTIVE OR state=ENTITLEMENT_PENDING_CANCELLATION) AND NOT plan=legacy
}

// A client with a Config: the logger, meter provider and clock shared with
// the rest of the SDK (the same Runtime goes in marketplace.Config and
// usage.Config), and a tighter retry budget. The options after the Config
// are Google's; in production pass none (Application Default Credentials)
// or, for instance, option.WithCredentialsFile.
func ExampleNewClientWithConfig() {
	ctx := context.Background()
	srv := marketplacetest.New(nil) // plays Google in this example
	defer srv.Close()
	rt := gcpmarketplace.Runtime{Logger: slog.New(slog.DiscardHandler)}
	client, err := procurement.NewClientWithConfig(ctx, srv.ProviderID(), &procurement.Config{
		Runtime: rt,
		Retry:   procurement.RetryPolicy{MaxAttempts: 3, MaxElapsed: 10 * time.Second},
	}, srv.ClientOptions()...)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(client.EntitlementName("e1"))
	// Output: providers/acme-provider/entitlements/e1
}
