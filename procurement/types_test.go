package procurement

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	cp "google.golang.org/api/cloudcommerceprocurement/v1"
)

// A response shaped like the real ones in google-apis.md §2.4.
const entitlementJSON = `{
  "name": "providers/acme/entitlements/ent-1",
  "account": "providers/acme/accounts/acc-1",
  "provider": "acme",
  "product": "deprecated",
  "productExternalName": "svc.endpoints.proj.cloud.goog",
  "quoteExternalName": "q1",
  "plan": "standard",
  "newPendingPlan": "pro",
  "offer": "projects/1/services/s/standardOffers/o",
  "newPendingOffer": "projects/1/services/s/privateOffers/p",
  "offerDuration": "P1Y",
  "newPendingOfferDuration": "P2Y3M",
  "offerEndTime": "2027-01-05T09:00:00Z",
  "newOfferStartTime": "2026-02-01T00:00:00.123456Z",
  "newOfferEndTime": "2028-02-01T00:00:00Z",
  "subscriptionEndTime": "2027-01-05T09:00:00Z",
  "orderId": "ent-1",
  "entitlementBenefitIds": ["b1", "b2"],
  "usageReportingId": "project_number:212706713297",
  "consumers": [{"project": "projects/123"}],
  "messageToUser": "soon",
  "cancellationReason": "user-cancelled",
  "inputProperties": {"k": "v"},
  "state": "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL",
  "createTime": "2026-01-05T09:00:00Z",
  "updateTime": "2026-01-06T09:00:00.5Z"
}`

func TestConvertEntitlementAllFields(t *testing.T) {
	t.Parallel()
	var raw cp.Entitlement
	require.NoError(t, json.Unmarshal([]byte(entitlementJSON), &raw))
	e, err := convertEntitlement(&raw)
	require.NoError(t, err)
	ts := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err)
		return v
	}
	assert.Equal(t, Entitlement{
		Name:                    "providers/acme/entitlements/ent-1",
		ID:                      "ent-1",
		Account:                 "providers/acme/accounts/acc-1",
		AccountID:               "acc-1",
		Provider:                "acme",
		State:                   EntitlementPendingPlanChangeApproval,
		Product:                 "deprecated",
		ProductExternalName:     "svc.endpoints.proj.cloud.goog",
		QuoteExternalName:       "q1",
		Plan:                    "standard",
		NewPendingPlan:          "pro",
		Offer:                   "projects/1/services/s/standardOffers/o",
		NewPendingOffer:         "projects/1/services/s/privateOffers/p",
		OfferDuration:           "P1Y",
		NewPendingOfferDuration: "P2Y3M",
		OfferEndTime:            ts("2027-01-05T09:00:00Z"),
		NewOfferStartTime:       ts("2026-02-01T00:00:00.123456Z"),
		NewOfferEndTime:         ts("2028-02-01T00:00:00Z"),
		SubscriptionEndTime:     ts("2027-01-05T09:00:00Z"),
		OrderID:                 "ent-1",
		EntitlementBenefitIDs:   []string{"b1", "b2"},
		UsageReportingID:        "project_number:212706713297",
		Consumers:               []Consumer{{Project: "projects/123"}},
		MessageToUser:           "soon",
		CancellationReason:      "user-cancelled",
		InputProperties:         json.RawMessage(`{"k": "v"}`),
		CreateTime:              ts("2026-01-05T09:00:00Z"),
		UpdateTime:              ts("2026-01-06T09:00:00.5Z"),
	}, e)
}

func TestConvertAccount(t *testing.T) {
	t.Parallel()
	raw := &cp.Account{
		Name:     "accounts/acc-9", // the legacy documented form
		Provider: "acme",
		State:    "ACCOUNT_ACTIVE",
		Approvals: []*cp.Approval{
			{Name: "signup", State: "PENDING", UpdateTime: "2026-01-05T09:00:00Z"},
			nil,
			{Name: "other", Reason: "r"},
		},
		ResellerParentBillingAccount: "billingAccounts/1",
		CreateTime:                   "2026-01-05T09:00:00Z",
	}
	a, err := convertAccount(raw)
	require.NoError(t, err)
	assert.Equal(t, "acc-9", a.ID)
	assert.Equal(t, AccountStateActive, a.State)
	require.Len(t, a.Approvals, 2)
	assert.Equal(t, ApprovalStatePending, a.Approvals[0].State)
	assert.Equal(t, ApprovalStateUnspecified, a.Approvals[1].State, "an omitted enum is the unspecified value")
	assert.False(t, a.SignupApproved())
	a.Approvals[0].State = ApprovalStateApproved
	assert.True(t, a.SignupApproved())
	_, ok := a.Approval("missing")
	assert.False(t, ok)
	assert.True(t, a.UpdateTime.IsZero())
	assert.Equal(t, "billingAccounts/1", a.ResellerParentBillingAccount)
}

func TestConvertBadTimestamp(t *testing.T) {
	t.Parallel()
	_, err := convertEntitlement(&cp.Entitlement{Name: "providers/p/entitlements/e", UpdateTime: "yesterday"})
	require.ErrorIs(t, err, ErrMalformedResponse)
	assert.Contains(t, err.Error(), "updateTime")
	assert.Contains(t, err.Error(), "providers/p/entitlements/e")

	_, err = convertAccount(&cp.Account{Name: "providers/p/accounts/a",
		Approvals: []*cp.Approval{{Name: "signup", UpdateTime: "2026-13-01T00:00:00Z"}}})
	require.ErrorIs(t, err, ErrMalformedResponse)

	_, err = convertEntitlement(nil)
	require.ErrorIs(t, err, ErrMalformedResponse)
}

func TestLastSegment(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"providers/p/accounts/a1":     "a1",
		"accounts/a1":                 "a1",
		"a1":                          "a1",
		"":                            "",
		"providers/p/entitlements/e1": "e1",
		"x/y":                         "y",
	} {
		kind := "accounts/"
		if in == "providers/p/entitlements/e1" {
			kind = "entitlements/"
		}
		assert.Equal(t, want, lastSegment(in, kind), in)
	}
}

func FuzzConvertEntitlement(f *testing.F) {
	f.Add([]byte(entitlementJSON))
	f.Add([]byte(`{"name":"providers/p/entitlements/","updateTime":"2026-01-01T00:00:00+01:00"}`))
	f.Add([]byte(`{"consumers":[null],"state":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var raw cp.Entitlement
		if json.Unmarshal(data, &raw) != nil {
			return
		}
		e, err := convertEntitlement(&raw)
		if err != nil {
			return
		}
		if e.Name != raw.Name || (raw.State != "" && string(e.State) != raw.State) {
			t.Fatalf("fields lost: %+v", e)
		}
	})
}
