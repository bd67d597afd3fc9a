package conformance_test

import (
	"context"
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest/conformance"
	ccp "google.golang.org/api/cloudcommerceprocurement/v1"
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
	life := lifecycle(t, s)
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
		Lifecycle:                      life,
	}
}

// lifecycle buys usage-based entitlements and takes each to a stage of its
// life: never approved, rejected, cancelled at once and at term end after
// two hours ACTIVE, ended by its account's deletion, cancelled at a term
// end that Google flips to CANCELLED late; then three hours pass,
// so that reports of usage before the ends arrive late.
func lifecycle(t *testing.T, s *marketplacetest.Server) conformance.Lifecycle {
	t.Helper()
	ctx := context.Background()
	buy := func(auto bool) marketplacetest.Entitlement {
		id, err := s.Purchase(ctx, marketplacetest.PurchaseParams{UsageBased: true, AutoApprove: auto})
		if err != nil {
			t.Fatal(err)
		}
		e, ok := s.Entitlement(id)
		if !ok {
			t.Fatalf("entitlement %s not found", id)
		}
		return e
	}
	notApproved, rejected := buy(false), buy(false)
	cancelled, termEnded, deleted := buy(true), buy(true), buy(true)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Clock().Advance(2 * time.Hour)
	must(err)
	procurement, err := ccp.NewService(ctx, s.ClientOptions()...)
	must(err)
	_, err = procurement.Providers.Entitlements.Reject(rejected.Name, &ccp.RejectEntitlementRequest{Reason: "conformance"}).Context(ctx).Do()
	must(err)
	must(s.Cancel(ctx, cancelled.ID, true))
	must(s.Cancel(ctx, termEnded.ID, false))
	must(s.EndTerm(ctx, termEnded.ID))
	must(s.DeleteAccount(ctx, deleted.AccountID))
	// A term-end cancellation Google flips to CANCELLED 40 minutes after
	// the term's end: it ended at offerEndTime.
	lateID, err := s.Purchase(ctx, marketplacetest.PurchaseParams{UsageBased: true, AutoApprove: true, OfferEndTime: s.Clock().Now().Add(30 * time.Minute)})
	must(err)
	must(s.Cancel(ctx, lateID, false))
	termEndedLate, _ := s.Entitlement(lateID)
	_, err = s.Clock().Advance(70 * time.Minute)
	must(err)
	must(s.EndTerm(ctx, lateID))
	observed := s.Clock().Now()
	_, err = s.Clock().Advance(3 * time.Hour)
	must(err)
	life := func(e marketplacetest.Entitlement) conformance.Consumer {
		l, ok := s.ConsumerLife(e.UsageReportingID)
		if !ok {
			t.Fatalf("no consumer life for %s", e.UsageReportingID)
		}
		end := l.End
		if end.IsZero() {
			end = observed
		}
		return conformance.Consumer{ID: e.UsageReportingID, Active: l.Active, End: end}
	}
	return conformance.Lifecycle{
		NotApproved: life(notApproved), Rejected: life(rejected),
		Cancelled: life(cancelled), TermEnded: life(termEnded), AccountDeleted: life(deleted),
		TermEndedLate: conformance.Consumer{ID: termEndedLate.UsageReportingID, Active: life(termEndedLate).Active, End: termEndedLate.OfferEndTime},
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
