package conformance

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// EntitlementGet: entitlements.get answers the resource under its full name
// with a state, the owning account and the product (discovery document,
// Entitlement).
func EntitlementGet(t *testing.T, tgt Target) {
	ctx := context.Background()
	e, err := Procurement(t, tgt).Providers.Entitlements.Get(tgt.entitlementName()).Context(ctx).Do()
	if err != nil {
		t.Fatalf("get %s: %v", tgt.entitlementName(), err)
	}
	if e.Name != tgt.entitlementName() {
		t.Errorf("name = %q, want %q", e.Name, tgt.entitlementName())
	}
	if e.Account != tgt.accountName() {
		t.Errorf("account = %q, want %q", e.Account, tgt.accountName())
	}
	if e.State == "" || e.Product == "" {
		t.Errorf("state %q, product %q: both are always set", e.State, e.Product)
	}
	if _, err := time.Parse(time.RFC3339Nano, e.UpdateTime); err != nil {
		t.Errorf("updateTime %q is not an RFC 3339 timestamp: %v", e.UpdateTime, err)
	}
}

// AccountGet: accounts.get answers the account with its provider, a state
// and its approvals (discovery document, Account).
func AccountGet(t *testing.T, tgt Target) {
	ctx := context.Background()
	a, err := Procurement(t, tgt).Providers.Accounts.Get(tgt.accountName()).Context(ctx).Do()
	if err != nil {
		t.Fatalf("get %s: %v", tgt.accountName(), err)
	}
	if a.Name != tgt.accountName() {
		t.Errorf("name = %q, want %q", a.Name, tgt.accountName())
	}
	if a.State == "" {
		t.Error("state is empty")
	}
	for _, ap := range a.Approvals {
		if ap.Name == "" || ap.State == "" {
			t.Errorf("approval %+v lacks name or state", ap)
		}
	}
}

// EntitlementListByAccount: the filter account=<id> (entitlements.list
// reference) lists the entitlement, and only entitlements of that account.
func EntitlementListByAccount(t *testing.T, tgt Target) {
	ctx := context.Background()
	filter := fmt.Sprintf("account=%s", tgt.AccountID)
	call := Procurement(t, tgt).Providers.Entitlements.List(tgt.provider()).Filter(filter)
	found := false
	err := call.Pages(ctx, func(r *ccpListResponse) error {
		for _, e := range r.Entitlements {
			if e.Account != tgt.accountName() {
				t.Errorf("filter %q listed %s of %s", filter, e.Name, e.Account)
			}
			found = found || e.Name == tgt.entitlementName()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list %q: %v", filter, err)
	}
	if !found {
		t.Errorf("filter %q did not list %s", filter, tgt.entitlementName())
	}
}

// EntitlementListPages: with pageSize=1 every page holds at most one
// entitlement and nextPageToken walks the whole list without repeating one.
func EntitlementListPages(t *testing.T, tgt Target) {
	ctx := context.Background()
	seen := map[string]bool{}
	pages := 0
	err := Procurement(t, tgt).Providers.Entitlements.List(tgt.provider()).PageSize(1).
		Pages(ctx, func(r *ccpListResponse) error {
			pages++
			if len(r.Entitlements) > 1 {
				t.Errorf("page %d holds %d entitlements, pageSize 1", pages, len(r.Entitlements))
			}
			for _, e := range r.Entitlements {
				if seen[e.Name] {
					t.Errorf("%s listed twice", e.Name)
				}
				seen[e.Name] = true
			}
			if pages >= 50 {
				return errStop
			}
			return nil
		})
	if err != nil && err != errStop {
		t.Fatalf("list: %v", err)
	}
	if len(seen) == 0 {
		t.Error("the provider's list is empty, but it holds the target entitlement")
	}
}

// EntitlementNotFound: an unknown entitlement of the provider is 404.
func EntitlementNotFound(t *testing.T, tgt Target) {
	ctx := context.Background()
	name := tgt.provider() + "/entitlements/conformance-does-not-exist"
	_, err := Procurement(t, tgt).Providers.Entitlements.Get(name).Context(ctx).Do()
	APIError(t, err, http.StatusNotFound)
}

// FilterProduct: the product attribute of the discovery document's filter
// examples, written "providerId:productId" or bare, selects the
// entitlement, and NOT (product=...) leaves it out.
func FilterProduct(t *testing.T, tgt Target) {
	ctx := context.Background()
	svc := Procurement(t, tgt)
	e, err := svc.Providers.Entitlements.Get(tgt.entitlementName()).Context(ctx).Do()
	if err != nil {
		t.Fatalf("get %s: %v", tgt.entitlementName(), err)
	}
	lists := func(filter string) bool {
		t.Helper()
		found := false
		err := svc.Providers.Entitlements.List(tgt.provider()).Filter(filter).Pages(ctx, func(r *ccpListResponse) error {
			for _, x := range r.Entitlements {
				found = found || x.Name == e.Name
			}
			return nil
		})
		if err != nil {
			t.Fatalf("filter %q: %v", filter, err)
		}
		return found
	}
	for filter, want := range map[string]bool{
		fmt.Sprintf("product=%q", tgt.ProviderID+":"+e.Product):        true,
		fmt.Sprintf("product=%q", e.Product):                           true,
		fmt.Sprintf("NOT (product=%q)", e.Product):                     false,
		fmt.Sprintf("product=%q", tgt.ProviderID+":conformance-other"): false,
	} {
		if got := lists(filter); got != want {
			t.Errorf("filter %s lists %s: %v, want %v", filter, e.Name, got, want)
		}
	}
}
