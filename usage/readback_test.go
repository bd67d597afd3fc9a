package usage_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	mt "github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// exported is one line of usage.Export as a vendor's reconciliation job
// reads it.
type exported struct {
	OperationID   string          `json:"operationId"`
	EntitlementID string          `json:"entitlementId"`
	ConsumerID    string          `json:"consumerId"`
	Metric        string          `json:"metric"`
	Value         string          `json:"value"`
	Labels        json.RawMessage `json:"labels"`
	WindowStart   string          `json:"windowStart"`
	WindowEnd     string          `json:"windowEnd"`
	State         string          `json:"state"`
	ReportedAt    string          `json:"reportedAt"`
	Attempts      int             `json:"attempts"`
	Reason        string          `json:"reason"`
}

func (l exported) csv() []string {
	return []string{l.OperationID, l.EntitlementID, l.ConsumerID, l.Metric, l.Value, string(l.Labels),
		l.WindowStart, l.WindowEnd, l.State, l.ReportedAt, strconv.Itoa(l.Attempts), l.Reason}
}

func exportJSONL(t *testing.T, r *usage.Reporter, q usage.ReadBackQuery) []exported {
	t.Helper()
	var buf bytes.Buffer
	n, err := r.Export(t.Context(), &buf, usage.ExportJSONLines, q)
	require.NoError(t, err)
	var out []exported
	dec := json.NewDecoder(&buf)
	dec.DisallowUnknownFields()
	for dec.More() {
		var l exported
		require.NoError(t, dec.Decode(&l))
		out = append(out, l)
	}
	require.Len(t, out, n, "lines counted")
	return out
}

// TestReadBackReconcilesWithBilling: two consumers over three hours, one
// report lost on the way back (resent with the same id), one
// cancellation learned after usage past it was recorded. The export,
// read in small pages, reconciles line by line with what the emulator
// billed (which stands in for Cloud Billing's export), and CSV and JSON
// Lines carry the same values.
func TestReadBackReconcilesWithBilling(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqliteLedger(t, ""))
	t0 := e.clock.Now()
	a := e.consumer(time.Time{}, time.Time{})
	b := e.consumer(time.Time{}, time.Time{})
	labels := map[string]string{usage.LabelResourceName: "db-1"}
	for h := range 3 {
		at := t0.Add(time.Duration(h)*time.Hour + 10*time.Minute)
		e.record(a, "requests", int64(10+h), at, nil)
		e.record(a, "storage_gib", 3, at, labels)
		e.record(b, "requests", int64(100+h), at, nil)
	}
	// b's cancellation at 2:20 is learned after its usage at 2:10 and 2:30.
	e.record(b, "requests", 7, t0.Add(2*time.Hour+30*time.Minute), nil)
	b.End = t0.Add(2*time.Hour + 20*time.Minute)
	require.NoError(t, e.rep.Register(t.Context(), b))
	e.srv.InjectFault(mt.Fault{Method: mt.MethodServicesReport, Kind: mt.FaultLostResponse, Times: 1})
	e.clock.Advance(2 * time.Hour)
	e.drain(time.Minute, 20)

	all, err := e.ledger.ListWindows(t.Context(), ledger.WindowQuery{})
	require.NoError(t, err)
	var paged []usage.Window
	q := usage.ReadBackQuery{Limit: 2}
	for {
		ws, next, err := e.rep.ReadBack(t.Context(), q)
		require.NoError(t, err)
		require.LessOrEqual(t, len(ws), 2)
		paged = append(paged, ws...)
		if next.IsZero() {
			break
		}
		q.After = next
	}
	require.Equal(t, all, paged, "pages list every window once, in order")

	lines := exportJSONL(t, e.rep, usage.ReadBackQuery{Limit: 3})
	billed := map[string]mt.ReportedOperation{}
	for _, op := range e.srv.Reports() {
		billed[op.OperationID] = op
	}
	sums := map[[2]string]int64{}
	var rejected int
	for _, l := range lines {
		v, err := strconv.ParseInt(l.Value, 10, 64)
		require.NoError(t, err)
		if l.State != string(usage.StateReported) {
			require.Equal(t, string(usage.StateRejected), l.State, "everything else was reported")
			require.NotContains(t, billed, l.OperationID, "a rejected window is never sent")
			require.Zero(t, l.Attempts)
			require.NotEmpty(t, l.Reason)
			require.Empty(t, l.ReportedAt)
			rejected++
			continue
		}
		op, ok := billed[l.OperationID]
		require.True(t, ok, "reported line %s billed", l.OperationID)
		require.Equal(t, op.ConsumerID, l.ConsumerID)
		require.Equal(t, op.Start.UTC().Format(time.RFC3339), l.WindowStart)
		require.Equal(t, op.End.UTC().Format(time.RFC3339), l.WindowEnd)
		_, err = time.Parse(time.RFC3339, l.ReportedAt)
		require.NoError(t, err)
		require.GreaterOrEqual(t, l.Attempts, 1)
		found := false
		for _, m := range op.Metrics {
			if m.Name == l.Metric {
				require.Equal(t, m.Int64, v, "value of %s %s", l.OperationID, l.Metric)
				found = true
			}
		}
		require.True(t, found, "metric %s billed under %s", l.Metric, l.OperationID)
		sums[[2]string{l.ConsumerID, l.Metric}] += v
	}
	require.Equal(t, 1, rejected, "b's usage after its cancellation")
	for _, c := range []usage.Consumer{a, b} {
		for _, m := range []string{metricRequests, metricStorage} {
			assert.Equal(t, e.srv.BilledTotal(c.UsageReportingID, m), sums[[2]string{c.UsageReportingID, m}], "%s %s", c.EntitlementID, m)
		}
	}
	assert.Equal(t, int64(10+11+12), sums[[2]string{a.UsageReportingID, metricRequests}])
	assert.Equal(t, int64(100+101+102), sums[[2]string{b.UsageReportingID, metricRequests}], "nothing after the cancellation")
	requireNoDoubleBilling(t, e.srv)

	var buf bytes.Buffer
	n, err := e.rep.Export(t.Context(), &buf, usage.ExportCSV, usage.ReadBackQuery{})
	require.NoError(t, err)
	records, err := csv.NewReader(&buf).ReadAll()
	require.NoError(t, err)
	require.Len(t, records, n+1)
	require.Equal(t, usage.ExportColumns(), records[0])
	for i, l := range lines {
		require.Equal(t, l.csv(), records[i+1], "line %d", i)
	}
}

