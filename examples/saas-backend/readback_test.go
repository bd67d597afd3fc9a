package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// An operator reads back what was billed, per operation and metric, as
// JSON Lines or CSV, filtered, behind the ops token.
func TestOpsUsageReported(t *testing.T) {
	t.Parallel()
	b, _ := startBackend(t)
	ctx := t.Context()
	var ents []marketplacetest.Entitlement
	for range 2 {
		id, err := b.emu.Purchase(ctx, marketplacetest.PurchaseParams{UsageBased: true, AutoApprove: true})
		require.NoError(t, err)
		ent, ok := b.emu.Entitlement(id)
		require.True(t, ok)
		require.NoError(t, b.reporter.Register(ctx, usage.Consumer{EntitlementID: id, UsageReportingID: ent.UsageReportingID}))
		require.NoError(t, b.reporter.Record(ctx, usage.Record{EntitlementID: id, Metric: "requests", Int64: 7}))
		ents = append(ents, ent)
	}
	b.emu.Clock().Advance(2 * time.Hour)
	metric := b.emu.ServiceName() + "/requests"
	require.Eventually(t, func() bool {
		return b.emu.BilledTotal(ents[0].UsageReportingID, metric) == 7 && b.emu.BilledTotal(ents[1].UsageReportingID, metric) == 7
	}, 15*time.Second, 20*time.Millisecond, "usage billed")
	auth := []string{"Authorization", "Bearer ops-secret"}

	status, _ := get(t, b.url+"/ops/usage/reported")
	assert.Equal(t, http.StatusUnauthorized, status, "no token")

	status, body := get(t, b.url+"/ops/usage/reported?state=reported&entitlement="+url.QueryEscape(ents[0].ID), auth...)
	require.Equal(t, http.StatusOK, status, body)
	billed := map[string]marketplacetest.ReportedOperation{}
	for _, op := range b.emu.Reports() {
		billed[op.OperationID] = op
	}
	var total int64
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		var line map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line), sc.Text())
		require.Len(t, line, len(usage.ExportColumns()), "lower camel case keys: %v", line)
		for _, c := range usage.ExportColumns() {
			require.Contains(t, line, c)
		}
		require.Equal(t, ents[0].ID, line["entitlementId"])
		require.Equal(t, "reported", line["state"])
		op, ok := billed[line["operationId"].(string)]
		require.True(t, ok, "operation %v billed", line["operationId"])
		start, err := time.Parse(time.RFC3339, line["windowStart"].(string))
		require.NoError(t, err)
		require.True(t, start.Equal(op.Start))
		require.True(t, strings.HasSuffix(line["windowStart"].(string), "Z"), "UTC")
		if line["metric"] == metric && line["value"] == "7" {
			total += 7
		}
	}
	assert.Equal(t, int64(7), total, "the 7 units recorded, once")

	status, body = get(t, b.url+"/ops/usage/reported?format=csv&from="+url.QueryEscape(ents[0].CreateTime.Add(-3*time.Hour).UTC().Format(time.RFC3339)), auth...)
	require.Equal(t, http.StatusOK, status, body)
	records, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	require.NoError(t, err)
	require.Equal(t, usage.ExportColumns(), records[0])
	seen := map[string]bool{}
	for _, r := range records[1:] {
		seen[r[1]] = true
	}
	assert.True(t, seen[ents[0].ID] && seen[ents[1].ID], "both entitlements in the CSV")

	for _, bad := range []string{"format=xml", "from=yesterday", "state=billed", "entitlment=x", "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"} {
		status, body = get(t, b.url+"/ops/usage/reported?"+bad, auth...)
		assert.Equal(t, http.StatusBadRequest, status, "%s: %s", bad, body)
		assert.Contains(t, body, `"error"`, bad)
	}
}

// FuzzParseReadBackQuery: whatever an operator (or anyone with the token)
// sends, the query parser answers a query or an ErrInvalid, never a panic.
func FuzzParseReadBackQuery(f *testing.F) {
	for _, s := range []string{"", "format=csv&state=reported,unknown&from=2026-01-01T00:00:00Z", "entitlement=e&to=2026-02-01T00:00:00%2B01:00", "x=1", "from=%", "state=&state=,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, format, err := parseReadBackQuery(v)
		if err != nil {
			if !errors.Is(err, usage.ErrInvalid) {
				t.Fatalf("%q: error %v does not wrap ErrInvalid", raw, err)
			}
			return
		}
		if format != usage.ExportCSV && format != usage.ExportJSONLines {
			t.Fatalf("%q: format %q", raw, format)
		}
		if q.EntitlementID != v.Get("entitlement") {
			t.Fatalf("%q: entitlement %q", raw, q.EntitlementID)
		}
	})
}
