package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/examples/internal/exampletest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/signup"
)

func noEnv(string) string { return "" }

// startBackend runs the backend with -emulator on a free port until the
// test ends, and checks that it then shuts down cleanly.
func startBackend(t *testing.T, extraArgs ...string) (*backend, *exampletest.SyncBuffer) {
	t.Helper()
	return startBackendWallClock(t, time.Now, extraArgs...)
}

// startBackendWallClock is startBackend with the wall clock that the
// emulator's clock follows.
func startBackendWallClock(t *testing.T, wall func() time.Time, extraArgs ...string) (*backend, *exampletest.SyncBuffer) {
	t.Helper()
	args := append([]string{"-emulator", "-listen", "127.0.0.1:0", "-ops-token", "ops-secret",
		"-database", filepath.Join(t.TempDir(), "marketplace.db")}, extraArgs...)
	return exampletest.Serve(t, "msg=stopped", func(ctx context.Context, out io.Writer, ready func(*backend)) error {
		return serveWithWallClock(ctx, args, noEnv, wall, out, ready)
	})
}

func get(t *testing.T, u string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, req)
}

func postForm(t *testing.T, u string, form url.Values, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

var tokenField = regexp.MustCompile(`name="x-gcp-marketplace-token" value="([^"]+)"`)

// checkout buys the product as a new customer through the backend's
// emulator page and returns the sign-up token Google would POST.
func checkout(t *testing.T, b *backend) string {
	t.Helper()
	status, body := get(t, b.url+"/emulator/checkout")
	require.Equal(t, http.StatusOK, status, body)
	m := tokenField.FindStringSubmatch(body)
	require.NotNil(t, m, body)
	waitParked(t, b)
	return html.UnescapeString(m[1])
}

// waitParked waits until the backend has parked the purchase's entitlement
// and handled every message published so far (the purchase's
// ENTITLEMENT_CREATION_REQUESTED). Without it the sign-up races the message:
// whichever reaches the entitlement first approves it (both are correct),
// and the page's data-action would depend on which one won. The gauge alone
// is not enough: Run's reconcile at start can park the entitlement before
// the message arrives.
func waitParked(t *testing.T, b *backend) {
	t.Helper()
	require.Eventually(t, func() bool {
		status, body := get(t, b.url+"/metrics")
		if status != http.StatusOK || !strings.Contains(body, "gcpmarketplace_entitlements_parked 1\n") {
			return false
		}
		h := b.proc.Health()
		return h.InFlight == 0 && h.Handled >= int64(len(b.emu.Published()))
	}, 10*time.Second, 20*time.Millisecond, "the purchase's entitlement is parked until sign-up, its message handled")
}

var accountField = regexp.MustCompile(`name="` + signup.AccountField + `" value="([^"]+)"`)

// signUp goes through the sign-up page as a browser would: the POST from
// Google, the redirect to the form with the session cookie, then the form.
func signUp(t *testing.T, b *backend, token, email string) string {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	browser := &http.Client{Jar: jar}
	status, body := send(t, browser, b.url+"/signup", url.Values{"x-gcp-marketplace-token": {token}})
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, "Finish setting up your account")
	m := accountField.FindStringSubmatch(body)
	require.NotNil(t, m, "the form names its account")
	status, body = send(t, browser, b.url+"/signup/form", url.Values{
		signup.AccountField: {html.UnescapeString(m[1])}, "email": {email}, "company": {"Acme Analytics"}})
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, `id="status"`)
	return body
}

