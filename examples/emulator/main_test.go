package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/examples/internal/exampletest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

// startEmulator runs the command on free ports until the test ends.
func startEmulator(t *testing.T) (*marketplacetest.Server, *exampletest.SyncBuffer) {
	t.Helper()
	return exampletest.Serve(t, "shutting down", func(ctx context.Context, out io.Writer, ready func(*marketplacetest.Server)) error {
		return run(ctx, []string{"-http", "127.0.0.1:0", "-pubsub", "127.0.0.1:0"}, out, ready)
	})
}

func TestPrintsEndpointsAndEnvironment(t *testing.T) {
	s, out := startEmulator(t)
	printed := out.String()
	for _, want := range []string{
		"export PUBSUB_EMULATOR_HOST=" + s.PubSubAddr() + "\n",
		"export MARKETPLACE_PROCUREMENT_ENDPOINT=" + s.URL() + "/\n",
		"export MARKETPLACE_SERVICECONTROL_ENDPOINT=" + s.URL() + "/\n",
		"export MARKETPLACE_SIGNUP_CERTS_URL=" + s.CertsURL() + "\n",
		"export MARKETPLACE_PUSH_JWKS_URL=" + s.PushJWKSURL() + "\n",
		s.Topic(), s.Subscription(),
	} {
		assert.Contains(t, printed, want)
	}
}

func TestFlags(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-start", "yesterday"}, &out, nil)
	require.ErrorContains(t, err, "-start")
	err = run(context.Background(), []string{"extra"}, &out, nil)
	require.ErrorContains(t, err, "unexpected arguments")
	err = run(context.Background(), []string{"-nope"}, &out, nil)
	require.Error(t, err)
}

// api calls the emulator over HTTP like any non-Go program would.
func api(t *testing.T, method, url string, body any) map[string]any {
	t.Helper()
	var r io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		require.NoError(t, err)
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, r)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+marketplacetest.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s %s: %s", method, url, raw)
	var out map[string]any
	require.NoError(t, json.Unmarshal(raw, &out))
	return out
}

// TestWalkthrough does over HTTP, in Go, what the README's curl
// walk-through does, and also reads the topic through PUBSUB_EMULATOR_HOST
// as a real subscriber would.
func TestWalkthrough(t *testing.T) {
	s, _ := startEmulator(t)
	emu, provider, service := s.URL(), s.ProviderID(), s.ServiceName()

	acct := api(t, "POST", emu+"/control/accounts", nil)["accountId"].(string)
	ent := api(t, "POST", emu+"/control/purchase", map[string]any{"accountId": acct, "plan": "standard", "usageBased": true})["entitlementId"].(string)

	// The sign-up token verifies with the keys from the printed certs URL.
	tok := api(t, "POST", emu+"/control/signupToken", map[string]any{"accountId": acct, "audience": service})["token"].(string)
	var certs map[string]string
	resp, err := http.Get(s.CertsURL())
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&certs))
	resp.Body.Close()
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(tok, claims, func(tk *jwt.Token) (any, error) {
		block, _ := pem.Decode([]byte(certs[tk.Header["kid"].(string)]))
		require.NotNil(t, block)
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(marketplacetest.SignupIssuer),
		jwt.WithAudience(service), jwt.WithTimeFunc(s.Clock().Now))
	require.NoError(t, err)
	assert.Equal(t, acct, claims["sub"])

	api(t, "POST", emu+"/v1/providers/"+provider+"/accounts/"+acct+":approve", map[string]any{"approvalName": "signup"})
	api(t, "POST", emu+"/v1/providers/"+provider+"/entitlements/"+ent+":approve", map[string]any{})
	got := api(t, "GET", emu+"/v1/providers/"+provider+"/entitlements/"+ent, nil)
	assert.Equal(t, "ENTITLEMENT_ACTIVE", got["state"])

	var types []string
	for _, e := range api(t, "GET", emu+"/control/events", nil)["events"].([]any) {
		if et, ok := e.(map[string]any)["eventType"].(string); ok {
			types = append(types, et)
		}
	}
	assert.Equal(t, []string{"ENTITLEMENT_CREATION_REQUESTED", "ENTITLEMENT_ACTIVE"}, types)

	consumer := got["usageReportingId"].(string)
	start := api(t, "GET", emu+"/control/clock", nil)["now"].(string)
	end := api(t, "POST", emu+"/control/clock:advance", map[string]any{"duration": "1h"})["now"].(string)
	rep := api(t, "POST", emu+"/v1/services/"+service+":report", map[string]any{"operations": []any{map[string]any{
		"operationId": "usage-0001", "operationName": "hourly-usage", "consumerId": consumer,
		"startTime": start, "endTime": end,
		"metricValueSets": []any{map[string]any{"metricName": service + "/requests", "metricValues": []any{map[string]any{"int64Value": "42"}}}},
	}}})
	assert.NotContains(t, rep, "reportErrors")
	reports := api(t, "GET", emu+"/control/reports", nil)["reports"].([]any)
	require.Len(t, reports, 1)
	assert.Equal(t, consumer, reports[0].(map[string]any)["consumerId"])
	assert.Empty(t, api(t, "GET", emu+"/control/violations", nil)["violations"])
	assert.EqualValues(t, 42, s.BilledTotal(consumer, service+"/requests"))

	// A subscriber configured only by the printed PUBSUB_EMULATOR_HOST
	// receives the Marketplace messages.
	t.Setenv("PUBSUB_EMULATOR_HOST", s.PubSubAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client, err := pubsub.NewClient(ctx, "vendor-project")
	require.NoError(t, err)
	defer client.Close()
	var (
		mu       sync.Mutex
		received []string
	)
	rctx, stop := context.WithCancel(ctx)
	err = client.Subscriber(s.Subscription()).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		received = append(received, string(m.Data))
		if len(received) == 3 { // account, creation requested, active
			stop()
		}
	})
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, received, 3)
	assert.Contains(t, strings.Join(received, "\n"), ent)
}

// TestReadmeWalkthrough runs the README's shell block against the emulator,
// so the documentation cannot drift from the code.
func TestReadmeWalkthrough(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(readme), "<!-- walkthrough:begin -->")
	require.True(t, ok)
	block, _, ok := strings.Cut(rest, "<!-- walkthrough:end -->")
	require.True(t, ok)
	block = strings.TrimSpace(block)
	block = strings.TrimPrefix(block, "```sh")
	block = strings.TrimSuffix(block, "```")

	s, _ := startEmulator(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", block)
	cmd.Env = append(os.Environ(), "EMU="+s.URL(), "PROVIDER="+s.ProviderID(), "SERVICE="+s.ServiceName())
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "walk-through failed:\n%s", out)

	text := string(out)
	assert.Contains(t, text, "ENTITLEMENT_ACTIVE\n")
	assert.Contains(t, text, "ENTITLEMENT_CREATION_REQUESTED ")
	assert.Contains(t, text, `"operationId":"usage-0001"`)
	assert.Contains(t, text, `"int64Value":"42"`)
	assert.Contains(t, text, "SERVICE_NOT_ACTIVATED\n", "a check after the cancellation fails")
	assert.Contains(t, text, "\n9\n", "a report past the cancellation is refused")
	assert.True(t, strings.HasSuffix(strings.TrimSpace(text), "[]"), "no violations:\n%s", text)
	require.Len(t, s.Reports(), 1)
	assert.Empty(t, s.Violations())
}
