package ops

import (
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// The JSON shapes of the API (documented in doc.go); the console renders
// the same values.

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

type accountJSON struct {
	ID             string    `json:"id"`
	SignupApproved bool      `json:"signupApproved"`
	VendorUserID   string    `json:"vendorUserId,omitempty"`
	UserIdentity   string    `json:"userIdentity,omitempty"`
	UpdateTime     time.Time `json:"updateTime,omitzero"`
	CreatedAt      time.Time `json:"createdAt,omitzero"`
}

func accountView(a marketplace.Account) accountJSON {
	return accountJSON{ID: a.ID, SignupApproved: a.SignupApproved, VendorUserID: a.VendorUserID,
		UserIdentity: a.UserIdentity, UpdateTime: utc(a.UpdateTime), CreatedAt: utc(a.CreatedAt)}
}

type entitlementJSON struct {
	ID               string    `json:"id"`
	AccountID        string    `json:"accountId"`
	Product          string    `json:"product,omitempty"`
	Plan             string    `json:"plan,omitempty"`
	PendingPlan      string    `json:"pendingPlan,omitempty"`
	Offer            string    `json:"offer,omitempty"`
	State            string    `json:"state"`
	UsageReportingID string    `json:"usageReportingId,omitempty"`
	UpdateTime       time.Time `json:"updateTime,omitzero"`
	Parked           bool      `json:"parked"`
	ParkedAt         time.Time `json:"parkedAt,omitzero"`
	CancelTime       time.Time `json:"cancelTime,omitzero"`
}

func entitlementView(e marketplace.Entitlement) entitlementJSON {
	return entitlementJSON{ID: e.ID, AccountID: e.AccountID, Product: e.Product, Plan: e.Plan,
		PendingPlan: e.PendingPlan, Offer: e.Offer, State: string(e.State), UsageReportingID: e.UsageReportingID,
		UpdateTime: utc(e.UpdateTime), Parked: e.Parked, ParkedAt: utc(e.ParkedAt), CancelTime: utc(e.CancelTime)}
}

type parkedJSON struct {
	entitlementJSON
	WaitingSeconds int64 `json:"waitingSeconds"`
}

func parkedView(e marketplace.Entitlement, now time.Time) parkedJSON {
	var wait int64
	if !e.ParkedAt.IsZero() && now.After(e.ParkedAt) {
		wait = int64(now.Sub(e.ParkedAt) / time.Second)
	}
	return parkedJSON{entitlementJSON: entitlementView(e), WaitingSeconds: wait}
}

type transitionJSON struct {
	Seq           int64     `json:"seq"`
	EntitlementID string    `json:"entitlementId"`
	AccountID     string    `json:"accountId"`
	At            time.Time `json:"at"`
	Change        string    `json:"change"`
	FromState     string    `json:"fromState,omitempty"`
	ToState       string    `json:"toState,omitempty"`
	FromPlan      string    `json:"fromPlan,omitempty"`
	ToPlan        string    `json:"toPlan,omitempty"`
	Source        string    `json:"source,omitempty"`
	EventID       string    `json:"eventId,omitempty"`
}

func historyView(ts []marketplace.Transition) []transitionJSON {
	out := make([]transitionJSON, 0, len(ts))
	for _, t := range ts {
		out = append(out, transitionJSON{Seq: t.Seq, EntitlementID: t.EntitlementID, AccountID: t.AccountID,
			At: utc(t.At), Change: string(t.Change), FromState: string(t.FromState), ToState: string(t.ToState),
			FromPlan: t.FromPlan, ToPlan: t.ToPlan, Source: t.Source, EventID: t.EventID})
	}
	return out
}

type approvalJSON struct {
	EntitlementID string    `json:"entitlementId"`
	Kind          string    `json:"kind"`
	AccountID     string    `json:"accountId"`
	Plan          string    `json:"plan,omitempty"`
	RequestedAt   time.Time `json:"requestedAt,omitzero"`
	Seq           int64     `json:"seq"`
}

func approvalView(a marketplace.ApprovalRequest) approvalJSON {
	return approvalJSON{EntitlementID: a.EntitlementID, Kind: string(a.Kind), AccountID: a.AccountID,
		Plan: a.Plan, RequestedAt: utc(a.RequestedAt), Seq: a.Seq}
}

type poisonJSON struct {
	MessageID string    `json:"messageId"`
	EventID   string    `json:"eventId,omitempty"`
	Reason    string    `json:"reason"`
	Data      string    `json:"data"`                 // the payload as text, when it is UTF-8
	DataBase  string    `json:"dataBase64,omitempty"` // the payload, when it is not
	At        time.Time `json:"at"`
}

func poisonView(p marketplace.Poison) poisonJSON {
	out := poisonJSON{MessageID: p.MessageID, EventID: p.EventID, Reason: p.Reason, At: utc(p.At)}
	if utf8.Valid(p.Data) {
		out.Data = string(p.Data)
	} else {
		b, _ := json.Marshal(p.Data) // []byte encodes as a quoted base64 string
		out.DataBase = string(b[1 : len(b)-1])
	}
	return out
}

type consumerJSON struct {
	EntitlementID    string    `json:"entitlementId"`
	UsageReportingID string    `json:"usageReportingId"`
	Start            time.Time `json:"start,omitzero"`
	End              time.Time `json:"end,omitzero"`
	Frontier         time.Time `json:"frontier,omitzero"`
	Serving          bool      `json:"serving"`
	BlockCode        string    `json:"blockCode,omitempty"`
	BlockDetail      string    `json:"blockDetail,omitempty"`
	BlockedSince     time.Time `json:"blockedSince,omitzero"`
}

func consumerView(c usage.ConsumerState) consumerJSON {
	return consumerJSON{EntitlementID: c.EntitlementID, UsageReportingID: c.UsageReportingID,
		Start: utc(c.Start), End: utc(c.End), Frontier: utc(c.Frontier), Serving: c.Block.Code == "",
		BlockCode: c.Block.Code, BlockDetail: c.Block.Detail, BlockedSince: utc(c.Block.Since)}
}

type metricValueJSON struct {
	Metric string  `json:"metric"`
	Kind   string  `json:"kind"`
	Int64  int64   `json:"int64,omitempty"`
	Double float64 `json:"double,omitempty"`
}

// Value is the value as a float, for display.
func (m metricValueJSON) Value() float64 {
	if m.Kind == usage.Double.String() {
		return m.Double
	}
	return float64(m.Int64)
}

type windowJSON struct {
	OperationID   string            `json:"operationId"`
	EntitlementID string            `json:"entitlementId"`
	ConsumerID    string            `json:"consumerId"`
	Start         time.Time         `json:"start"`
	End           time.Time         `json:"end"`
	Labels        json.RawMessage   `json:"labels"`
	Values        []metricValueJSON `json:"values"`
	State         string            `json:"state"`
	Reason        string            `json:"reason,omitempty"`
	Deadline      time.Time         `json:"deadline,omitzero"`
	Attempts      int               `json:"attempts"`
	SealedAt      time.Time         `json:"sealedAt,omitzero"`
	LastAttempt   time.Time         `json:"lastAttempt,omitzero"`
	ReportedAt    time.Time         `json:"reportedAt,omitzero"`
}

func windowView(w usage.Window) windowJSON {
	labels := json.RawMessage(w.Labels)
	if !json.Valid(labels) {
		labels = json.RawMessage("{}")
	}
	out := windowJSON{OperationID: w.OperationID, EntitlementID: w.EntitlementID, ConsumerID: w.ConsumerID,
		Start: utc(w.Start), End: utc(w.End), Labels: labels, State: string(w.State), Reason: w.Reason,
		Deadline: utc(w.Deadline), Attempts: w.Attempts, SealedAt: utc(w.SealedAt),
		LastAttempt: utc(w.LastAttempt), ReportedAt: utc(w.ReportedAt), Values: []metricValueJSON{}}
	for _, v := range w.Values {
		out.Values = append(out.Values, metricValueJSON{Metric: v.Metric, Kind: v.Kind.String(), Int64: v.Int64, Double: v.Double})
	}
	return out
}

// billedJSON is what was billed (reported and confirmed) for one consumer,
// hour and metric.
type billedJSON struct {
	Hour   time.Time `json:"hour"`
	Metric string    `json:"metric"`
	Kind   string    `json:"kind"`
	Int64  int64     `json:"int64,omitempty"`
	Double float64   `json:"double,omitempty"`
}

type resultJSON struct {
	Kind     string   `json:"kind"` // "account" or "entitlement"
	ID       string   `json:"id"`
	Outcomes []string `json:"outcomes"`
	State    string   `json:"state,omitempty"`
	Error    string   `json:"error,omitempty"`
}

type reconcileJSON struct {
	Changed bool         `json:"changed"`
	Failed  int          `json:"failed"`
	Results []resultJSON `json:"results"`
}

func reconcileView(rep marketplace.ReconcileReport) reconcileJSON {
	out := reconcileJSON{Changed: rep.Changed(), Results: []resultJSON{}}
	for _, r := range rep.Results {
		res := resultJSON{Kind: r.Resource.Kind.String(), ID: r.Resource.ID, State: string(r.State), Outcomes: []string{}}
		for _, o := range r.Outcomes {
			res.Outcomes = append(res.Outcomes, string(o))
		}
		if r.Err != nil {
			res.Error = r.Err.Error()
			out.Failed++
		}
		out.Results = append(out.Results, res)
	}
	return out
}

type healthJSON struct {
	Running      bool      `json:"running"`
	Pull         bool      `json:"pull"`
	Since        time.Time `json:"since,omitzero"`
	LastMessage  time.Time `json:"lastMessage,omitzero"`
	LastError    string    `json:"lastError,omitempty"`
	LastErrorAt  time.Time `json:"lastErrorAt,omitzero"`
	InFlight     int       `json:"inFlight"`
	Handled      int64     `json:"handled"`
	Failed       int64     `json:"failed"`
	UsageBacklog *int      `json:"usageBacklog,omitempty"` // unreported or rejected windows; absent without a Reporter
}

func healthView(hl marketplace.Health) healthJSON {
	return healthJSON{Running: hl.Running, Pull: hl.Pull, Since: utc(hl.Since), LastMessage: utc(hl.LastMessage),
		LastError: hl.LastError, LastErrorAt: utc(hl.LastErrorAt), InFlight: hl.InFlight, Handled: hl.Handled, Failed: hl.Failed}
}

// overviewJSON counts what needs an operator, first on the console.
type overviewJSON struct {
	Parked    int `json:"parked"`
	Approvals int `json:"approvals"`
	Poison    int `json:"poison"`
	Blocked   int `json:"blocked"`
	// Deadline counts unreported windows (Pending, Unknown, Expired) whose
	// reporting deadline is less than nearDeadline away or passed.
	Deadline int `json:"deadline"`
}
