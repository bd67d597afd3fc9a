package ops_test

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

// Shapes of the API as the tests read them (a subset of doc.go's).
type (
	errorJSON struct {
		Error struct {
			Code    int    `json:"code"`
			Status  string `json:"status"`
			Message string `json:"message"`
		} `json:"error"`
	}
	entitlementJSON struct {
		ID, AccountID, State, Plan, PendingPlan, UsageReportingID string
		Parked                                                    bool
		ParkedAt                                                  time.Time
		WaitingSeconds                                            int64
	}
	transitionJSON struct {
		Seq                                                       int64
		EntitlementID, Change, FromState, ToState, ToPlan, Source string
		At                                                        time.Time
	}
	windowJSON struct {
		OperationID, EntitlementID, State, Reason string
		Deadline                                  time.Time
		Values                                    []struct {
			Metric string
			Int64  int64
		}
	}
)

// poisonMessage hands the processor a message that cannot be decoded and
// returns its id.
func (e *opsEnv) poisonMessage(id string) {
	e.t.Helper()
	require.NoError(e.t, e.Proc.HandleMessage(e.Ctx, marketplace.Message{ID: id, Data: []byte("not json")}))
}

func TestAPIOverview(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	e.Purchase(marketplacetest.PurchaseParams{}) // never signs up: parked
	e.Drain()
	e.poisonMessage("m-1")
	var o map[string]int
	e.getJSON("/ops/api/v1/overview", &o)
	assert.Equal(t, map[string]int{"parked": 1, "approvals": 0, "poison": 1, "blocked": 0, "deadline": 0}, o)
}

func TestAPIAccounts(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	a1, _ := e.Customer()
	a2, _ := e.Customer()
	var page struct {
		Accounts []struct {
			ID             string `json:"id"`
			SignupApproved bool   `json:"signupApproved"`
			VendorUserID   string `json:"vendorUserId"`
		} `json:"accounts"`
		NextPageToken string `json:"nextPageToken"`
	}
	e.getJSON("/ops/api/v1/accounts?pageSize=1", &page)
	require.Len(t, page.Accounts, 1)
	require.NotEmpty(t, page.NextPageToken)
	first := page.Accounts[0]
	e.getJSON("/ops/api/v1/accounts?pageSize=1&pageToken="+page.NextPageToken, &page)
	require.Len(t, page.Accounts, 1)
	assert.Empty(t, page.NextPageToken)
	assert.ElementsMatch(t, []string{a1, a2}, []string{first.ID, page.Accounts[0].ID})
	assert.True(t, first.SignupApproved)
	assert.Equal(t, "tenant-"+first.ID, first.VendorUserID)

	r := e.do(http.MethodGet, "/ops/api/v1/accounts?pageToken=garbage", nil, bearer(token))
	assert.Equal(t, http.StatusBadRequest, r.code)
	var ej errorJSON
	r.json(t, &ej)
	assert.Equal(t, "INVALID_ARGUMENT", ej.Error.Status)
}

func TestAPIAccount(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	acct, ent := e.Customer()
	var d struct {
		Account struct {
			ID string `json:"id"`
		} `json:"account"`
		Entitlements []entitlementJSON `json:"entitlements"`
		History      []transitionJSON  `json:"history"`
	}
	e.getJSON("/ops/api/v1/accounts/"+acct, &d)
	assert.Equal(t, acct, d.Account.ID)
	require.Len(t, d.Entitlements, 1)
	assert.Equal(t, ent, d.Entitlements[0].ID)
	assert.Equal(t, "ENTITLEMENT_ACTIVE", d.Entitlements[0].State)
	require.NotEmpty(t, d.History)
	last := d.History[len(d.History)-1]
	assert.Equal(t, "ENTITLEMENT_ACTIVE", last.ToState)
	assert.False(t, last.At.IsZero())

	r := e.do(http.MethodGet, "/ops/api/v1/accounts/nope", nil, bearer(token))
	assert.Equal(t, http.StatusNotFound, r.code)
	var ej errorJSON
	r.json(t, &ej)
	assert.Equal(t, 404, ej.Error.Code)
	assert.Equal(t, "NOT_FOUND", ej.Error.Status)
	assert.NotEmpty(t, ej.Error.Message)
}

