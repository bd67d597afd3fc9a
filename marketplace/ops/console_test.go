package ops_test

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

// follow GETs where a POST action redirected, with the cookies it set (the
// flash message), as a browser would.
func (e *opsEnv) follow(r response) response {
	e.t.Helper()
	require.Equal(e.t, http.StatusSeeOther, r.code, r.body)
	cookies := (&http.Response{Header: r.header}).Cookies()
	return e.do(http.MethodGet, r.header.Get("Location"), nil, func(req *http.Request) {
		bearer(token)(req)
		for _, c := range cookies {
			req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		}
	})
}

// flash is the page's flash message.
func flash(t *testing.T, page string) string {
	t.Helper()
	m := regexp.MustCompile(`<p id="flash"[^>]*>([^<]*)</p>`).FindStringSubmatch(page)
	require.NotNil(t, m, "no flash message in the page")
	return m[1]
}

func TestConsoleOverview(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	acct, ent := e.Purchase(marketplacetest.PurchaseParams{})
	e.Drain()
	e.poisonMessage("m-1")
	page := e.get("/ops/").body
	for id, n := range map[string]string{"count-parked": "1", "count-approvals": "0", "count-poison": "1", "count-blocked": "0", "count-deadline": "0"} {
		assert.Contains(t, page, `<span id="`+id+`">`+n+`</span>`)
	}
	assert.Less(t, strings.Index(page, "count-parked"), strings.Index(page, `id="parked"`), "counts first")
	assert.Contains(t, page, `<table id="parked">`)
	assert.Contains(t, page, `data-entitlement="`+ent+`" data-account="`+acct+`"`)
	assert.Contains(t, page, `href="/ops/customers/`+acct+`"`)
	assert.NotContains(t, page, "<script")
	assert.Equal(t, "text/html; charset=utf-8", e.get("/ops/").header.Get("Content-Type"))

	r := e.follow(e.post("/ops/reconcile", nil))
	assert.Contains(t, flash(t, r.body), "Reconciled")
}

func TestConsoleCustomer(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	acct, ent := e.Customer()
	e.Bill(ent, 5)
	page := e.get("/ops/customers/" + acct).body
	for _, id := range []string{`id="account"`, `<table id="entitlements">`, `<ol id="timeline">`, `<svg id="usage-chart"`} {
		assert.Contains(t, page, id)
	}
	assert.Contains(t, page, `data-entitlement="`+ent+`"`)
	assert.Contains(t, page, "ENTITLEMENT_ACTIVE")
	assert.Regexp(t, `<rect class="recorded" data-hour="[^"]+" data-value="5"`, page)
	assert.Regexp(t, `<rect class="reported" data-hour="[^"]+" data-value="5"`, page)
	assert.Contains(t, e.get("/ops/customers").body, `href="/ops/customers/`+acct+`"`)
	assert.Equal(t, http.StatusNotFound, e.do(http.MethodGet, "/ops/customers/nope", nil, bearer(token)).code)
}

func TestConsoleApprovals(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, marketplace.ManualApproval("soon"))
	_, e1 := e.Customer()
	_, e2 := e.Customer()
	page := e.get("/ops/approvals").body
	assert.Contains(t, page, `data-entitlement="`+e1+`"`)
	assert.Contains(t, page, `<form class="inline" method="POST" action="/ops/approvals/`+e1+`/approve">`)
	assert.Contains(t, page, `href="/ops/approvals/`+e2+`/reject"`)

	r := e.follow(e.post("/ops/approvals/"+e1+"/approve", nil))
	assert.Equal(t, "Approved "+e1+".", flash(t, r.body))
	assert.NotContains(t, r.body, `data-entitlement="`+e1+`"`)

	confirm := e.get("/ops/approvals/" + e2 + "/reject").body
	assert.Contains(t, confirm, `<form method="POST" action="/ops/approvals/`+e2+`/reject">`)
	assert.Contains(t, confirm, `<input type="hidden" name="confirm" value="yes">`)
	assert.Contains(t, confirm, `name="reason"`)
	assert.Equal(t, http.StatusBadRequest, e.post("/ops/approvals/"+e2+"/reject", url.Values{"reason": {"x"}}).code, "not confirmed")
	r = e.follow(e.post("/ops/approvals/"+e2+"/reject", url.Values{"confirm": {"yes"}, "reason": {"not in your region"}}))
	assert.Equal(t, "Rejected "+e2+".", flash(t, r.body))
	r = e.follow(e.post("/ops/approvals/"+e2+"/approve", nil))
	assert.Contains(t, flash(t, r.body), "failed")
	assert.Contains(t, r.body, `id="flash" class="error"`)
}

