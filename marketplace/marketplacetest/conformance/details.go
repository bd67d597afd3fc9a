package conformance

import (
	"context"
	"strings"
	"testing"
	"time"
)

// EntitlementDetails: an entitlement bought through a quote, from a
// private offer with a fixed end date, carries quoteExternalName,
// entitlementBenefitIds, inputProperties and subscriptionEndTime
// (discovery document, Entitlement). Runs where
// Target.DetailedEntitlementID names such an entitlement.
func EntitlementDetails(t *testing.T, tgt Target) {
	if tgt.DetailedEntitlementID == "" {
		t.Skip("needs Target.DetailedEntitlementID (an entitlement bought through a quote from a fixed-end private offer)")
	}
	ctx := context.Background()
	name := tgt.provider() + "/entitlements/" + tgt.DetailedEntitlementID
	e, err := Procurement(t, tgt).Providers.Entitlements.Get(name).Context(ctx).Do()
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	if e.QuoteExternalName == "" {
		t.Error("quoteExternalName is empty for a purchase through a quote")
	}
	if len(e.EntitlementBenefitIds) == 0 {
		t.Error("entitlementBenefitIds is empty")
	}
	if len(e.InputProperties) == 0 {
		t.Error("inputProperties is empty")
	}
	if _, err := time.Parse(time.RFC3339Nano, e.SubscriptionEndTime); err != nil {
		t.Errorf("subscriptionEndTime %q of a fixed-end offer: %v", e.SubscriptionEndTime, err)
	}
}

// AccountViews: accounts.get answers resellerParentBillingAccount
// ("billingAccounts/{id}") for a reseller subaccount's account with
// view=ACCOUNT_VIEW_FULL only, and inputProperties in both views
// (discovery document, Account). Runs where Target.ResellerAccountID names
// such an account.
func AccountViews(t *testing.T, tgt Target) {
	if tgt.ResellerAccountID == "" {
		t.Skip("needs Target.ResellerAccountID (an account of a reseller subaccount)")
	}
	ctx := context.Background()
	name := tgt.provider() + "/accounts/" + tgt.ResellerAccountID
	svc := Procurement(t, tgt)
	full, err := svc.Providers.Accounts.Get(name).View("ACCOUNT_VIEW_FULL").Context(ctx).Do()
	if err != nil {
		t.Fatalf("get %s FULL: %v", name, err)
	}
	if !strings.HasPrefix(full.ResellerParentBillingAccount, "billingAccounts/") {
		t.Errorf("FULL: resellerParentBillingAccount %q, want billingAccounts/{id}", full.ResellerParentBillingAccount)
	}
	if len(full.InputProperties) == 0 {
		t.Error("FULL: inputProperties is empty")
	}
	for _, view := range []string{"ACCOUNT_VIEW_BASIC", ""} {
		call := svc.Providers.Accounts.Get(name)
		if view != "" {
			call = call.View(view)
		}
		a, err := call.Context(ctx).Do()
		if err != nil {
			t.Fatalf("get %s %q: %v", name, view, err)
		}
		if a.ResellerParentBillingAccount != "" {
			t.Errorf("view %q answers resellerParentBillingAccount %q; only FULL does", view, a.ResellerParentBillingAccount)
		}
	}
}
