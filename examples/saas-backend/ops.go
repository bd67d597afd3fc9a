package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// ---------------------------------------------------------------------------
// Operator endpoints, behind a bearer token (put them behind your SSO or IAP
// too). With -approval manual, new purchases and plan changes wait here.
//
//	GET  /ops/approvals                      the approval queue
//	POST /ops/approvals/{entitlement}/approve
//	POST /ops/approvals/{entitlement}/reject  reason=... (shown to the customer)
//	POST /ops/reconcile                      re-sync with the Procurement API
//	GET  /ops/usage/backlog                  usage windows not reported yet
//	GET  /ops/usage/reported                 what was reported, as CSV or JSON Lines (readback.go)
//	GET  /ops/poison                         messages set aside

func (b *backend) opsRoutes(mux *http.ServeMux) {
	mux.Handle("GET /ops/approvals", b.opsOnly(func(w http.ResponseWriter, r *http.Request) {
		q, err := b.proc.PendingApprovals(r.Context())
		writeJSON(w, map[string]any{"approvals": q}, err)
	}))
	mux.Handle("POST /ops/approvals/{entitlement}/approve", b.opsOnly(func(w http.ResponseWriter, r *http.Request) {
		err := b.proc.Approve(r.Context(), r.PathValue("entitlement"))
		writeJSON(w, map[string]any{"approved": r.PathValue("entitlement")}, err)
	}))
	mux.Handle("POST /ops/approvals/{entitlement}/reject", b.opsOnly(func(w http.ResponseWriter, r *http.Request) {
		reason := r.PostFormValue("reason")
		if reason == "" {
			writeJSON(w, nil, fmt.Errorf("%w: reason is required (it is shown to the customer)", marketplace.ErrInvalid))
			return
		}
		err := b.proc.Reject(r.Context(), r.PathValue("entitlement"), reason)
		writeJSON(w, map[string]any{"rejected": r.PathValue("entitlement")}, err)
	}))
	mux.Handle("POST /ops/reconcile", b.opsOnly(func(w http.ResponseWriter, r *http.Request) {
		rep, err := b.proc.Reconcile(r.Context())
		writeJSON(w, rep, err)
	}))
	mux.Handle("GET /ops/usage/backlog", b.opsOnly(func(w http.ResponseWriter, r *http.Request) {
		ws, err := b.reporter.Backlog(r.Context())
		writeJSON(w, map[string]any{"windows": ws}, err)
	}))
	mux.Handle("GET /ops/usage/reported", b.opsOnly(b.usageReported))
	mux.Handle("GET /ops/poison", b.opsOnly(func(w http.ResponseWriter, r *http.Request) {
		var p []marketplace.Poison
		err := b.store.InTx(r.Context(), func(ctx context.Context, tx marketplace.Tx) error {
			var err error
			p, err = tx.ListPoison(ctx, 100)
			return err
		})
		writeJSON(w, map[string]any{"poison": p}, err)
	}))
}

// opsOnly requires Authorization: Bearer <ops token>.
func (b *backend) opsOnly(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b.cfg.OpsToken == "" {
			http.Error(w, "operator endpoints are disabled: set -ops-token or $"+envOpsToken, http.StatusForbidden)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(b.cfg.OpsToken)) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, "operator token required", http.StatusUnauthorized)
			return
		}
		h(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, marketplace.ErrNotQueued), errors.Is(err, marketplace.ErrNotFound):
			status = http.StatusNotFound
		case errors.Is(err, marketplace.ErrNoLongerPending):
			status = http.StatusConflict
		case errors.Is(err, marketplace.ErrInvalid), errors.Is(err, usage.ErrInvalid):
			status = http.StatusBadRequest
		}
		w.WriteHeader(status)
		v = map[string]string{"error": err.Error()}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// ---------------------------------------------------------------------------
// Probes.

