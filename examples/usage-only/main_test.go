package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/examples/internal/exampletest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

func noEnv(string) string { return "" }

func post(t *testing.T, url, body string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func TestMissingServiceName(t *testing.T) {
	t.Parallel()
	err := serve(context.Background(), nil, noEnv, &bytes.Buffer{}, nil)
	require.ErrorContains(t, err, "MARKETPLACE_SERVICE_NAME")
}

// start serves the example against an in-process emulator with args added
// and stops it when the test ends.
func start(t *testing.T, args ...string) *service {
	t.Helper()
	args = append([]string{"-emulator", "-listen", "127.0.0.1:0", "-ops-token", "tok",
		"-database", filepath.Join(t.TempDir(), "usage.db")}, args...)
	s, out := exampletest.Serve(t, "msg=stopped", func(ctx context.Context, out io.Writer, ready func(*service)) error {
		return serve(ctx, args, noEnv, out, ready)
	})
	assert.Contains(t, out.String(), "/ops/consumers")
	return s
}

// buyAndRegister buys the usage-based product as a new customer, registers
// it with POST /ops/consumers, lets a second pass, and returns the
// entitlement.
func buyAndRegister(t *testing.T, s *service) (string, marketplacetest.Entitlement) {
	t.Helper()
	id, err := s.emu.Purchase(t.Context(), marketplacetest.PurchaseParams{UsageBased: true, AutoApprove: true})
	require.NoError(t, err)
	ent, _ := s.emu.Entitlement(id)
	status, body := post(t, s.url+"/ops/consumers", `{"entitlementId":"`+id+`","usageReportingId":"`+ent.UsageReportingID+`"}`,
		"Authorization", "Bearer tok")
	require.Equal(t, http.StatusOK, status, body)
	s.emu.Clock().Advance(time.Second)
	return id, ent
}

// Against Google, the starter confirms cancellations with Procurement
// unless told explicitly not to.
func TestMissingProviderID(t *testing.T) {
	t.Parallel()
	err := serve(context.Background(), []string{"-service", "x.endpoints.y.cloud.goog"}, noEnv, &bytes.Buffer{}, nil)
	require.ErrorContains(t, err, "MARKETPLACE_PROVIDER_ID")
}

// The account flow never registers a cancellation (or registers it late):
// usage recorded after it is accepted, but the reporter learns the end from
// Procurement before sealing the hour and bills only what came before.
func TestUsageOnlyConfirmsCancellation(t *testing.T) {
	t.Parallel()
	s := start(t)
	ctx := t.Context()
	id, ent := buyAndRegister(t, s)
	work := func(n int) {
		for range n {
			status, body := post(t, s.url+"/api/work", "", "X-Entitlement", id)
			require.Equal(t, http.StatusOK, status, body)
		}
	}
	work(3)
	s.emu.Clock().Advance(time.Minute)
	require.NoError(t, s.emu.Cancel(ctx, id, true))
	s.emu.Clock().Advance(time.Minute)
	work(5) // accepted: nobody told the reporter yet

	s.emu.Clock().Advance(2 * time.Hour)
	metric := s.emu.ServiceName() + "/requests"
	require.Eventually(t, func() bool {
		ws, err := s.reporter.Backlog(ctx)
		for _, w := range ws {
			if w.State != usage.StateRejected { // the usage after the end is rejected, never sent
				return false
			}
		}
		return err == nil && len(ws) == 1 && len(s.emu.Reports()) > 0
	}, 15*time.Second, 20*time.Millisecond)
	assert.Equal(t, int64(3), s.emu.BilledTotal(ent.UsageReportingID, metric))
	assert.Empty(t, s.emu.Violations())
}

// Register an entitlement, meter calls, let the hour end: the usage is
// checked and reported exactly once, and usage after the end is refused.
func TestUsageOnlyAgainstEmulator(t *testing.T) {
	t.Parallel()
	s := start(t)
	ctx := t.Context()
	id, err := s.emu.Purchase(ctx, marketplacetest.PurchaseParams{UsageBased: true, AutoApprove: true})
	require.NoError(t, err)
	ent, _ := s.emu.Entitlement(id)

	status, _ := post(t, s.url+"/api/work", "", "X-Entitlement", id)
	assert.Equal(t, http.StatusPaymentRequired, status, "not registered yet")
	status, _ = post(t, s.url+"/ops/consumers", `{}`)
	assert.Equal(t, http.StatusUnauthorized, status)
	status, body := post(t, s.url+"/ops/consumers", `{"entitlementId":"`+id+`","usageReportingId":"`+ent.UsageReportingID+`"}`,
		"Authorization", "Bearer tok")
	require.Equal(t, http.StatusOK, status, body)
	s.emu.Clock().Advance(time.Second) // usage starts after the registration

	for range 7 {
		status, body := post(t, s.url+"/api/work", "", "X-Entitlement", id)
		require.Equal(t, http.StatusOK, status, body)
	}
	s.emu.Clock().Advance(2 * time.Hour)
	metric := s.emu.ServiceName() + "/requests"
	require.Eventually(t, func() bool { return s.emu.BilledTotal(ent.UsageReportingID, metric) == 7 },
		15*time.Second, 20*time.Millisecond)
	assert.Empty(t, s.emu.Violations())
	assert.Positive(t, s.emu.CheckCalls(ent.UsageReportingID))

	// The account flow learns of a cancellation: usage after it is refused.
	end := s.emu.Clock().Now()
	status, body = post(t, s.url+"/ops/consumers", `{"entitlementId":"`+id+`","usageReportingId":"`+ent.UsageReportingID+
		`","end":"`+end.Format(time.RFC3339Nano)+`"}`, "Authorization", "Bearer tok")
	require.Equal(t, http.StatusOK, status, body)
	s.emu.Clock().Advance(time.Second)
	status, _ = post(t, s.url+"/api/work", "", "X-Entitlement", id)
	assert.Equal(t, http.StatusPaymentRequired, status)
}

// -source: the calls are metered in the vendor's own api_calls table, and
// what is billed is that table's total, read by the reporter at seal.
func TestUsageSourceAgainstEmulator(t *testing.T) {
	t.Parallel()
	s := start(t, "-source", filepath.Join(t.TempDir(), "api_calls.db"))
	ctx := t.Context()
	id, ent := buyAndRegister(t, s)
	for range 9 {
		status, body := post(t, s.url+"/api/work", "", "X-Entitlement", id)
		require.Equal(t, http.StatusOK, status, body)
	}
	want, err := s.calls.total(ctx, id, "requests")
	require.NoError(t, err)
	require.Equal(t, int64(9), want)

	s.emu.Clock().Advance(2 * time.Hour)
	metric := s.emu.ServiceName() + "/requests"
	require.Eventually(t, func() bool { return s.emu.BilledTotal(ent.UsageReportingID, metric) == want },
		15*time.Second, 20*time.Millisecond)
	assert.Empty(t, s.emu.Violations())
}

// -emulator without -database never opens $DATABASE_URL's ledger, whose
// usage would be reported to Google: it uses a temporary one.
func TestEmulatorLedgerIsTemporary(t *testing.T) {
	production := filepath.Join(t.TempDir(), "production.db")
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan *service, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{"-emulator", "-listen", "127.0.0.1:0"},
			func(k string) string { return map[string]string{"DATABASE_URL": production}[k] }, &exampletest.SyncBuffer{},
			func(s *service) { ready <- s })
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	}
	cancel()
	require.NoError(t, <-done)
	assert.NoFileExists(t, production)
}
