package ops

import (
	"net/http"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// apiRoutes lists the API's routes (relative to BasePath), for the tests
// and the package doc to agree with the mux.
var apiRoutes = []string{
	"GET /api/v1/overview",
	"GET /api/v1/accounts",
	"GET /api/v1/accounts/{id}",
	"GET /api/v1/entitlements",
	"GET /api/v1/entitlements/{id}",
	"GET /api/v1/parked",
	"GET /api/v1/approvals",
	"POST /api/v1/approvals/{id}/approve",
	"POST /api/v1/approvals/{id}/reject",
	"GET /api/v1/poison",
	"POST /api/v1/poison/{id}/redrive",
	"POST /api/v1/poison/{id}/dismiss",
	"GET /api/v1/consumers",
	"GET /api/v1/consumers/{id}/windows",
	"GET /api/v1/consumers/{id}/billed",
	"POST /api/v1/windows/{id}/retry",
	"POST /api/v1/windows/{id}/settle",
	"POST /api/v1/reconcile",
	"GET /api/v1/health",
}

// routeAPI registers the JSON API.
func (h *Handler) routeAPI() {
	fns := map[string]func(w http.ResponseWriter, r *http.Request, p Principal){
		"GET /api/v1/overview":                h.apiOverview,
		"GET /api/v1/accounts":                h.apiAccounts,
		"GET /api/v1/accounts/{id}":           h.apiAccount,
		"GET /api/v1/entitlements":            h.apiEntitlements,
		"GET /api/v1/entitlements/{id}":       h.apiEntitlement,
		"GET /api/v1/parked":                  h.apiParked,
		"GET /api/v1/approvals":               h.apiApprovals,
		"POST /api/v1/approvals/{id}/approve": h.apiAct("approve"),
		"POST /api/v1/approvals/{id}/reject":  h.apiAct("reject"),
		"GET /api/v1/poison":                  h.apiPoison,
		"POST /api/v1/poison/{id}/redrive":    h.apiAct("redrive"),
		"POST /api/v1/poison/{id}/dismiss":    h.apiAct("dismiss"),
		"GET /api/v1/consumers":               h.apiConsumers,
		"GET /api/v1/consumers/{id}/windows":  h.apiWindows,
		"GET /api/v1/consumers/{id}/billed":   h.apiBilled,
		"POST /api/v1/windows/{id}/retry":     h.apiAct("retry"),
		"POST /api/v1/windows/{id}/settle":    h.apiAct("settle"),
		"POST /api/v1/reconcile":              h.apiReconcile,
		"GET /api/v1/health":                  h.apiHealth,
	}
	for _, route := range apiRoutes {
		h.handle(route, fns[route])
	}
	// Anything else under the API answers a JSON 404, after
	// authentication like the rest.
	h.handle("/api/", func(w http.ResponseWriter, r *http.Request, _ Principal) {
		writeError(w, http.StatusNotFound, "no such route: "+r.Method+" "+r.URL.Path)
	})
}

func (h *Handler) apiOverview(w http.ResponseWriter, r *http.Request, _ Principal) {
	o, _, err := h.overview(r.Context())
	if err != nil {
		h.apiError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, o)
}

func (h *Handler) apiAccounts(w http.ResponseWriter, r *http.Request, _ Principal) {
	as, err := h.accounts(r.Context())
	if err != nil {
		h.apiError(w, err)
		return
	}
	listJSON(w, r, "accounts", as)
}

func (h *Handler) apiAccount(w http.ResponseWriter, r *http.Request, _ Principal) {
	d, err := h.accountDetail(r.Context(), r.PathValue("id"))
	if err != nil {
		h.apiError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (h *Handler) apiEntitlements(w http.ResponseWriter, r *http.Request, _ Principal) {
	q := r.URL.Query()
	es, err := h.entitlements(r.Context(), marketplace.EntitlementQuery{
		AccountID: q.Get("account"), State: entitlementState(q.Get("state")), ParkedOnly: q.Get("parked") == "true"})
	if err != nil {
		h.apiError(w, err)
		return
	}
	listJSON(w, r, "entitlements", es)
}

func (h *Handler) apiEntitlement(w http.ResponseWriter, r *http.Request, _ Principal) {
	d, err := h.entitlementDetail(r.Context(), r.PathValue("id"))
	if err != nil {
		h.apiError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (h *Handler) apiParked(w http.ResponseWriter, r *http.Request, _ Principal) {
	ps, err := h.parked(r.Context())
	if err != nil {
		h.apiError(w, err)
		return
	}
	listJSON(w, r, "parked", ps)
}

func (h *Handler) apiApprovals(w http.ResponseWriter, r *http.Request, _ Principal) {
	as, err := h.approvals(r.Context())
	if err != nil {
		h.apiError(w, err)
		return
	}
	listJSON(w, r, "approvals", as)
}

func (h *Handler) apiPoison(w http.ResponseWriter, r *http.Request, _ Principal) {
	ps, err := h.poison(r.Context())
	if err != nil {
		h.apiError(w, err)
		return
	}
	listJSON(w, r, "poison", ps)
}

func (h *Handler) apiConsumers(w http.ResponseWriter, r *http.Request, _ Principal) {
	cs, err := h.consumers(r.Context(), r.URL.Query().Get("blocked") == "true")
	if err != nil {
		h.apiError(w, err)
		return
	}
	listJSON(w, r, "consumers", cs)
}

// apiWindows pages by window key (ReadBack's cursor), not by offset.
func (h *Handler) apiWindows(w http.ResponseWriter, r *http.Request, _ Principal) {
	if h.cfg.Reporter == nil {
		h.apiError(w, errNoReporter)
		return
	}
	q := r.URL.Query()
	states, err := parseStates(q.Get("state"))
	if err != nil {
		h.apiError(w, err)
		return
	}
	size, err := pageSize(r)
	if err != nil {
		h.apiError(w, err)
		return
	}
	after, err := decodeKey(q.Get("pageToken"))
	if err != nil {
		h.apiError(w, err)
		return
	}
	ws, next, err := h.cfg.Reporter.ReadBack(r.Context(), usage.ReadBackQuery{
		EntitlementID: r.PathValue("id"), States: states, After: after, Limit: size})
	if err != nil {
		h.apiError(w, err)
		return
	}
	out := make([]windowJSON, 0, len(ws))
	for _, win := range ws {
		out = append(out, windowView(win))
	}
	writeJSON(w, http.StatusOK, map[string]any{"windows": out, "nextPageToken": encodeKey(next)})
}

func (h *Handler) apiBilled(w http.ResponseWriter, r *http.Request, _ Principal) {
	from, to, err := timeRange(r)
	if err != nil {
		h.apiError(w, err)
		return
	}
	bs, err := h.billed(r.Context(), r.PathValue("id"), from, to)
	if err != nil {
		h.apiError(w, err)
		return
	}
	listJSON(w, r, "hours", bs)
}

// timeRange parses the from and to query parameters (RFC 3339).
func timeRange(r *http.Request) (from, to time.Time, err error) {
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"from", &from}, {"to", &to}} {
		s := r.URL.Query().Get(p.name)
		if s == "" {
			continue
		}
		if *p.t, err = time.Parse(time.RFC3339, s); err != nil {
			return from, to, errBadParam(p.name, s)
		}
	}
	return from, to, nil
}

func (h *Handler) apiReconcile(w http.ResponseWriter, r *http.Request, p Principal) {
	rep, err := h.cfg.Processor.Reconcile(r.Context())
	h.action(r, p, "reconcile", "", err)
	if err != nil {
		h.apiError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, reconcileView(rep))
}

func (h *Handler) apiHealth(w http.ResponseWriter, r *http.Request, _ Principal) {
	hj := healthView(h.cfg.Processor.Health())
	if h.cfg.Reporter != nil {
		backlog, err := h.cfg.Reporter.Backlog(r.Context())
		if err != nil {
			h.apiError(w, err)
			return
		}
		n := len(backlog)
		hj.UsageBacklog = &n
	}
	writeJSON(w, http.StatusOK, hj)
}

// apiAct runs an operator action on the {id} of the path and answers
// {"ok": true} (the action's result), or the error.
func (h *Handler) apiAct(name string) func(w http.ResponseWriter, r *http.Request, p Principal) {
	return func(w http.ResponseWriter, r *http.Request, p Principal) {
		form, err := readForm(r)
		if err == nil {
			err = h.act(r, p, name, r.PathValue("id"), form)
		}
		if err != nil {
			h.apiError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "action": name, "id": r.PathValue("id")})
	}
}
