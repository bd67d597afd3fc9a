package ops

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// consoleRoutes lists the console's routes (relative to BasePath).
var consoleRoutes = []string{
	"GET /{$}",
	"GET /customers",
	"GET /customers/{id}",
	"GET /approvals",
	"POST /approvals/{id}/approve",
	"GET /approvals/{id}/reject",
	"POST /approvals/{id}/reject",
	"GET /poison",
	"POST /poison/{id}/redrive",
	"GET /poison/{id}/dismiss",
	"POST /poison/{id}/dismiss",
	"GET /consumers",
	"GET /usage",
	"POST /usage/windows/{id}/retry",
	"GET /usage/windows/{id}/settle",
	"POST /usage/windows/{id}/settle",
	"POST /reconcile",
	"POST /logout",
}

// routeConsole registers the console's pages and actions.
func (h *Handler) routeConsole() {
	h.routeAuth()
	h.handle("GET /{$}", h.pageOverview)
	h.handle("GET /customers", h.pageCustomers)
	h.handle("GET /customers/{id}", h.pageCustomer)
	h.handle("GET /approvals", h.pageApprovals)
	h.handle("POST /approvals/{id}/approve", h.consoleAct("approve", func(*http.Request) string { return "/approvals" }))
	h.handle("GET /approvals/{id}/reject", h.confirmPage(rejectConfirm))
	h.handle("POST /approvals/{id}/reject", h.consoleConfirmed("reject", rejectConfirm, func(*http.Request) string { return "/approvals" }))
	h.handle("GET /poison", h.pagePoison)
	h.handle("POST /poison/{id}/redrive", h.consoleAct("redrive", func(*http.Request) string { return "/poison" }))
	h.handle("GET /poison/{id}/dismiss", h.confirmPage(dismissConfirm))
	h.handle("POST /poison/{id}/dismiss", h.consoleConfirmed("dismiss", dismissConfirm, func(*http.Request) string { return "/poison" }))
	h.handle("GET /consumers", h.pageConsumers)
	h.handle("GET /usage", h.pageUsage)
	h.handle("POST /usage/windows/{id}/retry", h.consoleAct("retry", usageBack))
	h.handle("GET /usage/windows/{id}/settle", h.confirmPage(settleConfirm))
	h.handle("POST /usage/windows/{id}/settle", h.consoleConfirmed("settle", settleConfirm, usageBack))
	h.handle("POST /reconcile", h.consoleReconcile)
	// Anything else answers 404, after authentication like the rest.
	h.handle("/", func(w http.ResponseWriter, r *http.Request, _ Principal) {
		h.fail(w, r, fmt.Errorf("no page %s: %w", r.URL.Path, marketplace.ErrNotFound))
	})
}

// usageBack is the usage page of the window's entitlement.
func usageBack(r *http.Request) string {
	return "/usage?entitlement=" + url.QueryEscape(r.FormValue("entitlement"))
}

