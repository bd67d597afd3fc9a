package conformance

import (
	"context"
	"testing"

	"google.golang.org/api/googleapi"
)

// PartialResponseGet: entitlements.get with fields=name,state answers
// those two fields only (the "fields" system parameter, Google's
// partial-response syntax).
func PartialResponseGet(t *testing.T, tgt Target) {
	ctx := context.Background()
	e, err := Procurement(t, tgt).Providers.Entitlements.Get(tgt.entitlementName()).
		Fields("name", "state").Context(ctx).Do()
	if err != nil {
		t.Fatalf("get with fields: %v", err)
	}
	if e.Name == "" || e.State == "" {
		t.Errorf("selected name %q and state %q: both must be set", e.Name, e.State)
	}
	if e.Account != "" || e.Product != "" || e.UpdateTime != "" || e.Plan != "" {
		t.Errorf("unselected fields answered: account %q product %q updateTime %q plan %q",
			e.Account, e.Product, e.UpdateTime, e.Plan)
	}
}

// PartialResponseList: with fields=nextPageToken,entitlements(name,state)
// a page holds those only; without nextPageToken in the selection the token
// is not answered even when there is a next page, so code that forgets to
// select it stops after one page.
func PartialResponseList(t *testing.T, tgt Target) {
	ctx := context.Background()
	list := func(fields ...googleapi.Field) (*ccpListResponse, error) {
		call := Procurement(t, tgt).Providers.Entitlements.List(tgt.provider()).PageSize(1)
		if len(fields) > 0 {
			call = call.Fields(fields...)
		}
		return call.Context(ctx).Do()
	}
	full, err := list()
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	part, err := list("nextPageToken", "entitlements(name,state)")
	if err != nil {
		t.Fatalf("list with fields: %v", err)
	}
	if (full.NextPageToken == "") != (part.NextPageToken == "") {
		t.Errorf("nextPageToken selected: %q, unselected call answered %q", part.NextPageToken, full.NextPageToken)
	}
	for _, e := range part.Entitlements {
		if e.Name == "" || e.State == "" || e.Account != "" || e.Product != "" {
			t.Errorf("entitlements(name,state) answered %+v", e)
		}
	}
	if full.NextPageToken == "" {
		t.Skip("the provider has one entitlement: no next page to leave out")
	}
	noToken, err := list("entitlements/name")
	if err != nil {
		t.Fatalf("list with fields: %v", err)
	}
	if noToken.NextPageToken != "" {
		t.Errorf("fields=entitlements/name answered nextPageToken %q", noToken.NextPageToken)
	}
}
