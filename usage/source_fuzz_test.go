package usage

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"google.golang.org/api/option"

	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// FuzzSourceTotals: whatever a Source answers, the reporter either refuses
// it with ErrBadTotal or turns it into rows it can send: declared source
// metrics, values that are not negative and finite, labels Google accepts.
func FuzzSourceTotals(f *testing.F) {
	f.Add("requests", int64(3), 0.0, "", "")
	f.Add("requests", int64(-1), 0.0, "k", "v")
	f.Add("gib", int64(0), 1.5, "cloudmarketplace.googleapis.com/resource_name", "db-1")
	f.Add("svc.example.com/requests", int64(math.MaxInt64), math.NaN(), "Bad Key", "\xff")
	f.Add("storage", int64(1), math.Inf(1), "k", "")
	f.Add("gib", int64(0), 1e308, "", "") // twice: +Inf
	src := SourceFunc(func(context.Context, SourceQuery) ([]Total, error) { return nil, nil })
	r, err := New(context.Background(), "svc.example.com", nopLedger{}, &Config{
		Source: src, SourceMetrics: []string{"requests", "gib"},
		Metrics: map[string]MetricKind{"requests": Int64, "gib": Double, "storage": Int64},
	}, option.WithoutAuthentication(), option.WithEndpoint("http://127.0.0.1:1/"))
	if err != nil {
		f.Fatal(err)
	}
	start := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, metric string, value int64, double float64, key, val string) {
		var labels map[string]string
		if key != "" {
			labels = map[string]string{key: val}
		}
		// Twice the same total: duplicates add up.
		totals := []Total{{Metric: metric, Int64: value, Double: double, Labels: labels}, {Metric: metric, Int64: value, Double: double, Labels: labels}}
		rows, err := r.rowsOfTotals(start, totals)
		if err != nil {
			if !errors.Is(err, ErrBadTotal) {
				t.Fatalf("error does not wrap ErrBadTotal: %v", err)
			}
			return
		}
		if len(rows) != 1 {
			t.Fatalf("%d rows for one metric and label set", len(rows))
		}
		row := rows[0]
		if !r.cfg.fromSource[row.Metric] || row.Kind != r.cfg.metrics[row.Metric] || !row.Bucket.Equal(start) {
			t.Fatalf("row %+v", row)
		}
		if row.Int64 < 0 || row.Double < 0 || math.IsNaN(row.Double) || math.IsInf(row.Double, 0) {
			t.Fatalf("row value %d / %v", row.Int64, row.Double)
		}
		decoded, err := decodeLabels(row.Labels)
		if err != nil {
			t.Fatal(err)
		}
		if err := validateLabels(decoded); err != nil {
			t.Fatalf("labels %q accepted: %v", row.Labels, err)
		}
	})
}

// nopLedger lets the fuzz target build a Reporter; it is never called.
type nopLedger struct{ ledger.Ledger }
