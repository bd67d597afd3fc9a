package ops

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// nearDeadline is how close to its reporting deadline an unreported window
// must be to count in the overview.
const nearDeadline = 30 * time.Minute

// The reads the API and the console share.

func (h *Handler) parked(ctx context.Context) ([]parkedJSON, error) {
	es, err := h.cfg.Processor.Parked(ctx)
	if err != nil {
		return nil, err
	}
	now := h.cfg.Now()
	out := make([]parkedJSON, 0, len(es))
	for _, e := range es {
		out = append(out, parkedView(e, now))
	}
	return out, nil
}

func (h *Handler) approvals(ctx context.Context) ([]approvalJSON, error) {
	as, err := h.cfg.Processor.PendingApprovals(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]approvalJSON, 0, len(as))
	for _, a := range as {
		out = append(out, approvalView(a))
	}
	return out, nil
}

func (h *Handler) poison(ctx context.Context) ([]poisonJSON, error) {
	ps, err := h.cfg.Processor.Poison(ctx, 0)
	if err != nil {
		return nil, err
	}
	out := make([]poisonJSON, 0, len(ps))
	for _, p := range ps {
		out = append(out, poisonView(p))
	}
	return out, nil
}

func (h *Handler) consumers(ctx context.Context, blockedOnly bool) ([]consumerJSON, error) {
	if h.cfg.Reporter == nil {
		return nil, errNoReporter
	}
	cs, err := h.cfg.Reporter.Consumers(ctx, usage.ConsumerQuery{BlockedOnly: blockedOnly})
	if err != nil {
		return nil, err
	}
	out := make([]consumerJSON, 0, len(cs))
	for _, c := range cs {
		out = append(out, consumerView(c))
	}
	return out, nil
}

// overview counts what needs an operator. Without a Reporter, blocked and
// deadline are 0.
func (h *Handler) overview(ctx context.Context) (overviewJSON, []parkedJSON, error) {
	var o overviewJSON
	parked, err := h.parked(ctx)
	if err != nil {
		return o, nil, err
	}
	as, err := h.approvals(ctx)
	if err != nil {
		return o, nil, err
	}
	ps, err := h.poison(ctx)
	if err != nil {
		return o, nil, err
	}
	o.Parked, o.Approvals, o.Poison = len(parked), len(as), len(ps)
	if h.cfg.Reporter == nil {
		return o, parked, nil
	}
	blocked, err := h.consumers(ctx, true)
	if err != nil {
		return o, nil, err
	}
	o.Blocked = len(blocked)
	backlog, err := h.cfg.Reporter.Backlog(ctx)
	if err != nil {
		return o, nil, err
	}
	soon := h.cfg.Now().Add(nearDeadline)
	for _, w := range backlog {
		if w.State != usage.StateRejected && !w.Deadline.IsZero() && w.Deadline.Before(soon) {
			o.Deadline++
		}
	}
	return o, parked, nil
}

func (h *Handler) accounts(ctx context.Context) ([]accountJSON, error) {
	as, err := h.cfg.Processor.Accounts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]accountJSON, 0, len(as))
	for _, a := range as {
		out = append(out, accountView(a))
	}
	return out, nil
}