func TestAPIEntitlements(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	acct, active := e.Customer()
	_, parked := e.Purchase(marketplacetest.PurchaseParams{})
	e.Drain()
	var page struct {
		Entitlements []entitlementJSON `json:"entitlements"`
	}
	e.getJSON("/ops/api/v1/entitlements", &page)
	assert.Len(t, page.Entitlements, 2)
	e.getJSON("/ops/api/v1/entitlements?state=active", &page)
	require.Len(t, page.Entitlements, 1)
	assert.Equal(t, active, page.Entitlements[0].ID)
	e.getJSON("/ops/api/v1/entitlements?account="+acct, &page)
	require.Len(t, page.Entitlements, 1)
	assert.Equal(t, active, page.Entitlements[0].ID)
	e.getJSON("/ops/api/v1/entitlements?state=ENTITLEMENT_ACTIVATION_REQUESTED", &page)
	require.Len(t, page.Entitlements, 1)
	assert.Equal(t, parked, page.Entitlements[0].ID)
}

func TestAPIEntitlement(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	_, ent := e.Customer()
	var d struct {
		Entitlement entitlementJSON  `json:"entitlement"`
		History     []transitionJSON `json:"history"`
	}
	e.getJSON("/ops/api/v1/entitlements/"+ent, &d)
	assert.Equal(t, ent, d.Entitlement.ID)
	assert.NotEmpty(t, d.Entitlement.UsageReportingID)
	require.NotEmpty(t, d.History)
	for _, tr := range d.History {
		assert.Equal(t, ent, tr.EntitlementID)
	}
	assert.Equal(t, http.StatusNotFound, e.do(http.MethodGet, "/ops/api/v1/entitlements/nope", nil, bearer(token)).code)
}

func TestAPIParked(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	acct, ent := e.Purchase(marketplacetest.PurchaseParams{})
	e.Drain()
	e.Server.Clock().Advance(90 * time.Minute)
	var page struct {
		Parked []entitlementJSON `json:"parked"`
	}
	e.getJSON("/ops/api/v1/parked", &page)
	require.Len(t, page.Parked, 1)
	p := page.Parked[0]
	assert.Equal(t, ent, p.ID)
	assert.Equal(t, acct, p.AccountID)
	assert.True(t, p.Parked)
	assert.Equal(t, int64(90*60), p.WaitingSeconds)
	assert.Equal(t, time.UTC, p.ParkedAt.Location())
}

func TestAPIApprovals(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, marketplace.ManualApproval("soon"))
	_, e1 := e.Customer()
	_, e2 := e.Customer()
	var page struct {
		Approvals []struct {
			EntitlementID string `json:"entitlementId"`
			Kind          string `json:"kind"`
		} `json:"approvals"`
	}
	e.getJSON("/ops/api/v1/approvals", &page)
	require.Len(t, page.Approvals, 2)
	assert.Equal(t, "entitlement", page.Approvals[0].Kind)

	r := e.post("/ops/api/v1/approvals/"+e1+"/approve", nil)
	require.Equal(t, http.StatusOK, r.code, r.body)
	e.Drain()
	r = e.post("/ops/api/v1/approvals/"+e1+"/approve", nil)
	assert.Equal(t, http.StatusNotFound, r.code, "no longer queued")

	r = e.post("/ops/api/v1/approvals/"+e2+"/reject", nil)
	assert.Equal(t, http.StatusBadRequest, r.code, "a reason is required")
	req := e.do(http.MethodPost, "/ops/api/v1/approvals/"+e2+"/reject", strings.NewReader(`{"reason":"not in your region"}`),
		func(r *http.Request) { bearer(token)(r); r.Header.Set("Content-Type", "application/json") })
	require.Equal(t, http.StatusOK, req.code, req.body)
	e.Drain()
	e.getJSON("/ops/api/v1/approvals", &page)
	assert.Empty(t, page.Approvals)
	got, ok := e.Server.Entitlement(e1)
	require.True(t, ok)
	assert.Equal(t, "ENTITLEMENT_ACTIVE", string(got.State))
	assert.Contains(t, e.logs.actions(), "alice approve "+e1)
	assert.Contains(t, e.logs.actions(), "alice reject "+e2)
}

func TestAPIPoison(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	e.poisonMessage("undecodable")
	// A callback failing permanently sets its message aside; once fixed,
	// a redrive runs it.
	e.FailWith(func(c *marketplace.Change) error {
		if c.Entitlement == nil {
			return nil
		}
		return events.Permanent(errors.New("tenant table missing"))
	})
	e.Purchase(marketplacetest.PurchaseParams{})
	e.Drain()
	var page struct {
		Poison []struct {
			MessageID string    `json:"messageId"`
			EventID   string    `json:"eventId"`
			Reason    string    `json:"reason"`
			Data      string    `json:"data"`
			At        time.Time `json:"at"`
		} `json:"poison"`
	}
	e.getJSON("/ops/api/v1/poison", &page)
	require.Len(t, page.Poison, 2)
	var failed string
	for _, p := range page.Poison {
		if p.EventID != "" {
			failed = p.EventID
			assert.Contains(t, p.Reason, "tenant table missing")
		} else {
			assert.Equal(t, "not json", p.Data)
		}
	}
	require.NotEmpty(t, failed)
	r := e.post("/ops/api/v1/poison/"+failed+"/redrive", nil)
	assert.Equal(t, http.StatusInternalServerError, r.code, "still failing: %s", r.body)
	e.FailWith(nil)
	r = e.post("/ops/api/v1/poison/"+failed+"/redrive", nil)
	require.Equal(t, http.StatusOK, r.code, r.body)
	r = e.post("/ops/api/v1/poison/undecodable/dismiss", nil)
	require.Equal(t, http.StatusOK, r.code, r.body)
	e.getJSON("/ops/api/v1/poison", &page)
	assert.Empty(t, page.Poison)
	assert.Equal(t, http.StatusNotFound, e.post("/ops/api/v1/poison/undecodable/dismiss", nil).code)
}