func (h *Handler) pageOverview(w http.ResponseWriter, r *http.Request, _ Principal) {
	counts, parked, err := h.overview(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	data := struct {
		Counts overviewJSON
		Parked []parkedJSON
		Health healthJSON
	}{counts, parked, healthView(h.cfg.Processor.Health())}
	h.render(w, r, http.StatusOK, "overview", pageData{Title: "Overview", Data: data})
}

func (h *Handler) pageCustomers(w http.ResponseWriter, r *http.Request, _ Principal) {
	as, err := h.accounts(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "customers", pageData{Title: "Customers", Data: as})
}

func (h *Handler) pageCustomer(w http.ResponseWriter, r *http.Request, _ Principal) {
	d, err := h.accountDetail(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var ids []string
	for _, e := range d.Entitlements {
		if e.UsageReportingID != "" {
			ids = append(ids, e.ID)
		}
	}
	chart, err := h.usageChart(r.Context(), ids, r.URL.Query().Get("metric"))
	if err != nil && !errors.Is(err, errNoReporter) {
		h.fail(w, r, err)
		return
	}
	data := struct {
		Detail accountDetailJSON
		Chart  any
	}{d, chart}
	h.render(w, r, http.StatusOK, "customer", pageData{Title: "Customer " + d.Account.ID, Data: data})
}

func (h *Handler) pageApprovals(w http.ResponseWriter, r *http.Request, _ Principal) {
	as, err := h.approvals(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "approvals", pageData{Title: "Approval queue", Data: as})
}

func (h *Handler) pagePoison(w http.ResponseWriter, r *http.Request, _ Principal) {
	ps, err := h.poison(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "poison", pageData{Title: "Poison messages", Data: ps})
}

func (h *Handler) pageConsumers(w http.ResponseWriter, r *http.Request, _ Principal) {
	all, err := h.consumers(r.Context(), false)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var blocked []consumerJSON
	for _, c := range all {
		if !c.Serving {
			blocked = append(blocked, c)
		}
	}
	data := struct{ Blocked, All []consumerJSON }{blocked, all}
	h.render(w, r, http.StatusOK, "consumers", pageData{Title: "Usage consumers", Data: data})
}

func (h *Handler) pageUsage(w http.ResponseWriter, r *http.Request, _ Principal) {
	if h.cfg.Reporter == nil {
		h.fail(w, r, errNoReporter)
		return
	}
	q := r.URL.Query()
	data := struct {
		Entitlement, State, Next string
		States                   []string
		Windows                  []windowJSON
		Billed                   []billedJSON
	}{Entitlement: q.Get("entitlement"), State: strings.ToLower(q.Get("state"))}
	for _, s := range allStates {
		data.States = append(data.States, string(s))
	}
	if data.Entitlement != "" {
		states, err := parseStates(data.State)
		after, kerr := decodeKey(q.Get("pageToken"))
		if err = errors.Join(err, kerr); err != nil {
			h.fail(w, r, err)
			return
		}
		ws, next, err := h.cfg.Reporter.ReadBack(r.Context(), usage.ReadBackQuery{
			EntitlementID: data.Entitlement, States: states, After: after, Limit: maxPageSize})
		if err != nil {
			h.fail(w, r, err)
			return
		}
		data.Next = encodeKey(next)
		for _, win := range ws {
			data.Windows = append(data.Windows, windowView(win))
		}
		if data.Billed, err = h.billed(r.Context(), data.Entitlement, timeZero, timeZero); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	h.render(w, r, http.StatusOK, "usage", pageData{Title: "Usage", Data: data})
}

func (h *Handler) consoleReconcile(w http.ResponseWriter, r *http.Request, p Principal) {
	rep, err := h.cfg.Processor.Reconcile(r.Context())
	h.action(r, p, "reconcile", "", err)
	v := reconcileView(rep)
	msg := "Reconciled: " + plural(len(v.Results), "resource") + " settled, " + plural(v.Failed, "failure")
	if !v.Changed && err == nil {
		msg = "Reconciled: nothing to change."
	}
	for _, res := range v.Results {
		if res.Error != "" {
			msg += "; " + res.Kind + " " + res.ID + ": " + res.Error
		}
	}
	h.redirectFlash(w, r, "/", msg, "Reconcile", err)
}

// consoleAct runs an action that needs no confirmation and redirects
// back, with its outcome as a flash message.
func (h *Handler) consoleAct(name string, back func(*http.Request) string) func(w http.ResponseWriter, r *http.Request, p Principal) {
	return func(w http.ResponseWriter, r *http.Request, p Principal) {
		form, err := readForm(r)
		id := r.PathValue("id")
		if err == nil {
			err = h.act(r, p, name, id, form)
		}
		h.redirectFlash(w, r, back(r), actionDone[name]+" "+id+".", name+" "+id, err)
	}
}

// actionDone names each action in flash messages.
var actionDone = map[string]string{
	"approve": "Approved", "reject": "Rejected", "redrive": "Redriven", "dismiss": "Dismissed",
	"retry": "Queued for retry:", "settle": "Settled",
}