func (h *Handler) entitlements(ctx context.Context, q marketplace.EntitlementQuery) ([]entitlementJSON, error) {
	es, err := h.cfg.Processor.Entitlements(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make([]entitlementJSON, 0, len(es))
	for _, e := range es {
		out = append(out, entitlementView(e))
	}
	return out, nil
}

// accountDetailJSON is an account with its entitlements and their history.
type accountDetailJSON struct {
	Account      accountJSON       `json:"account"`
	Entitlements []entitlementJSON `json:"entitlements"`
	History      []transitionJSON  `json:"history"`
}

func (h *Handler) accountDetail(ctx context.Context, id string) (accountDetailJSON, error) {
	a, err := h.cfg.Processor.Account(ctx, id)
	if err != nil {
		return accountDetailJSON{}, err
	}
	es, err := h.entitlements(ctx, marketplace.EntitlementQuery{AccountID: id})
	if err != nil {
		return accountDetailJSON{}, err
	}
	ts, err := h.cfg.Processor.History(ctx, marketplace.HistoryQuery{AccountID: id})
	if err != nil {
		return accountDetailJSON{}, err
	}
	return accountDetailJSON{Account: accountView(a), Entitlements: es, History: historyView(ts)}, nil
}

// entitlementDetailJSON is an entitlement with its history.
type entitlementDetailJSON struct {
	Entitlement entitlementJSON  `json:"entitlement"`
	History     []transitionJSON `json:"history"`
}

func (h *Handler) entitlementDetail(ctx context.Context, id string) (entitlementDetailJSON, error) {
	e, err := h.cfg.Processor.Entitlement(ctx, id)
	if err != nil {
		return entitlementDetailJSON{}, err
	}
	ts, err := h.cfg.Processor.History(ctx, marketplace.HistoryQuery{EntitlementID: id})
	if err != nil {
		return entitlementDetailJSON{}, err
	}
	return entitlementDetailJSON{Entitlement: entitlementView(e), History: historyView(ts)}, nil
}

// parseStates parses a comma-separated list of window states, in any case
// ("Reported", "pending").
func parseStates(s string) ([]usage.WindowState, error) {
	if s == "" {
		return nil, nil
	}
	var out []usage.WindowState
	for part := range strings.SplitSeq(s, ",") {
		st := usage.WindowState(strings.ToLower(strings.TrimSpace(part)))
		if !slices.Contains(allStates, st) {
			return nil, fmt.Errorf("unknown window state %q: %w", part, errBadRequest)
		}
		out = append(out, st)
	}
	return out, nil
}

var allStates = []usage.WindowState{usage.StatePending, usage.StateUnknown, usage.StateReported, usage.StateRejected, usage.StateExpired}

// entitlementState parses an entitlement state filter: the enum value
// with or without its ENTITLEMENT_ prefix, in any case.
func entitlementState(s string) procurement.EntitlementState {
	if s == "" {
		return ""
	}
	s = strings.ToUpper(s)
	if !strings.HasPrefix(s, "ENTITLEMENT_") {
		s = "ENTITLEMENT_" + s
	}
	return procurement.EntitlementState(s)
}

// allWindows reads every window q selects, page after page.
func (h *Handler) allWindows(ctx context.Context, q usage.ReadBackQuery) ([]usage.Window, error) {
	if h.cfg.Reporter == nil {
		return nil, errNoReporter
	}
	var out []usage.Window
	for {
		ws, next, err := h.cfg.Reporter.ReadBack(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, ws...)
		if next.IsZero() {
			return out, nil
		}
		q.After = next
	}
}

// billed sums the Reported windows of a consumer per hour and metric,
// oldest hour first: what Google confirmed it billed.
func (h *Handler) billed(ctx context.Context, entitlementID string, from, to time.Time) ([]billedJSON, error) {
	ws, err := h.allWindows(ctx, usage.ReadBackQuery{EntitlementID: entitlementID,
		States: []usage.WindowState{usage.StateReported}, From: from, To: to})
	if err != nil {
		return nil, err
	}
	type key struct {
		hour   time.Time
		metric string
	}
	sums := map[key]*billedJSON{}
	var order []key
	for _, w := range ws {
		hour := w.Start.UTC().Truncate(time.Hour)
		for _, v := range w.Values {
			k := key{hour, v.Metric}
			b := sums[k]
			if b == nil {
				b = &billedJSON{Hour: hour, Metric: v.Metric, Kind: v.Kind.String()}
				sums[k] = b
				order = append(order, k)
			}
			b.Int64 += v.Int64
			b.Double += v.Double
		}
	}
	slices.SortStableFunc(order, func(a, b key) int {
		if c := a.hour.Compare(b.hour); c != 0 {
			return c
		}
		return strings.Compare(a.metric, b.metric)
	})
	out := make([]billedJSON, 0, len(order))
	for _, k := range order {
		out = append(out, *sums[k])
	}
	return out, nil
}
