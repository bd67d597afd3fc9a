package main

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// consoleBrowser drives the operator console in headless Chromium, with
// one browser profile (its session cookie) for the whole test. It reaches
// the backend through a reverse proxy that also serves the test's
// auto-submitting forms, from the same origin: the console refuses
// cross-origin POSTs, as it must.
type consoleBrowser struct {
	t       *testing.T
	bin     string
	profile string
	base    string // the proxy's URL
}

func newConsoleBrowser(t *testing.T, bin string, b *backend) *consoleBrowser {
	t.Helper()
	target, err := url.Parse(b.url)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_test/post", func(w http.ResponseWriter, r *http.Request) {
		fields := r.URL.Query()
		action := fields.Get("_action")
		fields.Del("_action")
		writeAutoPost(w, action, fields)
	})
	mux.Handle("/", httputil.NewSingleHostReverseProxy(target))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &consoleBrowser{t: t, bin: bin, profile: t.TempDir(), base: srv.URL}
}

// open loads path and returns the DOM.
func (c *consoleBrowser) open(path string) string {
	c.t.Helper()
	return dumpDOM(c.t, c.bin, c.profile, c.base+path)
}

// post submits a form with fields to path, as a click on its button
// would, and returns the DOM of the page the console sends the browser to.
func (c *consoleBrowser) post(path string, fields url.Values) string {
	c.t.Helper()
	q := url.Values{"_action": {path}}
	for k, v := range fields {
		q[k] = v
	}
	return dumpDOM(c.t, c.bin, c.profile, c.base+"/_test/post?"+q.Encode())
}

// screenshot saves path, as the browser shows it, to file.
func (c *consoleBrowser) screenshot(path, file string) {
	c.t.Helper()
	runChromium(c.t, c.bin, c.profile, "--hide-scrollbars", "--window-size=1280,1600", "--virtual-time-budget=5000",
		"--screenshot="+file, c.base+path)
	st, err := os.Stat(file)
	require.NoError(c.t, err, "screenshot of %s", path)
	require.Positive(c.t, st.Size())
}

// artifactsDir is where the test saves its screenshots:
// $GCPMARKETPLACE_ARTIFACTS, or a temporary directory.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("GCPMARKETPLACE_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// formAction returns the action of the form in dom whose action matches
// pattern (a regexp with no group), unescaped.
func formAction(t *testing.T, dom, pattern string) string {
	t.Helper()
	m := regexp.MustCompile(`action="(` + pattern + `)"`).FindStringSubmatch(dom)
	require.NotNil(t, m, "a form posting to %s\n%s", pattern, dom)
	return html.UnescapeString(m[1])
}

// customer is a customer signed up through the backend's pages.
type customer struct {
	tenantID, accountID string
	ent                 marketplacetest.Entitlement
}

func signedUpCustomer(t *testing.T, b *backend, email string) customer {
	t.Helper()
	tenantID, accountID := signedUpIDs(t, signUp(t, b, checkout(t, b), email))
	require.Eventually(t, func() bool { return len(b.tenants.subscriptions(accountID)) == 1 },
		10*time.Second, 10*time.Millisecond, "provisioned")
	return customer{tenantID: tenantID, accountID: accountID, ent: onlyEntitlement(t, b, accountID)}
}

// callAPI calls the metered API as tenant n times and returns the
// entitlement the usage was recorded for.
func callAPI(t *testing.T, b *backend, tenantID string, n int) string {
	t.Helper()
	var out struct {
		EntitlementID string `json:"entitlementId"`
	}
	for range n {
		status, body := postForm(t, b.url+"/api/work", nil, "X-Tenant", tenantID)
		require.Equal(t, http.StatusOK, status, body)
		require.NoError(t, json.Unmarshal([]byte(body), &out))
	}
	return out.EntitlementID
}