// readyz is ready once the initial reconcile succeeded and messages are being
// pulled, and the store answers.
func (b *backend) readyz(w http.ResponseWriter, r *http.Request) {
	if !b.ready.Load() {
		http.Error(w, "starting or stopping", http.StatusServiceUnavailable)
		return
	}
	if err := b.store.InTx(r.Context(), func(context.Context, marketplace.Tx) error { return nil }); err != nil {
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
		return
	}
	_, _ = io.WriteString(w, "ready\n")
}

// ---------------------------------------------------------------------------
// Metrics. The SDK's OpenTelemetry instruments (gcpmarketplace.events.*,
// .entitlements.parked, .approvals.queued, .procurement.*, .servicecontrol.*,
// .usage.*) are collected by a ManualReader and written in the Prometheus
// text format. To export to Prometheus, Cloud Monitoring or an OTLP
// collector instead, give sdkmetric.NewMeterProvider that exporter's reader;
// nothing else changes.

func (b *backend) serveMetrics(w http.ResponseWriter, r *http.Request) {
	var rm metricdata.ResourceMetrics
	if err := b.metrics.Collect(r.Context(), &rm); err != nil {
		http.Error(w, "collect metrics: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	writePrometheusText(w, rm)
}

// writePrometheusText writes sums, gauges and histograms in the Prometheus
// text exposition format.
func writePrometheusText(w io.Writer, rm metricdata.ResourceMetrics) {
	var ms []metricdata.Metrics
	for _, sm := range rm.ScopeMetrics {
		ms = append(ms, sm.Metrics...)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	for _, m := range ms {
		name := promName(m.Name)
		switch d := m.Data.(type) {
		case metricdata.Sum[int64]:
			writeSum(w, name, m.Description, d.IsMonotonic, d.DataPoints)
		case metricdata.Sum[float64]:
			writeSum(w, name, m.Description, d.IsMonotonic, d.DataPoints)
		case metricdata.Gauge[int64]:
			writePoints(w, name, m.Description, "gauge", d.DataPoints)
		case metricdata.Gauge[float64]:
			writePoints(w, name, m.Description, "gauge", d.DataPoints)
		case metricdata.Histogram[float64]:
			writeHistogram(w, name, m.Description, d.DataPoints)
		case metricdata.Histogram[int64]:
			writeHistogram(w, name, m.Description, d.DataPoints)
		}
	}
}

func writeSum[N int64 | float64](w io.Writer, name, help string, monotonic bool, pts []metricdata.DataPoint[N]) {
	if monotonic {
		writePoints(w, name+"_total", help, "counter", pts)
		return
	}
	writePoints(w, name, help, "gauge", pts)
}

func writePoints[N int64 | float64](w io.Writer, name, help, kind string, pts []metricdata.DataPoint[N]) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
	for _, p := range pts {
		fmt.Fprintf(w, "%s%s %s\n", name, promLabels(p.Attributes, ""), promValue(float64(p.Value)))
	}
}

func writeHistogram[N int64 | float64](w io.Writer, name, help string, pts []metricdata.HistogramDataPoint[N]) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	for _, p := range pts {
		var cum uint64
		for i, bound := range p.Bounds {
			cum += p.BucketCounts[i]
			fmt.Fprintf(w, "%s_bucket%s %d\n", name, promLabels(p.Attributes, promValue(bound)), cum)
		}
		fmt.Fprintf(w, "%s_bucket%s %d\n", name, promLabels(p.Attributes, "+Inf"), p.Count)
		fmt.Fprintf(w, "%s_sum%s %s\n", name, promLabels(p.Attributes, ""), promValue(float64(p.Sum)))
		fmt.Fprintf(w, "%s_count%s %d\n", name, promLabels(p.Attributes, ""), p.Count)
	}
}

func promLabels(set attribute.Set, le string) string {
	var parts []string
	for it := set.Iter(); it.Next(); {
		kv := it.Attribute()
		parts = append(parts, fmt.Sprintf("%s=%q", promName(string(kv.Key)), kv.Value.String()))
	}
	if le != "" {
		parts = append(parts, fmt.Sprintf("le=%q", le))
	}
	if len(parts) == 0 {
		return ""
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func promName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

func promValue(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