// blockedCustomer is a customer whose usage check answers BILLING_DISABLED,
// with an hour of usage recorded (not reported).
func (e *opsEnv) blockedCustomer() (string, string) {
	e.t.Helper()
	acct, ent := e.Customer()
	got, ok := e.Server.Entitlement(ent)
	require.True(e.t, ok)
	e.Server.SetCheckError(got.UsageReportingID, "BILLING_DISABLED")
	e.Bill(ent, 5)
	return acct, ent
}

func TestAPIConsumers(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	_, serving := e.Customer()
	_, blocked := e.blockedCustomer()
	type consumers struct {
		Consumers []struct {
			EntitlementID string    `json:"entitlementId"`
			Serving       bool      `json:"serving"`
			BlockCode     string    `json:"blockCode"`
			BlockedSince  time.Time `json:"blockedSince"`
		} `json:"consumers"`
	}
	var all, only consumers
	e.getJSON("/ops/api/v1/consumers", &all)
	assert.Len(t, all.Consumers, 2)
	e.getJSON("/ops/api/v1/consumers?blocked=true", &only)
	require.Len(t, only.Consumers, 1)
	c := only.Consumers[0]
	assert.Equal(t, blocked, c.EntitlementID)
	assert.NotEqual(t, serving, c.EntitlementID)
	assert.False(t, c.Serving)
	assert.Equal(t, "BILLING_DISABLED", c.BlockCode)
	assert.False(t, c.BlockedSince.IsZero())
}

func TestAPIWindowsRetrySettle(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	_, ent := e.blockedCustomer()
	e.Bill(ent, 7)
	var page struct {
		Windows       []windowJSON `json:"windows"`
		NextPageToken string       `json:"nextPageToken"`
	}
	e.getJSON("/ops/api/v1/consumers/"+ent+"/windows?state=Pending&pageSize=1", &page)
	require.Len(t, page.Windows, 1)
	require.NotEmpty(t, page.NextPageToken)
	w := page.Windows[0]
	assert.Equal(t, "pending", w.State)
	assert.Contains(t, w.Reason, "BILLING_DISABLED")
	assert.Equal(t, []struct {
		Metric string
		Int64  int64
	}{{e.Server.ServiceName() + "/requests", 5}}, w.Values)
	e.getJSON("/ops/api/v1/consumers/"+ent+"/windows?state=pending&pageSize=1&pageToken="+url.QueryEscape(page.NextPageToken), &page)
	require.Len(t, page.Windows, 1)
	assert.NotEqual(t, w.OperationID, page.Windows[0].OperationID)

	r := e.post("/ops/api/v1/windows/"+w.OperationID+"/settle", url.Values{"state": {"bogus"}})
	assert.Equal(t, http.StatusBadRequest, r.code)
	r = e.post("/ops/api/v1/windows/"+w.OperationID+"/settle", url.Values{"state": {"rejected"}, "reason": {"billing disabled for good"}})
	require.Equal(t, http.StatusOK, r.code, r.body)
	e.getJSON("/ops/api/v1/consumers/"+ent+"/windows?state=rejected", &page)
	require.Len(t, page.Windows, 1)
	assert.Equal(t, w.OperationID, page.Windows[0].OperationID)
	r = e.post("/ops/api/v1/windows/"+w.OperationID+"/retry", nil)
	require.Equal(t, http.StatusOK, r.code, r.body)
	e.getJSON("/ops/api/v1/consumers/"+ent+"/windows?state=pending", &page)
	assert.Len(t, page.Windows, 2)
	assert.Equal(t, http.StatusBadRequest, e.do(http.MethodGet, "/ops/api/v1/consumers/"+ent+"/windows?state=nope", nil, bearer(token)).code)
	assert.Contains(t, e.logs.actions(), "alice settle "+w.OperationID)
	assert.Contains(t, e.logs.actions(), "alice retry "+w.OperationID)
}