// An operator runs the business from the console, in a real browser,
// against the emulator: logs in; sees a purchase whose sign-up was never
// finished, with its account; approves a queued plan change; redrives a
// message that failed for good once its cause is fixed, and dismisses its
// duplicate; sees a consumer blocked by a BILLING_DISABLED check error and
// an hour of usage billed on the customer's page. Screenshots of the
// overview and of a customer page are saved in $GCPMARKETPLACE_ARTIFACTS.
func TestOperatorConsoleInHeadlessChromium(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	b, _ := startBackend(t, "-approval", approvalPlanChanges, "-plans", "standard,large")
	ctx := context.Background()
	// Customers: two signed up, one who bought and never signed up (the
	// signed-up ones first: checkout waits for exactly one parked).
	paying := signedUpCustomer(t, b, "bo@example.com")
	blocked := signedUpCustomer(t, b, "cy@example.com")
	checkout(t, b)
	parked, err := b.proc.Parked(ctx)
	require.NoError(t, err)
	require.Len(t, parked, 1)
	c := newConsoleBrowser(t, bin, b)

	// 1. Without a session, the console answers 401 with the login form
	// (no redirect); the token logs in and leads to the overview, which shows the
	// parked entitlement with its account.
	dom := c.open("/ops/")
	require.Contains(t, dom, `name="token"`, dom)
	c.post("/ops/login", url.Values{"token": {"ops-secret"}})
	dom = c.open("/ops/")
	require.Contains(t, dom, `<span id="count-parked">1</span>`, dom)
	assert.Contains(t, dom, `data-entitlement="`+parked[0].ID+`" data-account="`+parked[0].AccountID+`"`)

	// 2. A plan change waits for the operator (-approval plan-changes),
	// who approves it.
	require.NoError(t, b.emu.RequestPlanChange(ctx, paying.ent.ID, "large"))
	require.Eventually(t, func() bool {
		q, err := b.proc.PendingApprovals(ctx)
		return err == nil && len(q) == 1
	}, 10*time.Second, 20*time.Millisecond, "plan change queued")
	dom = c.open("/ops/approvals")
	require.Contains(t, dom, `data-entitlement="`+paying.ent.ID+`"`, dom)
	dom = c.post(formAction(t, dom, `/ops/approvals/[^"]+/approve`), nil)
	assert.Contains(t, dom, `id="flash"`, dom)
	assert.NotContains(t, dom, `data-entitlement="`+paying.ent.ID+`"`, "no longer queued")
	got, _ := b.emu.Entitlement(paying.ent.ID)
	assert.Equal(t, "large", got.Plan, "plan changed at Google")

	// 3. Usage: an hour billed for one customer; the other's billing is
	// disabled, so the check blocks it.
	billedEnt := callAPI(t, b, paying.tenantID, 5)
	b.emu.SetCheckError(blocked.ent.UsageReportingID, "BILLING_DISABLED")
	callAPI(t, b, blocked.tenantID, 1)
	b.emu.Clock().Advance(2 * time.Hour)
	metric := b.emu.ServiceName() + "/requests"
	require.Eventually(t, func() bool {
		cs, err := b.reporter.Consumers(ctx, usage.ConsumerQuery{BlockedOnly: true})
		return err == nil && len(cs) == 1 && b.emu.BilledTotal(paying.ent.UsageReportingID, metric) == 5
	}, 15*time.Second, 20*time.Millisecond, "an hour billed, one consumer blocked")
	dom = c.open("/ops/consumers")
	require.Regexp(t, `(?s)<table id="blocked">.*data-entitlement="`+blocked.ent.ID+`".*BILLING_DISABLED.*</table>\s*<h2>All`, dom)

	// 4. A purchase of a plan the app does not provision fails for good:
	// poison (the creation request, and the activation that follows it).
	premium, err := b.emu.Purchase(ctx, marketplacetest.PurchaseParams{AccountID: paying.accountID, Plan: "premium", UsageBased: true})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		p, err := b.proc.Poison(ctx, 0)
		return err == nil && len(p) == 2
	}, 10*time.Second, 20*time.Millisecond, "two poison messages")
	dom = c.open("/ops/")
	assert.Contains(t, dom, `<span id="count-poison">2</span>`)
	assert.Contains(t, dom, `<span id="count-blocked">1</span>`)
	assert.Contains(t, dom, `<span id="count-approvals">0</span>`)
	// The cause is fixed (the app now provisions the plan), one message is
	// redriven, the other, which adds nothing, dismissed.
	b.plans.add("premium")
	dom = c.open("/ops/poison")
	dom = c.post(formAction(t, dom, `/ops/poison/[^"]+/redrive`), nil)
	require.Contains(t, dom, `id="flash"`, dom)
	require.Eventually(t, func() bool { return len(b.tenants.subscriptions(paying.accountID)) == 2 },
		10*time.Second, 10*time.Millisecond, "premium provisioned by the redrive")
	m := regexp.MustCompile(`href="(/ops/poison/[^"]+/dismiss)"`).FindStringSubmatch(dom)
	require.NotNil(t, m, dom)
	confirm := c.open(html.UnescapeString(m[1]))
	dom = c.post(formAction(t, confirm, `/ops/poison/[^"]+/dismiss`), url.Values{"confirm": {"yes"}})
	assert.Contains(t, dom, "No poison messages.", dom)

	// 5. The customer's page: account, entitlements, timeline, and the
	// hour billed in the usage chart.
	dom = c.open("/ops/customers/" + paying.accountID)
	for _, id := range []string{`id="account"`, `id="entitlements"`, `id="timeline"`, `<svg id="usage-chart"`} {
		assert.Contains(t, dom, id)
	}
	assert.Contains(t, dom, `data-entitlement="`+premium+`"`)
	assert.Regexp(t, `ENTITLEMENT_PLAN_CHANGE_REQUESTED|ENTITLEMENT_PLAN_CHANGED`, dom, "the plan change in the timeline")
	assert.Regexp(t, `class="reported" data-hour="[^"]+" data-value="5"`, dom, "the hour billed")
	dom = c.open("/ops/usage?entitlement=" + url.QueryEscape(billedEnt))
	assert.Contains(t, dom, `data-state="Reported"`, dom)

	dir := artifactsDir(t)
	c.screenshot("/ops/", filepath.Join(dir, "console-overview.png"))
	c.screenshot("/ops/customers/"+paying.accountID, filepath.Join(dir, "console-customer.png"))
	t.Logf("screenshots in %s", dir)
}

// The console's cookie key depends on the ops token: rotating the token
// ends the console sessions it opened.
func TestOpsSessionKeyFollowsTheOpsToken(t *testing.T) {
	t.Parallel()
	signupKey := []byte("0123456789abcdef0123456789abcdef")
	k := opsSessionKeyFrom(signupKey, "ops-secret")
	assert.Len(t, k, 32)
	assert.Equal(t, k, opsSessionKeyFrom(signupKey, "ops-secret"), "stable across restarts and replicas")
	assert.NotEqual(t, k, opsSessionKeyFrom(signupKey, "ops-secret-2"), "a new token, new sessions")
	assert.NotEqual(t, k, opsSessionKeyFrom([]byte("another sign-up key, 32 bytes.."), "ops-secret"))
}
