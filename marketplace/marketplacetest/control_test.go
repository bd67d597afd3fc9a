package marketplacetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// controlClient calls the emulator's HTTP APIs the way a non-Go program would.
type controlClient struct {
	t    *testing.T
	base string
}

// do sends body (nil, a string or a value to encode) and decodes the JSON
// answer into a map.
func (c controlClient) do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(c.t, err)
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	require.NoError(c.t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+AccessToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	var out map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		require.NoError(c.t, json.Unmarshal(raw, &out), "body %s", raw)
	}
	return resp.StatusCode, out
}

// ok calls and requires a 200.
func (c controlClient) ok(method, path string, body any) map[string]any {
	c.t.Helper()
	code, out := c.do(method, path, body)
	require.Equal(c.t, http.StatusOK, code, "%s %s → %v", method, path, out)
	return out
}

func (c controlClient) wantError(method, path string, body any, code int, status string) string {
	c.t.Helper()
	got, out := c.do(method, path, body)
	require.Equal(c.t, code, got, "%s %s → %v", method, path, out)
	e, ok := out["error"].(map[string]any)
	require.True(c.t, ok, "error body: %v", out)
	assert.Equal(c.t, status, e["status"])
	assert.EqualValues(c.t, code, e["code"])
	return e["message"].(string)
}