// send posts form with client, following redirects.
func send(t *testing.T, client *http.Client, u string, form url.Values) (int, string) {
	t.Helper()
	resp, err := client.PostForm(u, form)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

var tenantAttr = regexp.MustCompile(`data-tenant="([^"]+)" data-account="([^"]+)"`)

func signedUpIDs(t *testing.T, page string) (tenantID, accountID string) {
	t.Helper()
	m := tenantAttr.FindStringSubmatch(page)
	require.NotNil(t, m, page)
	return m[1], m[2]
}

func onlyEntitlement(t *testing.T, b *backend, accountID string) marketplacetest.Entitlement {
	t.Helper()
	var found []marketplacetest.Entitlement
	for _, e := range b.emu.Entitlements() {
		if e.AccountID == accountID {
			found = append(found, e)
		}
	}
	require.Len(t, found, 1)
	return found[0]
}

// testSessionKey is a well-formed -session-key.
var testSessionKey = base64.StdEncoding.EncodeToString(make([]byte, signup.MinKeySize))

func TestStartupNamesWhatIsMissing(t *testing.T) {
	t.Parallel()
	err := serve(context.Background(), nil, noEnv, io.Discard, nil)
	require.Error(t, err)
	for _, want := range []string{envSessionKey, envProvider, envProject, envSubscription, envService,
		"projects/cloudcommerceproc-prod/topics/<partner id>", "Producer Portal"} {
		assert.Contains(t, err.Error(), want)
	}

	env := map[string]string{envProvider: "acme", envProject: "p", envSubscription: "s", envService: "svc", envApproval: "sometimes", envSessionKey: testSessionKey}
	err = serve(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, nil)
	require.ErrorContains(t, err, "must be auto, manual or plan-changes")
	assert.NotContains(t, err.Error(), "missing configuration")

	env = map[string]string{envProvider: "acme", envProject: "p", envSubscription: "s", envService: "svc", envSessionKey: testSessionKey, envProcEndpoint: "http://127.0.0.1:1/"}
	err = serve(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, nil)
	require.ErrorContains(t, err, envSignupCertsURL)
}

// The whole life of a customer through the backend's HTTP surface, with
// automatic approval, for each transport (with push, every notification is
// pushed by the emulator to /pubsub/push): sign-up, metered API calls billed
// hourly, metrics, probes, purge.
func TestEmulatorEndToEnd(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{transportPull, transportPush} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			testEndToEnd(t, "-transport="+transport)
		})
	}
}

func testEndToEnd(t *testing.T, args ...string) {
	b, out := startBackend(t, args...)
	assert.Contains(t, out.String(), "/emulator/checkout")

	status, _ := get(t, b.url+"/readyz")
	assert.Equal(t, http.StatusOK, status)
	status, _ = get(t, b.url+"/healthz")
	assert.Equal(t, http.StatusOK, status)
	status, body := get(t, b.url+"/signup")
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, "Google Cloud Marketplace")

	page := signUp(t, b, checkout(t, b), "ada@example.com")
	assert.Contains(t, page, `data-action="approved"`)
	tenantID, accountID := signedUpIDs(t, page)
	acct, ok := b.emu.Account(accountID)
	require.True(t, ok)
	assert.Equal(t, marketplacetest.ApprovalApproved, acct.Approvals[0].State)
	ent := onlyEntitlement(t, b, accountID)
	assert.Equal(t, marketplacetest.StateActive, ent.State)
	tn, ok := b.tenants.get(tenantID)
	require.True(t, ok)
	assert.Equal(t, "ada@example.com", tn.Email)

	// A forged token is refused.
	status, _ = postForm(t, b.url+"/signup", url.Values{"x-gcp-marketplace-token": {"not.a.token"}})
	assert.Equal(t, http.StatusBadRequest, status)
	bad := b.emu.SignupToken(marketplacetest.TokenParams{Subject: accountID, Audience: "other.example.com", Bad: marketplacetest.BadTokenWrongAudience})
	status, body = postForm(t, b.url+"/signup", url.Values{"x-gcp-marketplace-token": {bad}})
	assert.Equal(t, http.StatusForbidden, status)
	assert.Contains(t, body, "Marketplace &gt; Your orders", "a page that says how to start again")

	// Metered calls, reported when the hour is over.
	require.Eventually(t, func() bool {
		return len(b.tenants.subscriptions(accountID)) == 1
	}, 10*time.Second, 10*time.Millisecond)
	for range 5 {
		req, err := http.NewRequest(http.MethodPost, b.url+"/api/work", nil)
		require.NoError(t, err)
		req.Header.Set("X-Tenant", tenantID)
		status, body := do(t, req)
		require.Equal(t, http.StatusOK, status, body)
	}
	status, _ = postForm(t, b.url+"/api/work", nil, "X-Tenant", "nobody")
	assert.Equal(t, http.StatusUnauthorized, status)
	b.emu.Clock().Advance(2 * time.Hour)
	metricName := b.emu.ServiceName() + "/requests"
	require.Eventually(t, func() bool { return b.emu.BilledTotal(ent.UsageReportingID, metricName) == 5 },
		15*time.Second, 20*time.Millisecond, "5 units billed")
	assert.Empty(t, b.emu.Violations())
	assert.Positive(t, b.emu.CheckCalls(ent.UsageReportingID), "checked before reporting")

	assertMetrics(t, b)

	// Cancellation, then the account leaves Google Cloud: purged.
	require.NoError(t, b.emu.Cancel(context.Background(), ent.ID, true))
	require.NoError(t, b.emu.DeleteAccount(context.Background(), accountID))
	require.Eventually(t, func() bool {
		_, still := b.tenants.get(tenantID)
		return !still
	}, 10*time.Second, 10*time.Millisecond, "tenant purged after ACCOUNT_DELETED")
}

