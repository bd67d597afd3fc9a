package main

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

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

// Register an entitlement, meter calls, let the hour end: the usage is
// checked and reported exactly once, and usage after the end is refused.
func TestUsageOnlyAgainstEmulator(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	ready := make(chan *service, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{"-emulator", "-listen", "127.0.0.1:0", "-ops-token", "tok",
			"-database", filepath.Join(t.TempDir(), "usage.db")}, noEnv, out, func(s *service) { ready <- s })
	}()
	var s *service
	select {
	case s = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v\n%s", err, out)
	}
	defer func() {
		cancel()
		require.NoError(t, <-done)
		assert.Contains(t, out.String(), "msg=stopped")
		if t.Failed() {
			t.Logf("logs:\n%s", out)
		}
	}()
	assert.Contains(t, out.String(), "/ops/consumers")

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

// -emulator without -database never opens $DATABASE_URL's ledger, whose
// usage would be reported to Google: it uses a temporary one.
func TestEmulatorLedgerIsTemporary(t *testing.T) {
	production := filepath.Join(t.TempDir(), "production.db")
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan *service, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{"-emulator", "-listen", "127.0.0.1:0"},
			func(k string) string { return map[string]string{"DATABASE_URL": production}[k] }, &syncBuffer{},
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