func TestControlAPI(t *testing.T) {
	t.Parallel()
	s := New(t)
	c := controlClient{t: t, base: s.URL()}
	provider := "/v1/providers/" + s.ProviderID()

	// Customer: an account, then a usage-based purchase on it.
	acct := c.ok("POST", "/control/accounts", nil)["accountId"].(string)
	require.NotEmpty(t, acct)
	bought := c.ok("POST", "/control/purchase", map[string]any{"accountId": acct, "plan": "standard", "usageBased": true})
	ent := bought["entitlementId"].(string)
	assert.Equal(t, acct, bought["accountId"])
	e, ok := s.Entitlement(ent)
	require.True(t, ok)
	assert.Equal(t, "standard", e.Plan)
	assert.Equal(t, "ENTITLEMENT_ACTIVATION_REQUESTED", e.State)

	// A purchase without accountId creates the account.
	other := c.ok("POST", "/control/purchase", map[string]any{"plan": "premium"})
	assert.NotEmpty(t, other["accountId"])
	assert.NotEqual(t, acct, other["accountId"])

	// Sign-up token for the account.
	tok := c.ok("POST", "/control/signupToken", map[string]any{"accountId": acct, "audience": "svc"})["token"].(string)
	verifier := strictVerifier{issuer: SignupIssuer, audience: "svc", keys: certMapKeys(s.CertsURL()), now: s.Clock().Now}
	claims, err := verifier.verify(t, tok)
	require.NoError(t, err)
	assert.Equal(t, acct, claims["sub"])
	bad := c.ok("POST", "/control/signupToken", map[string]any{"accountId": acct, "audience": "svc", "bad": "expired"})["token"].(string)
	_, err = verifier.verify(t, bad)
	require.ErrorIs(t, err, errExpired)
	attack := c.ok("POST", "/control/signupToken", map[string]any{"accountId": acct, "audience": "svc", "bad": "attacker-issuer"})["token"].(string)
	_, err = verifier.verify(t, attack)
	require.ErrorIs(t, err, errIssuer)
	assert.Equal(t, s.AttackerCertsURL(), decodeSegment(t, attack, 1)["iss"])
	c.wantError("POST", "/control/signupToken", map[string]any{"accountId": acct, "audience": "svc", "bad": "wrong-email"}, 400, "INVALID_ARGUMENT")
	c.wantError("POST", "/control/signupToken", map[string]any{"accountId": acct}, 400, "INVALID_ARGUMENT")
	push := c.ok("POST", "/control/pushToken", map[string]any{"audience": "https://x/push"})["token"].(string)
	_, err = strictVerifier{issuer: PushIssuer, audience: "https://x/push", keys: jwksKeys(s.PushJWKSURL()),
		now: s.Clock().Now, email: s.PushServiceAccount()}.verify(t, push)
	require.NoError(t, err)

	// The partner approves through the Procurement API.
	c.ok("POST", provider+"/accounts/"+acct+":approve", map[string]any{"approvalName": "signup"})
	c.ok("POST", provider+"/entitlements/"+ent+":approve", map[string]any{})
	e, _ = s.Entitlement(ent)
	require.Equal(t, "ENTITLEMENT_ACTIVE", e.State)

	// Plan change requested, then withdrawn.
	entPath := "/control/entitlements/" + ent
	c.ok("POST", entPath+":requestPlanChange", map[string]any{"plan": "premium"})
	e, _ = s.Entitlement(ent)
	assert.Equal(t, "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL", e.State)
	assert.Equal(t, "premium", e.NewPendingPlan)
	c.ok("POST", entPath+":cancelPlanChange", nil)
	e, _ = s.Entitlement(ent)
	assert.Equal(t, "ENTITLEMENT_ACTIVE", e.State)

	// Usage reported through Service Control shows up in /control/reports:
	// an hour of usage, so an hour after the activation (usage before it is
	// refused).
	now, err := s.Clock().Advance(time.Hour)
	require.NoError(t, err)
	report := map[string]any{"operations": []map[string]any{{
		"operationId": "op-1", "operationName": "usage", "consumerId": e.UsageReportingID,
		"startTime": now.Add(-time.Hour).Format(time.RFC3339), "endTime": now.Format(time.RFC3339),
		"metricValueSets": []map[string]any{{
			"metricName":   s.ServiceName() + "/requests",
			"metricValues": []map[string]any{{"int64Value": "7"}},
		}},
	}}}
	c.ok("POST", "/v1/services/"+s.ServiceName()+":report", report)
	c.ok("POST", "/v1/services/"+s.ServiceName()+":report", report) // a resend: deduplicated
	report["operations"].([]map[string]any)[0]["metricValueSets"] = []map[string]any{{
		"metricName":   s.ServiceName() + "/requests",
		"metricValues": []map[string]any{{"int64Value": "8"}},
	}}
	c.ok("POST", "/v1/services/"+s.ServiceName()+":report", report) // the same operationId for other usage
	reports := c.ok("GET", "/control/reports", nil)["reports"].([]any)
	require.NotEmpty(t, reports)
	first := reports[0].(map[string]any)
	assert.Equal(t, "op-1", first["operationId"])
	assert.Equal(t, e.UsageReportingID, first["consumerId"])
	metric := first["metrics"].([]any)[0].(map[string]any)
	assert.Equal(t, s.ServiceName()+"/requests", metric["name"])
	assert.Equal(t, "7", metric["int64Value"])
	violations := c.ok("GET", "/control/violations", nil)["violations"].([]any)
	require.Len(t, violations, 1, "the reused operationId is a DuplicateOperation")
	v := violations[0].(map[string]any)
	assert.Equal(t, "DuplicateOperation", v["kind"])
	assert.Equal(t, "op-1", v["operationId"])
	assert.Equal(t, e.UsageReportingID, v["consumerId"])

	// Check errors.
	c.ok("POST", "/control/checkErrors", map[string]any{"consumerId": e.UsageReportingID, "code": "BILLING_DISABLED"})
	c.ok("POST", "/control/checkErrors", map[string]any{"consumerId": e.UsageReportingID, "code": ""})
	c.wantError("POST", "/control/checkErrors", map[string]any{"code": "X"}, 400, "INVALID_ARGUMENT")

	// Cancel at term end, revert, then cancel immediately and delete.
	c.ok("POST", entPath+":cancel", nil)
	e, _ = s.Entitlement(ent)
	assert.Equal(t, "ENTITLEMENT_PENDING_CANCELLATION", e.State)
	c.ok("POST", entPath+":revertCancellation", nil)
	e, _ = s.Entitlement(ent)
	assert.Equal(t, "ENTITLEMENT_ACTIVE", e.State)
	c.ok("POST", entPath+":endTerm", nil)
	c.ok("POST", entPath+":cancel", map[string]any{"immediate": true})
	e, _ = s.Entitlement(ent)
	assert.Equal(t, "ENTITLEMENT_CANCELLED", e.State)
	c.ok("POST", entPath+":delete", "")
	_, ok = s.Entitlement(ent)
	assert.False(t, ok)
	c.ok("POST", "/control/accounts/"+acct+":delete", nil)
	_, ok = s.Account(acct)
	assert.False(t, ok)

	// Events list what was published, with the message body inline.
	events := c.ok("GET", "/control/events", nil)["events"].([]any)
	require.Len(t, events, len(s.Published()))
	var types []string
	for _, ev := range events {
		m := ev.(map[string]any)
		if m["eventType"] != nil {
			types = append(types, m["eventType"].(string))
		}
		data, ok := m["data"].(map[string]any)
		require.True(t, ok, "data is the JSON message body")
		assert.Equal(t, m["eventId"], data["eventId"])
		_, err := time.Parse(time.RFC3339Nano, m["publishTime"].(string))
		require.NoError(t, err)
	}
	assert.Contains(t, types, "ENTITLEMENT_CREATION_REQUESTED")
	assert.Contains(t, types, "ENTITLEMENT_CANCELLED")

	// The clock.
	before := c.ok("GET", "/control/clock", nil)["now"].(string)
	after := c.ok("POST", "/control/clock:advance", map[string]any{"seconds": 90})["now"].(string)
	tb, err := time.Parse(time.RFC3339Nano, before)
	require.NoError(t, err)
	ta, err := time.Parse(time.RFC3339Nano, after)
	require.NoError(t, err)
	assert.Equal(t, 90*time.Second, ta.Sub(tb))
	after2 := c.ok("POST", "/control/clock:advance", map[string]any{"duration": "1h"})["now"].(string)
	ta2, _ := time.Parse(time.RFC3339Nano, after2)
	assert.Equal(t, time.Hour, ta2.Sub(ta))
	assert.True(t, s.Clock().Now().Equal(ta2))
}