// assertMetrics checks that /metrics serves the SDK's metrics once the first
// notification was received.
func assertMetrics(t *testing.T, b *backend) {
	t.Helper()
	var status int
	var body string
	received := regexp.MustCompile(`gcpmarketplace_events_received_total\{[^}]*ENTITLEMENT_CREATION_REQUESTED[^}]*\} 1\n`)
	require.Eventually(t, func() bool {
		status, body = get(t, b.url+"/metrics")
		return status == http.StatusOK && received.MatchString(body)
	}, 10*time.Second, 20*time.Millisecond, "the notification was received")
	assert.Contains(t, body, "# TYPE gcpmarketplace_events_duration_seconds histogram")
	assert.Contains(t, body, `gcpmarketplace_usage_windows{state="pending"} 0`)
	assert.Contains(t, body, `gcpmarketplace_approvals_queued{kind="entitlement"} 0`)
	assert.Contains(t, body, "gcpmarketplace_entitlements_parked 0")
	assert.Contains(t, body, "# TYPE gcpmarketplace_usage_oldest_unreported_age_seconds gauge")
	assert.Contains(t, body, "gcpmarketplace_usage_consumers_blocked 0")
	assert.Regexp(t, `gcpmarketplace_procurement_calls_total\{method="approve entitlement"\} [1-9]`, body)
	assert.Regexp(t, `gcpmarketplace_servicecontrol_calls_total\{method="services.check"\} [1-9]`, body)
	assert.Contains(t, body, "# TYPE gcpmarketplace_events_ack_lag_seconds histogram")
}

