package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/signup"
)

// syncBuffer collects the backend's logs from its goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func noEnv(string) string { return "" }

// startBackend runs the backend with -emulator on a free port until the
// test ends, and checks that it then shuts down cleanly.
func startBackend(t *testing.T, extraArgs ...string) (*backend, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	args := append([]string{"-emulator", "-listen", "127.0.0.1:0", "-ops-token", "ops-secret",
		"-database", filepath.Join(t.TempDir(), "marketplace.db")}, extraArgs...)
	ready := make(chan *backend, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, args, noEnv, out, func(b *backend) { ready <- b }) }()
	var b *backend
	select {
	case b = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v\n%s", err, out)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("backend not ready within 30 s\n%s", out)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err, "shutdown\n%s", out)
		case <-time.After(30 * time.Second):
			t.Fatalf("backend did not stop within 30 s\n%s", out)
		}
		assert.Contains(t, out.String(), "msg=stopped")
		if t.Failed() {
			t.Logf("backend logs:\n%s", out)
		}
	})
	return b, out
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

// waitParked waits until the backend has handled the purchase's
// ENTITLEMENT_CREATION_REQUESTED and parked the entitlement. Without it the
// sign-up races the push delivery: whichever reaches the entitlement first
// approves it (both are correct), and the page's data-action would depend on
// which one won.
func waitParked(t *testing.T, b *backend) {
	t.Helper()
	require.Eventually(t, func() bool {
		status, body := get(t, b.url+"/metrics")
		return status == http.StatusOK && strings.Contains(body, "gcpmarketplace_entitlements_parked 1\n")
	}, 10*time.Second, 20*time.Millisecond, "the purchase's entitlement is parked until sign-up")
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
	for _, want := range []string{envSessionKey, envProvider, envPushAudience, envPushAccount, envService,
		"projects/cloudcommerceproc-prod/topics/<partner id>", "Producer Portal", "/pubsub/push"} {
		assert.Contains(t, err.Error(), want)
	}

	env := map[string]string{envProvider: "acme", envPushAudience: "https://x/pubsub/push", envPushAccount: "sa@p.iam.gserviceaccount.com", envService: "svc", envApproval: "sometimes", envSessionKey: testSessionKey}
	err = serve(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, nil)
	require.ErrorContains(t, err, "must be auto or manual")
	assert.NotContains(t, err.Error(), "missing configuration")

	env = map[string]string{envProvider: "acme", envPushAudience: "https://x/pubsub/push", envPushAccount: "sa@p.iam.gserviceaccount.com", envService: "svc", envSessionKey: testSessionKey, envProcEndpoint: "http://127.0.0.1:1/"}
	err = serve(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, nil)
	require.ErrorContains(t, err, envPushJWKSURL)
}

// The whole life of a customer through the backend's HTTP surface, every
// notification pushed by the emulator to /pubsub/push: sign-up, metered API
// calls billed hourly, metrics, probes, purge.
func TestEmulatorEndToEnd(t *testing.T) {
	t.Parallel()
	b, out := startBackend(t)
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
	bad, err := b.emu.BadSignupToken(marketplacetest.BadTokenWrongAudience, accountID, "other.example.com")
	require.NoError(t, err)
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

	// Cancellation, then the account leaves Google Cloud: purged.
	require.NoError(t, b.emu.Cancel(context.Background(), ent.ID, true))
	require.NoError(t, b.emu.DeleteAccount(context.Background(), accountID))
	require.Eventually(t, func() bool {
		_, still := b.tenants.get(tenantID)
		return !still
	}, 10*time.Second, 10*time.Millisecond, "tenant purged after ACCOUNT_DELETED")
}

// Push deliveries without a genuine token for this endpoint are refused
// before their body is read; a genuine one is processed and acknowledged.
func TestPushAuthentication(t *testing.T) {
	t.Parallel()
	b, _ := startBackend(t)
	push := b.url + "/pubsub/push"
	data := []byte(`{"eventId":"e-1","eventType":"ENTITLEMENT_RENEWED","entitlement":{"id":"no-such-entitlement"}}`)
	for _, kind := range []marketplacetest.BadToken{marketplacetest.BadTokenWrongAudience, marketplacetest.BadTokenWrongEmail,
		marketplacetest.BadTokenExpired, marketplacetest.BadTokenForeignKey} {
		tok, err := b.emu.BadPushToken(kind, push)
		require.NoError(t, err)
		resp, err := b.emu.PushWith(context.Background(), push, marketplacetest.PushParams{Data: data, Token: tok})
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, kind)
	}
	resp, err := b.emu.PushWith(context.Background(), push, marketplacetest.PushParams{Data: data, NoToken: true})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no token")

	resp, err = b.emu.PushWith(context.Background(), push, marketplacetest.PushParams{Audience: push, Data: []byte("not json")})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Less(t, resp.StatusCode, 300, "a genuine delivery of an undecodable message is acknowledged (poison), not retried forever")
	status, body := get(t, b.url+"/ops/poison", "Authorization", "Bearer ops-secret")
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, "MessageID")
}

func TestOpsFlush(t *testing.T) {
	t.Parallel()
	b, _ := startBackend(t)
	status, _ := postForm(t, b.url+"/ops/usage/flush", nil)
	assert.Equal(t, http.StatusUnauthorized, status)
	status, body := postForm(t, b.url+"/ops/usage/flush", nil, "Authorization", "Bearer ops-secret")
	assert.Equal(t, http.StatusOK, status, body)
}
