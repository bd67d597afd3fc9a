package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/gcpmarketplace/gcpmarketplace/examples/internal/opshttp"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/ops"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// ---------------------------------------------------------------------------
// Operators: package ops serves the JSON API and the web console under
// /ops/, behind the bearer token -ops-token (put them behind your SSO or IAP
// too: ops.Config.Auth takes any Authenticator). With -approval manual or
// plan-changes, requests wait in its approval queue.
//
//	GET  /ops/                               the console (log in at /ops/login with the token)
//	     /ops/api/v1/...                     the JSON API (see package ops)
//
// Two routes of this backend's own sit beside it, behind the same token:
//
//	GET  /ops/usage/reported                 what was reported, as CSV or JSON Lines (readback.go)
//	POST /ops/usage/flush                    report closed usage windows now (Cloud Scheduler, with push on Cloud Run)

// opsPrincipal is the name the ops token's holder is logged as.
const opsPrincipal = "ops-token"

func (b *backend) opsRoutes(mux *http.ServeMux) error {
	if b.cfg.OpsToken == "" {
		b.log.Warn("no -ops-token: the operator console and API (/ops/) are disabled")
		return nil
	}
	h, err := ops.New(ops.Config{
		Runtime:    b.runtime(),
		Processor:  b.proc,
		Reporter:   b.reporter,
		Auth:       ops.BearerTokens(map[string]string{b.cfg.OpsToken: opsPrincipal}),
		BasePath:   "/ops",
		SessionKey: b.opsSessionKey,
	})
	if err != nil {
		return fmt.Errorf("operator console: %w", err)
	}
	mux.Handle("/ops/", h)
	// More specific than /ops/, so these win over the console's routes.
	mux.Handle("GET /ops/usage/reported", b.opsOnly(b.usageReported))
	mux.Handle("POST /ops/usage/flush", b.opsOnly(func(w http.ResponseWriter, r *http.Request) {
		err := b.reporter.Flush(r.Context())
		writeJSON(w, map[string]any{"flushed": true}, err)
	}))
	return nil
}

// opsSessionKeyFrom derives the console's cookie key from the sign-up
// session key and the ops token, so that console sessions survive a
// restart and move between replicas without another secret to configure, a
// cookie of one kind never verifies as the other, and rotating the ops
// token (a leaked one) ends every console session it opened.
func opsSessionKeyFrom(signupKey []byte, opsToken string) []byte {
	m := hmac.New(sha256.New, signupKey)
	m.Write([]byte("saas-backend: ops console session key\x00"))
	m.Write([]byte(opsToken))
	return m.Sum(nil)
}

// opsOnly requires Authorization: Bearer <ops token>.
func (b *backend) opsOnly(h http.HandlerFunc) http.Handler {
	return opshttp.Guard(b.cfg.OpsToken, "set -ops-token or $"+envOpsToken, h)
}

func writeJSON(w http.ResponseWriter, v any, err error) { opshttp.WriteJSON(w, v, err, opsStatus) }

// opsStatus is the HTTP status of an operator route's error.
func opsStatus(err error) int {
	switch {
	case errors.Is(err, marketplace.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, marketplace.ErrInvalid), errors.Is(err, usage.ErrInvalid):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// ---------------------------------------------------------------------------
// Probes.

// readyz is ready while the processor runs and receives (Processor.Health:
// not a receive error newer than the last message handled), and the store
// and the Procurement API answer (Processor.Ping).
func (b *backend) readyz(w http.ResponseWriter, r *http.Request) {
	if !b.ready.Load() {
		http.Error(w, "starting or stopping", http.StatusServiceUnavailable)
		return
	}
	if reason := receivingProblem(b.proc.Health()); reason != "" {
		http.Error(w, reason, http.StatusServiceUnavailable)
		return
	}
	if err := b.proc.Ping(r.Context()); err != nil {
		http.Error(w, "store or Procurement API unavailable", http.StatusServiceUnavailable)
		return
	}
	_, _ = io.WriteString(w, "ready\n")
}

// receivingProblem says why h is not healthy receiving, or "": Run is not
// running (a pull subscription that fails ends it). A message that failed
// (nacked, to be redelivered) does not make the replica unready: Pub/Sub
// redelivers it to any replica, so taking this one out of service helps
// nothing, and the causes that fail every message (the store, the
// Procurement API) are Ping's to report. The console shows the last error.
func receivingProblem(h marketplace.Health) string {
	if !h.Running {
		return "not receiving: the processor is not running"
	}
	return ""
}
