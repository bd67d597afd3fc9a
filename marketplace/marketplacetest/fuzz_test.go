package marketplacetest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	ccp "google.golang.org/api/cloudcommerceprocurement/v1"
)

// FuzzServeAPI throws arbitrary paths, methods, queries and bodies at the
// HTTP API: it must answer JSON (success or Google's error shape) and never
// panic.
func FuzzServeAPI(f *testing.F) {
	s := New(f)
	ctx := context.Background()
	entID, _ := s.Purchase(ctx, PurchaseParams{UsageBased: true, AutoApprove: true})
	ent, _ := s.Entitlement(entID)
	seeds := []struct{ method, path, body string }{
		{"GET", "/v1/providers/acme-provider/entitlements/" + entID, ""},
		{"GET", "/v1/providers/acme-provider/entitlements?filter=state%3Dactive&pageSize=1", ""},
		{"GET", "/v1/providers/acme-provider/accounts?pageToken=YWJj", ""},
		{"POST", "/v1/providers/acme-provider/accounts/" + ent.AccountID + ":approve", `{"approvalName":"signup","reason":"x"}`},
		{"POST", "/v1/providers/acme-provider/entitlements/" + entID + ":approvePlanChange", `{"pendingPlanName":"p"}`},
		{"PATCH", "/v1/providers/acme-provider/entitlements/" + entID + "?updateMask=messageToUser", `{"messageToUser":"m"}`},
		{"POST", "/v1/services/" + s.ServiceName() + ":report", `{"operations":[{"operationId":"a","consumerId":"` + ent.UsageReportingID + `","startTime":"2026-01-05T09:00:00Z","endTime":"2026-01-05T10:00:00Z","metricValueSets":[{"metricName":"` + s.ServiceName() + `/requests","metricValues":[{"int64Value":"1"}]}]}]}`},
		{"POST", "/v1/services/" + s.ServiceName() + ":check", `{"operation":{"operationId":"a","consumerId":"x","startTime":"bad"}}`},
		{"POST", "/v1/services/x:report", `[1,2]`},
	}
	for _, sd := range seeds {
		f.Add(sd.method, sd.path, sd.body)
	}
	f.Fuzz(func(t *testing.T, method, path, body string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequest(method, "http://emulator"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+AccessToken)
		rec := httptest.NewRecorder()
		s.serveAPI(rec, req)
		if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("%s %s: content type %q", method, path, rec.Header().Get("Content-Type"))
		}
	})
}

func FuzzPageToken(f *testing.F) {
	f.Add(pageToken("entitlements", "state=active", 7), "state=active")
	f.Add("", "")
	f.Add("!!!", "x")
	f.Fuzz(func(t *testing.T, tok, filter string) {
		seq, e := parsePageToken(tok, "entitlements", filter)
		if e == nil && tok != "" {
			// A token that parses round-trips.
			if got := pageToken("entitlements", filter, seq); got != tok {
				if seq2, e2 := parsePageToken(got, "entitlements", filter); e2 != nil || seq2 != seq {
					t.Fatalf("round trip of %q: %d vs %d (%v)", tok, seq, seq2, e2)
				}
			}
		}
	})
}

func FuzzParseYearMonthDuration(f *testing.F) {
	for _, s := range []string{"P1Y", "P2Y3M", "P6M", "P", "", "P99999999999999999999Y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		y, m, ok := parseYearMonthDuration(s)
		if ok && (y < 0 || m < 0) {
			t.Fatalf("%q: negative %d %d", s, y, m)
		}
	})
}

// Concurrent approvals of one entitlement: exactly one succeeds, one
// ENTITLEMENT_ACTIVE is published.
func TestConcurrentApprovals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := procurementClient(t, s)
	acct := approvedAccount(t, s, svc)
	entID, err := s.Purchase(ctx, PurchaseParams{AccountID: acct})
	require.NoError(t, err)
	const n = 8
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		ok int
	)
	for range n {
		wg.Go(func() {
			_, err := svc.Providers.Entitlements.Approve(s.EntitlementName(entID), &ccp.ApproveEntitlementRequest{}).Context(ctx).Do()
			if err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 1, ok)
	assert.Equal(t, []string{"ENTITLEMENT_CREATION_REQUESTED", "ENTITLEMENT_ACTIVE"}, eventTypesFor(s, entID))
	assert.Equal(t, n, s.Calls(MethodEntitlementsApprove))
}
