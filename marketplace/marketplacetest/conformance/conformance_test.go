package conformance_test

import (
	"context"
	"testing"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest/conformance"
)

// emulatorTarget starts the emulator with an approved usage-based
// entitlement and a second one whose account has not signed up (so that
// paging has something to page), and points the suite at it.
func emulatorTarget(t *testing.T) conformance.Target {
	t.Helper()
	ctx := context.Background()
	s := marketplacetest.New(t)
	acct, err := s.CreateAccount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	entID, err := s.Purchase(ctx, marketplacetest.PurchaseParams{AccountID: acct, UsageBased: true, AutoApprove: true})
	if err != nil {
		t.Fatal(err)
	}
	pending, err := s.Purchase(ctx, marketplacetest.PurchaseParams{Plan: "pro"})
	if err != nil {
		t.Fatal(err)
	}
	reseller, err := s.CreateAccount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetAccountDetails(ctx, reseller, marketplacetest.AccountDetails{
		InputProperties:              map[string]any{"company": "Example Reseller Ltd"},
		ResellerParentBillingAccount: "billingAccounts/012345-6789AB-CDEF01",
	}); err != nil {
		t.Fatal(err)
	}
	detailed, err := s.Purchase(ctx, marketplacetest.PurchaseParams{
		AccountID: reseller, AutoApprove: true,
		Offer:             "projects/123/services/" + s.ServiceName() + "/privateOffers/conformance-offer",
		OfferEndTime:      s.Clock().Now().AddDate(1, 0, 0),
		QuoteExternalName: "quotes/conformance-quote",
		InputProperties:   map[string]any{"seats": "10"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return conformance.Target{
		Options:       s.ClientOptions(),
		Endpoint:      s.URL() + "/",
		ProviderID:    s.ProviderID(),
		ServiceName:   s.ServiceName(),
		EntitlementID: entID,
		AccountID:     acct,

		UnapprovedAccountEntitlementID: pending,
		ReportMetric:                   s.ServiceName() + "/requests",
		DetailedEntitlementID:          detailed,
		ResellerAccountID:              reseller,
	}
}

func TestEmulator(t *testing.T) {
	conformance.Run(t, emulatorTarget(t))
}

// TestGoogle runs the same behaviours against Google when a sandbox
// listing is named in the environment (see the package doc).
func TestGoogle(t *testing.T) {
	tgt, why, ok := conformance.FromEnv()
	if !ok {
		t.Skip(why)
	}
	conformance.Run(t, tgt)
}
