package ops

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// maxReasonBytes is Procurement's limit on a rejection reason.
const maxReasonBytes = 256

// errBadParam reports a query or form parameter the API cannot take.
func errBadParam(name, value string) error {
	if len(value) > 64 {
		value = value[:64] + "…"
	}
	return fmt.Errorf("parameter %s=%q: %w", name, value, errBadRequest)
}

// act runs the operator action name on id with the request's parameters
// and logs it with the principal. The API and the console both come here.
func (h *Handler) act(r *http.Request, p Principal, name, id string, form map[string]string) error {
	err := h.run(r, name, id, form)
	h.action(r, p, name, id, err)
	return err
}

func (h *Handler) run(r *http.Request, name, id string, form map[string]string) error {
	ctx := r.Context()
	proc := h.cfg.Processor
	switch name {
	case "approve":
		return proc.Approve(ctx, id)
	case "reject":
		reason := strings.TrimSpace(form["reason"])
		if reason == "" || len(reason) > maxReasonBytes {
			return fmt.Errorf("a reason of 1 to %d bytes is required: %w", maxReasonBytes, errBadRequest)
		}
		return proc.Reject(ctx, id, reason)
	case "redrive":
		return proc.Redrive(ctx, id)
	case "dismiss":
		return proc.Dismiss(ctx, id)
	}
	if h.cfg.Reporter == nil {
		return errNoReporter
	}
	switch name {
	case "retry":
		return h.cfg.Reporter.Retry(ctx, id)
	case "settle":
		state := usage.WindowState(strings.ToLower(form["state"]))
		if state != usage.StateReported && state != usage.StateRejected {
			return errBadParam("state", form["state"])
		}
		return h.cfg.Reporter.Settle(ctx, id, state, strings.TrimSpace(form["reason"]))
	}
	return fmt.Errorf("unknown action %q: %w", name, errBadRequest)
}