func TestConsolePoison(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	// Message ids may hold a "/" (the emulator's do): links escape it.
	e.poisonMessage("m/1")
	e.poisonMessage("m/2")
	page := e.get("/ops/poison").body
	assert.Contains(t, page, `data-message="m/1"`)
	assert.Contains(t, page, `<form class="inline" method="POST" action="/ops/poison/m%2F1/redrive">`)
	r := e.follow(e.post("/ops/poison/m%2F1/redrive", nil))
	assert.Contains(t, flash(t, r.body), "still undecodable")

	confirm := e.get("/ops/poison/m%2F2/dismiss").body
	assert.Contains(t, confirm, `<form method="POST" action="/ops/poison/m%2F2/dismiss">`)
	assert.Contains(t, confirm, `name="confirm" value="yes"`)
	r = e.follow(e.post("/ops/poison/m%2F2/dismiss", url.Values{"confirm": {"yes"}}))
	assert.Equal(t, "Dismissed m/2.", flash(t, r.body))
	assert.NotContains(t, r.body, `data-message="m/2"`)
	assert.Contains(t, r.body, `data-message="m/1"`)

	// A message whose callback failed for good is redriven once fixed.
	e.FailWith(func(c *marketplace.Change) error {
		if c.Entitlement == nil {
			return nil
		}
		return events.Permanent(errors.New("tenant table missing"))
	})
	e.Purchase(marketplacetest.PurchaseParams{})
	e.Drain()
	e.FailWith(nil)
	page = e.get("/ops/poison").body
	m := regexp.MustCompile(`action="(/ops/poison/[^"]+/redrive)"`).FindAllStringSubmatch(page, -1)
	require.Len(t, m, 2)
	for _, action := range m {
		if strings.Contains(action[1], "m%2F1") {
			continue
		}
		r = e.follow(e.post(action[1], nil))
		assert.True(t, strings.HasPrefix(flash(t, r.body), "Redriven "), flash(t, r.body))
	}
	assert.Contains(t, e.get("/ops/").body, `<span id="count-poison">1</span>`)
}

func TestConsoleConsumers(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	_, ent := e.blockedCustomer()
	page := e.get("/ops/consumers").body
	blocked := page[strings.Index(page, `<table id="blocked">`):]
	blocked = blocked[:strings.Index(blocked, "</table>")]
	assert.Contains(t, blocked, `data-entitlement="`+ent+`"`)
	assert.Contains(t, blocked, "BILLING_DISABLED")
	assert.Contains(t, e.get("/ops/").body, `<span id="count-blocked">1</span>`)
}

func TestConsoleUsage(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	_, ent := e.Customer()
	e.Bill(ent, 5)
	page := e.get("/ops/usage?entitlement=" + ent).body
	assert.Contains(t, page, `<table id="windows">`)
	assert.Contains(t, page, `data-state="Reported"`)
	assert.Regexp(t, `<tr data-hour="[^"]+"><td>[^<]+</td><td>[^<]+/requests</td><td>5</td></tr>`, page)

	_, blocked := e.blockedCustomer()
	var page2 struct {
		Windows []windowJSON `json:"windows"`
	}
	e.getJSON("/ops/api/v1/consumers/"+blocked+"/windows", &page2)
	require.Len(t, page2.Windows, 1)
	op := page2.Windows[0].OperationID
	confirm := e.get("/ops/usage/windows/" + op + "/settle?entitlement=" + blocked).body
	assert.Contains(t, confirm, `<form method="POST" action="/ops/usage/windows/`+op+`/settle">`)
	assert.Contains(t, confirm, `name="entitlement" value="`+blocked+`"`)
	r := e.post("/ops/usage/windows/"+op+"/settle", url.Values{"confirm": {"yes"}, "state": {"rejected"}, "entitlement": {blocked}})
	assert.Equal(t, "/ops/usage?entitlement="+blocked, r.header.Get("Location"))
	r = e.follow(r)
	assert.Equal(t, "Settled "+op+".", flash(t, r.body))
	assert.Contains(t, r.body, `data-state="Rejected"`)
	assert.Contains(t, r.body, `action="/ops/usage/windows/`+op+`/retry"`)
	r = e.follow(e.post("/ops/usage/windows/"+op+"/retry", url.Values{"entitlement": {blocked}}))
	assert.Equal(t, "Queued for retry: "+op+".", flash(t, r.body))
	assert.Contains(t, r.body, `data-state="Pending"`)
}
