package ops

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// timeZero leaves a time bound open.
var timeZero time.Time

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// confirmSpec describes the confirmation page of a destructive action.
type confirmSpec struct {
	title    string
	question string // printf format taking the id
	reason   string // label of the reason field; "" for none
	required bool   // the reason is required
	settle   bool   // ask Reported or Rejected
	button   string
	back     func(*http.Request) string // where Cancel and the action lead
}

var (
	rejectConfirm = confirmSpec{title: "Reject request", question: "Reject the queued request of entitlement %s? The customer is told the reason.",
		reason: "Reason shown to the customer (required, at most 256 bytes)", required: true, button: "Reject",
		back: func(*http.Request) string { return "/approvals" }}
	dismissConfirm = confirmSpec{title: "Dismiss poison message", question: "Dismiss poison message %s without running it? It cannot be redriven afterwards.",
		button: "Dismiss", back: func(*http.Request) string { return "/poison" }}
	settleConfirm = confirmSpec{title: "Settle window", question: "Settle usage window %s by hand, after checking Google's billing? It will not be sent again.",
		reason: "Note (what you checked)", settle: true, button: "Settle", back: usageBack}
)

// confirmData is what templates/confirm.html shows.
type confirmData struct {
	Question, Action, Reason, Button, Cancel string
	ReasonRequired, SettleStates             bool
	Hidden                                   []hiddenField
}

type hiddenField struct{ Name, Value string }

func (h *Handler) renderConfirm(w http.ResponseWriter, r *http.Request, code int, s confirmSpec, errMsg string) {
	id := r.PathValue("id")
	d := confirmData{
		Question: fmt.Sprintf(s.question, id), Action: r.URL.EscapedPath(), Reason: s.reason, Button: s.button,
		Cancel: h.base + s.back(r), ReasonRequired: s.required, SettleStates: s.settle,
	}
	if e := r.FormValue("entitlement"); e != "" {
		d.Hidden = append(d.Hidden, hiddenField{"entitlement", e})
	}
	h.render(w, r, code, "confirm", pageData{Title: s.title, Error: errMsg, Data: d})
}

// confirmPage shows the confirmation form of a destructive action.
func (h *Handler) confirmPage(s confirmSpec) func(w http.ResponseWriter, r *http.Request, p Principal) {
	return func(w http.ResponseWriter, r *http.Request, _ Principal) {
		h.renderConfirm(w, r, http.StatusOK, s, "")
	}
}

// consoleConfirmed runs a destructive action posted from its confirmation
// page; without confirm=yes it shows the page again.
func (h *Handler) consoleConfirmed(name string, s confirmSpec, back func(*http.Request) string) func(w http.ResponseWriter, r *http.Request, p Principal) {
	act := h.consoleAct(name, back)
	return func(w http.ResponseWriter, r *http.Request, p Principal) {
		if _, err := readForm(r); err != nil || r.PostFormValue("confirm") != "yes" {
			h.renderConfirm(w, r, http.StatusBadRequest, s, "Please confirm.")
			return
		}
		act(w, r, p)
	}
}