func TestControlAPIErrors(t *testing.T) {
	t.Parallel()
	s := New(t)
	c := controlClient{t: t, base: s.URL()}
	acct := c.ok("POST", "/control/accounts", nil)["accountId"].(string)
	ent := c.ok("POST", "/control/purchase", map[string]any{"accountId": acct})["entitlementId"].(string)

	tests := []struct {
		method, path string
		body         any
		code         int
		status       string
		msg          string
	}{
		{"POST", "/control/entitlements/nope:cancel", nil, 404, "NOT_FOUND", ""},
		{"POST", "/control/accounts/nope:delete", nil, 404, "NOT_FOUND", ""},
		{"POST", "/control/entitlements/" + ent + ":explode", nil, 404, "NOT_FOUND", "unknown entitlement action"},
		{"POST", "/control/entitlements/" + ent, nil, 404, "NOT_FOUND", "{id}:{action}"},
		{"POST", "/control/accounts/" + acct + ":approve", nil, 404, "NOT_FOUND", "unknown account action"},
		// Not allowed before the entitlement is active.
		{"POST", "/control/entitlements/" + ent + ":requestPlanChange", map[string]any{"plan": "x"}, 400, "FAILED_PRECONDITION", ""},
		{"POST", "/control/entitlements/" + ent + ":requestPlanChange", nil, 400, "INVALID_ARGUMENT", "needs a plan"},
		{"POST", "/control/purchase", `{"plan": "a", "bogus": 1}`, 400, "INVALID_ARGUMENT", "unknown field"},
		{"POST", "/control/purchase", `{"plan": `, 400, "INVALID_ARGUMENT", "request body"},
		{"POST", "/control/purchase", `{} {}`, 400, "INVALID_ARGUMENT", "more than one"},
		{"POST", "/control/purchase", map[string]any{"offerDuration": "P1Y", "offerEndTime": "2027-01-01T00:00:00Z"}, 400, "INVALID_ARGUMENT", ""},
		{"POST", "/control/purchase", map[string]any{"accountId": "nope"}, 404, "NOT_FOUND", ""},
		{"POST", "/control/clock:advance", map[string]any{"seconds": -1}, 400, "INVALID_ARGUMENT", "seconds"},
		{"POST", "/control/clock:advance", map[string]any{"duration": "-1h"}, 400, "INVALID_ARGUMENT", "non-negative"},
		{"POST", "/control/clock:advance", map[string]any{"seconds": 1e300}, 400, "INVALID_ARGUMENT", "seconds"},
		{"POST", "/control/clock:advance", map[string]any{"duration": "soon"}, 400, "INVALID_ARGUMENT", "duration"},
		{"POST", "/control/clock:advance", map[string]any{"duration": "1h", "seconds": 1}, 400, "INVALID_ARGUMENT", "not both"},
		{"POST", "/control/clock:advance", nil, 400, "INVALID_ARGUMENT", "needs seconds or duration"},
		{"GET", "/control/nothing", nil, 404, "NOT_FOUND", "no control route"},
		{"GET", "/control/accounts", nil, 404, "NOT_FOUND", "no control route GET"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s %s %v", tc.method, tc.path, tc.body), func(t *testing.T) {
			c := controlClient{t: t, base: s.URL()}
			msg := c.wantError(tc.method, tc.path, tc.body, tc.code, tc.status)
			assert.Contains(t, msg, tc.msg)
		})
	}

	t.Run("oversize body", func(t *testing.T) {
		c := controlClient{t: t, base: s.URL()}
		c.wantError("POST", "/control/purchase", `{"plan":"`+strings.Repeat("a", maxControlBody)+`"}`, 400, "INVALID_ARGUMENT")
	})
}