// With -approval manual, purchases wait in the queue for an operator.
func TestManualApprovalByOperator(t *testing.T) {
	t.Parallel()
	b, _ := startBackend(t, "-approval", "manual")
	page := signUp(t, b, checkout(t, b), "grace@example.com")
	assert.Contains(t, page, `data-action="queued"`)
	_, accountID := signedUpIDs(t, page)
	ent := onlyEntitlement(t, b, accountID)
	assert.Equal(t, marketplacetest.StateActivationRequested, ent.State)

	api := b.url + "/ops/api/v1"
	status, _ := get(t, api+"/approvals")
	assert.Equal(t, http.StatusUnauthorized, status, "no token")
	status, _ = get(t, api+"/approvals", "Authorization", "Bearer wrong")
	assert.Equal(t, http.StatusUnauthorized, status)
	status, body := get(t, api+"/approvals", "Authorization", "Bearer ops-secret")
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, `"entitlementId": "`+ent.ID+`"`)
	status, _ = postForm(t, api+"/approvals/"+ent.ID+"/approve", nil, "Authorization", "Bearer ops-secret",
		"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site")
	assert.Equal(t, http.StatusForbidden, status, "a cross-site POST is refused")

	status, body = postForm(t, api+"/approvals/"+ent.ID+"/approve", nil, "Authorization", "Bearer ops-secret")
	require.Equal(t, http.StatusOK, status, body)
	got, _ := b.emu.Entitlement(ent.ID)
	assert.Equal(t, marketplacetest.StateActive, got.State)
	status, _ = postForm(t, api+"/approvals/"+ent.ID+"/approve", nil, "Authorization", "Bearer ops-secret")
	assert.Equal(t, http.StatusNotFound, status, "nothing queued any more")

	status, body = postForm(t, api+"/reconcile", nil, "Authorization", "Bearer ops-secret")
	assert.Equal(t, http.StatusOK, status, body)
	status, body = get(t, api+"/entitlements/"+ent.ID, "Authorization", "Bearer ops-secret")
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, `"state": "ENTITLEMENT_ACTIVE"`)
	status, body = get(t, api+"/health", "Authorization", "Bearer ops-secret")
	assert.Equal(t, http.StatusOK, status, body)
}

// chromium returns the path of a Chromium binary, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed (apt-get install chromium); .ci/run installs it")
	return ""
}

// dumpDOM loads u in headless Chromium with the browser profile in the
// directory profile (cookies persist between calls that share it), lets
// its scripts and navigations run, and returns the final DOM.
func dumpDOM(t *testing.T, browser, profile, u string) string {
	t.Helper()
	return runChromium(t, browser, profile, "--virtual-time-budget=10000", "--dump-dom", u)
}

