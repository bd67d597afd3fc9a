package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/gcpmarketplace/gcpmarketplace/examples/internal/opshttp"
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
//	POST /ops/usage/flush                    report closed usage windows now (Cloud Scheduler, with push on Cloud Run)
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
	mux.Handle("POST /ops/usage/flush", b.opsOnly(func(w http.ResponseWriter, r *http.Request) {
		err := b.reporter.Flush(r.Context())
		writeJSON(w, map[string]any{"flushed": true}, err)
	}))
	mux.Handle("GET /ops/poison", b.opsOnly(func(w http.ResponseWriter, r *http.Request) {
		p, err := b.proc.Poison(r.Context(), 100)
		writeJSON(w, map[string]any{"poison": p}, err)
	}))
}

// opsOnly requires Authorization: Bearer <ops token>.
func (b *backend) opsOnly(h http.HandlerFunc) http.Handler {
	return opshttp.Guard(b.cfg.OpsToken, "set -ops-token or $"+envOpsToken, h)
}

func writeJSON(w http.ResponseWriter, v any, err error) { opshttp.WriteJSON(w, v, err, opsStatus) }

// opsStatus is the HTTP status of an operator action's error.
func opsStatus(err error) int {
	switch {
	case errors.Is(err, marketplace.ErrNotQueued), errors.Is(err, marketplace.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, marketplace.ErrNoLongerPending):
		return http.StatusConflict
	case errors.Is(err, marketplace.ErrInvalid), errors.Is(err, usage.ErrInvalid):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// ---------------------------------------------------------------------------
// Probes.

// readyz is ready once the processor runs, while the store and the
// Procurement API answer (Processor.Ping).
func (b *backend) readyz(w http.ResponseWriter, r *http.Request) {
	if !b.ready.Load() {
		http.Error(w, "starting or stopping", http.StatusServiceUnavailable)
		return
	}
	if err := b.proc.Ping(r.Context()); err != nil {
		http.Error(w, "store or Procurement API unavailable", http.StatusServiceUnavailable)
		return
	}
	_, _ = io.WriteString(w, "ready\n")
}