// TestReadBackFilters: entitlement, state and Start range narrow the
// read-back; bad queries are refused with ErrInvalid before anything is
// written.
func TestReadBackFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	t0 := e.clock.Now()
	a := e.consumer(time.Time{}, time.Time{})
	b := e.consumer(time.Time{}, time.Time{})
	for h := range 3 {
		e.record(a, "requests", 1, t0.Add(time.Duration(h)*time.Hour), nil)
		e.record(b, "requests", 2, t0.Add(time.Duration(h)*time.Hour), nil)
	}
	require.NoError(t, e.clock.Set(t0.Add(2*time.Hour+2*time.Minute)))
	e.flush()
	// The last hour is sealed but not sent: report is down.
	require.NoError(t, e.clock.Set(t0.Add(3*time.Hour+2*time.Minute)))
	e.srv.InjectFault(mt.Fault{Method: mt.MethodServicesReport, Kind: mt.FaultStatus, Status: 503, Times: -1})
	e.flush()

	list := func(q usage.ReadBackQuery) []usage.Window {
		t.Helper()
		ws, next, err := e.rep.ReadBack(t.Context(), q)
		require.NoError(t, err)
		require.True(t, next.IsZero())
		return ws
	}
	require.Len(t, list(usage.ReadBackQuery{}), 6)
	for _, w := range list(usage.ReadBackQuery{EntitlementID: a.EntitlementID}) {
		require.Equal(t, a.EntitlementID, w.EntitlementID)
	}
	open := list(usage.ReadBackQuery{States: []usage.WindowState{usage.StatePending, usage.StateUnknown}})
	require.Len(t, open, 2)
	for _, w := range open {
		require.True(t, w.Start.Equal(t0.Add(2*time.Hour)), "only the last hour is not reported")
	}
	mid := list(usage.ReadBackQuery{From: t0.Add(time.Hour), To: t0.Add(2 * time.Hour), EntitlementID: b.EntitlementID})
	require.Len(t, mid, 1)
	require.True(t, mid[0].Start.Equal(t0.Add(time.Hour)))
	require.Equal(t, usage.StateReported, mid[0].State)

	for name, q := range map[string]usage.ReadBackQuery{
		"unknown state":  {States: []usage.WindowState{"billed"}},
		"to before from": {From: t0.Add(time.Hour), To: t0},
		"limit too big":  {Limit: maxReadBackLimit + 1},
	} {
		_, _, err := e.rep.ReadBack(t.Context(), q)
		require.ErrorIs(t, err, usage.ErrInvalid, name)
		var buf bytes.Buffer
		_, err = e.rep.Export(t.Context(), &buf, usage.ExportCSV, q)
		require.ErrorIs(t, err, usage.ErrInvalid, name)
		require.Zero(t, buf.Len(), "%s: nothing written", name)
	}
	var buf bytes.Buffer
	_, err := e.rep.Export(t.Context(), &buf, "xml", usage.ReadBackQuery{})
	require.ErrorIs(t, err, usage.ErrInvalid)
	require.Zero(t, buf.Len())
	for _, s := range []string{"csv", "jsonl"} {
		f, err := usage.ParseExportFormat(s)
		require.NoError(t, err)
		require.Equal(t, s, string(f))
	}
}

// failingWriter fails after n bytes, like a client that went away.
type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return 0, errors.New("connection reset")
	}
	w.n -= len(p)
	return len(p), nil
}

// TestExportWriteErrorIsReturned: an export that cannot be written says so,
// so a caller never mistakes a truncated export for a whole one.
func TestExportWriteErrorIsReturned(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	c := e.consumer(time.Time{}, time.Time{})
	for h := range 5 {
		e.record(c, "requests", 1, e.clock.Now().Add(time.Duration(h)*time.Hour), nil)
	}
	e.clock.Advance(time.Hour + 2*time.Minute)
	e.flush()
	for _, f := range []usage.ExportFormat{usage.ExportCSV, usage.ExportJSONLines} {
		_, err := e.rep.Export(context.Background(), &failingWriter{n: 300}, f, usage.ReadBackQuery{Limit: 1})
		require.Error(t, err, f)
	}
}