// runChromium runs headless Chromium with the browser profile in the
// directory profile and the arguments args, and returns what it printed.
func runChromium(t *testing.T, browser, profile string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir=" + profile}, args...)
	cmd := exec.CommandContext(ctx, browser, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "chromium: %s", lastLines(stderr.String(), 10))
	return stdout.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// autoPost serves, until the test ends, a page that POSTs fields to action
// as soon as it loads (how Google's redirect reaches the sign-up URL, and
// how the test submits a form in the browser), and returns its URL.
func autoPost(t *testing.T, action string, fields url.Values) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeAutoPost(w, action, fields)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// writeAutoPost writes a page that POSTs fields to action as soon as it
// loads.
func writeAutoPost(w http.ResponseWriter, action string, fields url.Values) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!doctype html><html><body onload="document.forms[0].submit()"><form method="POST" action="%s">`,
		html.EscapeString(action))
	for name, values := range fields {
		for _, v := range values {
			fmt.Fprintf(w, `<input type="hidden" name="%s" value="%s">`, html.EscapeString(name), html.EscapeString(v))
		}
	}
	fmt.Fprint(w, `</form></body></html>`)
}

// A real browser goes through the sign-up: Marketplace's redirect (a form
// auto-submitted with x-gcp-marketplace-token) starts a session and shows
// the form; a copy of the token, in another browser, is refused; the form,
// submitted ten minutes later (the token lived five), links and approves
// the account.
func TestSignupInHeadlessChromium(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	b, _ := startBackend(t)
	token := checkout(t, b)
	profile := t.TempDir()

	// 1. Google's redirect.
	dom := dumpDOM(t, browser, profile, autoPost(t, b.url+"/signup", url.Values{"x-gcp-marketplace-token": {token}}))
	require.Contains(t, dom, "Finish setting up your account", dom)
	assert.NotContains(t, dom, token, "the form does not carry the token")
	m := accountField.FindStringSubmatch(dom)
	require.NotNil(t, m, "the sign-up form names its account\n%s", dom)
	accountID := html.UnescapeString(m[1])

	// 2. A copy of the token, replayed from another browser while it is
	// still valid, starts nothing.
	dom = dumpDOM(t, browser, t.TempDir(), autoPost(t, b.url+"/signup", url.Values{"x-gcp-marketplace-token": {token}}))
	assert.Contains(t, dom, `data-reason="used"`, dom)
	assert.Contains(t, dom, "Marketplace &gt; Your orders")
	assert.NotContains(t, dom, "Finish setting up your account")

	// 3. The customer submits the form ten minutes after arriving.
	b.emu.Clock().Advance(10 * time.Minute)
	dom = dumpDOM(t, browser, profile, autoPost(t, b.url+"/signup/form", url.Values{
		signup.AccountField: {accountID}, "email": {"lin@example.com"}, "company": {"Lin & Co"}}))
	require.Contains(t, dom, `id="status"`, dom)
	assert.Contains(t, dom, "You're all set, Lin &amp; Co")
	assert.Contains(t, dom, `data-action="approved"`)

	tenantID, linked := signedUpIDs(t, dom)
	require.Equal(t, accountID, linked)
	acct, ok := b.emu.Account(accountID)
	require.True(t, ok)
	assert.Equal(t, marketplacetest.ApprovalApproved, acct.Approvals[0].State, "account approved at Google")
	assert.Equal(t, marketplacetest.StateActive, onlyEntitlement(t, b, accountID).State, "parked entitlement approved")
	tn, ok := b.tenants.get(tenantID)
	require.True(t, ok, "tenant linked")
	assert.Equal(t, accountID, tn.AccountID)
	assert.Equal(t, "lin@example.com", tn.Email)

	// 4. The token, long expired, is still refused.
	status, _ := postForm(t, b.url+"/signup", url.Values{"x-gcp-marketplace-token": {token}})
	assert.Equal(t, http.StatusForbidden, status)
}

// PostgreSQL instead of SQLite, when a test database is configured.
func TestEmulatorWithPostgres(t *testing.T) {
	t.Parallel()
	pg := os.Getenv("GCPMARKETPLACE_TEST_POSTGRES_URL")
	if pg == "" {
		t.Skip("GCPMARKETPLACE_TEST_POSTGRES_URL not set")
	}
	schema := fmt.Sprintf("saas_backend_test_%d", time.Now().UnixNano())
	t.Cleanup(func() { dropSchema(t, pg, schema) }) // runs after the backend stopped
	b, _ := startBackend(t, "-database", pg, "-pg-schema", schema)
	page := signUp(t, b, checkout(t, b), "pg@example.com")
	assert.Contains(t, page, `data-action="approved"`)
}

func dropSchema(t *testing.T, connString, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	assert.NoError(t, err)
}

// -doctor checks the configuration and exits: zero when it is right,
// non-zero with the fix when it is not.
func TestDoctorFlag(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "marketplace.db")
	var out exampletest.SyncBuffer
	require.NoError(t, serve(t.Context(), []string{"-emulator", "-doctor", "-database", db}, noEnv, &out, nil), out.String())
	assert.Contains(t, out.String(), "all checks passed")
	assert.Contains(t, out.String(), "[ok  ] pubsub: subscription: projects/vendor-project/subscriptions/marketplace receives projects/cloudcommerceproc-prod/topics/")

	out = exampletest.SyncBuffer{}
	err := serve(t.Context(), []string{"-emulator", "-doctor", "-database", db, "-domain", "https://shop.example.com/signup"}, noEnv, &out, nil)
	require.ErrorIs(t, err, errDoctorFailed)
	assert.Contains(t, out.String(), "[FAIL] sign-up: JWT audience")
	assert.Contains(t, out.String(), "fix: use the product domain")
}