func TestAPIBilled(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	_, ent := e.Customer()
	e.Bill(ent, 5)
	e.Bill(ent, 7)
	var page struct {
		Hours []struct {
			Hour   time.Time `json:"hour"`
			Metric string    `json:"metric"`
			Int64  int64     `json:"int64"`
		} `json:"hours"`
	}
	e.getJSON("/ops/api/v1/consumers/"+ent+"/billed", &page)
	require.Len(t, page.Hours, 2)
	assert.Equal(t, int64(5), page.Hours[0].Int64)
	assert.Equal(t, int64(7), page.Hours[1].Int64)
	assert.Equal(t, time.Hour, page.Hours[1].Hour.Sub(page.Hours[0].Hour))
	assert.Equal(t, 0, page.Hours[0].Hour.Minute())
	from := page.Hours[1].Hour.Format(time.RFC3339)
	e.getJSON("/ops/api/v1/consumers/"+ent+"/billed?from="+url.QueryEscape(from), &page)
	require.Len(t, page.Hours, 1)
	assert.Equal(t, int64(7), page.Hours[0].Int64)
	assert.Equal(t, http.StatusBadRequest, e.do(http.MethodGet, "/ops/api/v1/consumers/"+ent+"/billed?from=yesterday", nil, bearer(token)).code)
}

func TestAPIReconcile(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	acct, ent := e.Purchase(marketplacetest.PurchaseParams{}) // not drained: unknown locally
	r := e.post("/ops/api/v1/reconcile", nil)
	require.Equal(t, http.StatusOK, r.code, r.body)
	assert.NotContains(t, r.body, "Results", "lower camel case keys")
	var rep struct {
		Changed bool `json:"changed"`
		Failed  int  `json:"failed"`
		Results []struct {
			Kind     string   `json:"kind"`
			ID       string   `json:"id"`
			Outcomes []string `json:"outcomes"`
		} `json:"results"`
	}
	r.json(t, &rep)
	assert.True(t, rep.Changed)
	assert.Zero(t, rep.Failed)
	ids := map[string]string{}
	for _, res := range rep.Results {
		ids[res.ID] = res.Kind
	}
	assert.Equal(t, "account", ids[acct])
	assert.Equal(t, "entitlement", ids[ent])
	assert.Contains(t, e.logs.actions(), "alice reconcile ")
}

func TestAPIHealth(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	e.Customer()
	var hl map[string]any
	e.getJSON("/ops/api/v1/health", &hl)
	for _, k := range []string{"running", "pull", "inFlight", "handled", "failed", "usageBacklog"} {
		assert.Contains(t, hl, k)
	}
	assert.Equal(t, false, hl["running"])
	assert.Equal(t, float64(0), hl["usageBacklog"])
}

func TestAPIUnknownRoute(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	r := e.do(http.MethodGet, "/ops/api/v1/nothing", nil, bearer(token))
	assert.Equal(t, http.StatusNotFound, r.code)
	var ej errorJSON
	r.json(t, &ej)
	assert.Equal(t, "NOT_FOUND", ej.Error.Status)
	assert.Equal(t, http.StatusUnauthorized, e.do(http.MethodGet, "/ops/api/v1/nothing", nil, nil).code)
	// So do unknown console pages, after authentication.
	assert.Equal(t, http.StatusNotFound, e.do(http.MethodGet, "/ops/nothing", nil, bearer(token)).code)
	assert.Equal(t, http.StatusUnauthorized, e.do(http.MethodGet, "/ops/nothing", nil, nil).code)
	assert.Equal(t, http.StatusUnauthorized, e.do(http.MethodPost, "/ops/nothing", nil, nil).code)
}

// An unreported window counts in the overview once its deadline is near.
func TestAPIOverviewDeadline(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	_, ent := e.blockedCustomer()
	var page struct {
		Windows []windowJSON `json:"windows"`
	}
	e.getJSON("/ops/api/v1/consumers/"+ent+"/windows", &page)
	require.Len(t, page.Windows, 1)
	var o map[string]int
	if wait := page.Windows[0].Deadline.Add(-40 * time.Minute).Sub(e.Server.Clock().Now()); wait > 0 {
		e.Server.Clock().Advance(wait)
		e.getJSON("/ops/api/v1/overview", &o)
		assert.Equal(t, 0, o["deadline"], "40 minutes left")
	}
	e.Server.Clock().Advance(20 * time.Minute)
	e.getJSON("/ops/api/v1/overview", &o)
	assert.Equal(t, 1, o["deadline"], "20 minutes left")
	assert.Equal(t, 1, o["blocked"])
}
