package marketplace

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// The callback-per-transition table of the package documentation, row by
// row: what a settlement observed (stored state, re-read state, the state
// the processor's own change produced, the message) → the callbacks, in
// order, and the entitlement each reports.
func TestCallbacksTable(t *testing.T) {
	t.Parallel()
	const (
		req  = procurement.EntitlementActivationRequested
		act  = procurement.EntitlementActive
		ppca = procurement.EntitlementPendingPlanChangeApproval
		ppc  = procurement.EntitlementPendingPlanChange
		pc   = procurement.EntitlementPendingCancellation
		canc = procurement.EntitlementCancelled
	)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// stored and read build the two sides; the plan change's pending plan
	// and the offer are given where a row depends on them.
	stored := func(s procurement.EntitlementState, plan string) *Entitlement {
		return &Entitlement{ID: "e", AccountID: "a", State: s, Plan: plan, UpdateTime: t0}
	}
	storedPending := func(s procurement.EntitlementState, plan, next, offer string) *Entitlement {
		e := stored(s, plan)
		e.PendingPlan, e.Offer = next, offer
		return e
	}
	read := func(s procurement.EntitlementState, plan string) *procurement.Entitlement {
		return &procurement.Entitlement{ID: "e", AccountID: "a", State: s, Plan: plan, UpdateTime: t0.Add(time.Hour)}
	}
	readPending := func(s procurement.EntitlementState, plan, next, offer string) *procurement.Entitlement {
		e := read(s, plan)
		e.NewPendingPlan, e.Offer = next, offer
		return e
	}
	scheduled := read(req, "p")
	scheduled.NewOfferStartTime = t0.Add(24 * time.Hour)
	// seen: the stored state to the state read, newer.
	seen := func(a *Entitlement, b *procurement.Entitlement) observed {
		return observed{stored: a, read: b, newer: true, after: b}
	}
	// msg: seen, triggered by a message of type k.
	msg := func(a *Entitlement, b *procurement.Entitlement, newer bool, k events.Type) observed {
		return observed{stored: a, read: b, newer: newer, after: b, trigger: k}
	}
	type T = events.Type
	const (
		creation  = events.TypeEntitlementCreationRequested
		accepted  = events.TypeEntitlementOfferAccepted
		active    = events.TypeEntitlementActive
		changed   = events.TypeEntitlementPlanChanged
		requested = events.TypeEntitlementPlanChangeRequested
		withdrawn = events.TypeEntitlementPlanChangeCancelled
		pending   = events.TypeEntitlementPendingCancellation
		reverted  = events.TypeEntitlementCancellationReverted
		cancelled = events.TypeEntitlementCancelled
		deleted   = events.TypeEntitlementDeleted
		renewed   = events.TypeEntitlementRenewed
		ended     = events.TypeEntitlementOfferEnded
		halting   = events.TypeEntitlementCancelling
	)
	tests := []struct {
		row  string // the row of the package documentation's table
		name string
		obs  observed
		want []T
	}{
		{"none → ACTIVATION_REQUESTED", "first sight of a request", seen(nil, read(req, "p")), []T{creation}},
		{"none / ACTIVATION_REQUESTED → scheduled", "first sight of an accepted offer", seen(nil, scheduled), []T{accepted}},
		{"none / ACTIVATION_REQUESTED → scheduled", "approved, waiting for its start", seen(stored(req, "p"), scheduled), []T{accepted}},
		{"none / ACTIVATION_REQUESTED → scheduled", "request unchanged", seen(stored(req, "p"), read(req, "p")), nil},
		{"none / ACTIVATION_REQUESTED → usable", "activated", seen(stored(req, "p"), read(act, "p")), []T{active}},
		{"none / ACTIVATION_REQUESTED → usable", "first sight, active", seen(nil, read(act, "p")), []T{active}},
		{"none / ACTIVATION_REQUESTED → usable", "first sight, pending cancellation", seen(nil, read(pc, "p")), []T{active, pending}},
		{"none / ACTIVATION_REQUESTED → usable", "first sight, plan change asked", seen(nil, readPending(ppca, "p", "q", "")), []T{active, requested}},
		{"usable p → usable q", "plan changed, first seen", seen(stored(act, "p"), read(act, "q")), []T{changed}},
		{"usable p → usable q", "plan change approved at once", seen(storedPending(ppca, "p", "q", ""), read(act, "q")), []T{changed}},
		{"usable p → usable q", "plan change took effect at term end", seen(storedPending(ppc, "p", "q", ""), read(act, "q")), []T{changed}},
		{"usable p → usable q", "replacement offer on the same plan", seen(storedPending(ppca, "p", "p", "o1"), readPending(act, "p", "", "o2")), []T{changed}},
		{"usable p → usable q", "offer ended, list price under another offer name", seen(storedPending(act, "p", "", "o1"), readPending(act, "p", "", "o2")), nil},
		{"usable → PENDING_PLAN_CHANGE_APPROVAL", "plan change requested", seen(stored(act, "p"), readPending(ppca, "p", "q", "")), []T{requested}},
		{"usable → PENDING_PLAN_CHANGE_APPROVAL", "another plan requested", seen(storedPending(ppca, "p", "q", ""), readPending(ppca, "p", "r", "")), []T{requested}},
		{"usable → PENDING_PLAN_CHANGE_APPROVAL", "approved for term end", seen(storedPending(ppca, "p", "q", ""), readPending(ppc, "p", "q", "")), nil},
		{"PENDING_PLAN_CHANGE(_APPROVAL) → usable, same plan", "rejected or withdrawn", seen(storedPending(ppca, "p", "q", ""), read(act, "p")), []T{withdrawn}},
		{"PENDING_PLAN_CHANGE(_APPROVAL) → usable, same plan", "scheduled change withdrawn", seen(storedPending(ppc, "p", "q", "o1"), readPending(act, "p", "", "o1")), []T{withdrawn}},
		{"PENDING_PLAN_CHANGE(_APPROVAL) → usable, same plan", "change dropped by a cancellation", seen(storedPending(ppca, "p", "q", ""), read(pc, "p")), []T{withdrawn, pending}},
		{"usable → PENDING_CANCELLATION", "cancelled at term end", seen(stored(act, "p"), read(pc, "p")), []T{pending}},
		{"PENDING_CANCELLATION → usable", "cancellation reverted", seen(stored(pc, "p"), read(act, "p")), []T{reverted}},
		{"any but CANCELLED → CANCELLED", "term ended", seen(stored(pc, "p"), read(canc, "p")), []T{cancelled}},
		{"any but CANCELLED → CANCELLED", "cancelled at once", seen(stored(act, "p"), read(canc, "p")), []T{cancelled}},
		{"any but CANCELLED → CANCELLED", "request abandoned", seen(stored(req, "p"), read(canc, "p")), []T{cancelled}},
		{"any but CANCELLED → CANCELLED", "late message, still cancelled", seen(stored(canc, "p"), read(canc, "p")), nil},
		{"any → deleted", "deleted after cancellation", seen(stored(canc, "p"), nil), []T{deleted}},
		{"any → deleted", "deleted while active (account closed)", seen(stored(act, "p"), nil), []T{cancelled, deleted}},
		{"none → CANCELLED", "never provisioned here", seen(nil, read(canc, "p")), nil},
		{"none → deleted", "never known, gone", observed{}, nil},

		// The processor's own change: from the state read to the state it
		// produced, after the transitions to the state read.
		{"processor's change", "first sight, approved",
			observed{read: read(req, "p"), newer: true, after: read(act, "p"), acted: true}, []T{creation, active}},
		{"processor's change", "approved after the observed state was committed",
			observed{stored: stored(req, "p"), read: read(req, "p"), after: read(act, "p"), acted: true}, []T{active}},
		{"processor's change", "rejected, removed",
			observed{stored: stored(req, "p"), read: read(req, "p"), acted: true}, []T{cancelled, deleted}},
		{"processor's change", "plan change approved",
			observed{stored: storedPending(ppca, "p", "q", ""), read: readPending(ppca, "p", "q", ""), after: read(act, "q"), acted: true}, []T{changed}},
		{"processor's change", "plan change rejected",
			observed{stored: storedPending(ppca, "p", "q", ""), read: readPending(ppca, "p", "q", ""), after: read(act, "p"), acted: true}, []T{withdrawn}},
		{"processor's change", "nothing newer, no change", observed{stored: stored(act, "p"), read: read(act, "p"), after: read(act, "p")}, nil},

		// Events that change nothing stored: once per eventId, while they
		// make sense.
		{"informational", "renewed while usable", msg(stored(act, "p"), read(act, "p"), false, renewed), []T{renewed}},
		{"informational", "renewed after the end", msg(stored(canc, "p"), read(canc, "p"), false, renewed), nil},
		{"informational", "offer ended while usable", msg(stored(pc, "p"), read(pc, "p"), false, ended), []T{ended}},
		{"informational", "offer ended, entitlement gone", msg(stored(canc, "p"), nil, true, ended), []T{deleted}},
		{"informational", "cancelling, term not over", msg(stored(act, "p"), read(pc, "p"), true, halting), []T{pending, halting}},
		{"informational", "cancelling, cancelled already", msg(stored(act, "p"), read(canc, "p"), true, halting), []T{cancelled}},
		{"informational", "a transition message fires only its transition", msg(stored(act, "p"), read(act, "p"), false, active), nil},
	}
	for _, tt := range tests {
		var got []T
		for _, s := range tt.obs.callbacks() {
			got = append(got, s.kind)
			if assert.NotNil(t, s.ent, "%s: %s: %s reports no entitlement", tt.row, tt.name, s.kind) {
				assert.Equal(t, "e", s.ent.ID, "%s: %s: %s", tt.row, tt.name, s.kind)
			}
		}
		assert.Equal(t, tt.want, got, "%s: %s", tt.row, tt.name)
	}
}

// An entitlement found deleted is reported with the last state read: the
// stored one after a 404, the one read before the processor's own
// rejection removed it.
func TestCallbacksReportLastStateRead(t *testing.T) {
	t.Parallel()
	prev := &Entitlement{ID: "e", AccountID: "a", Product: "svc", Plan: "p", Offer: "o", State: procurement.EntitlementActive,
		UsageReportingID: "u", UpdateTime: time.Unix(1, 0)}
	steps := observed{stored: prev, newer: true}.callbacks()
	want := &procurement.Entitlement{ID: "e", AccountID: "a", ProductExternalName: "svc", Plan: "p", Offer: "o",
		State: procurement.EntitlementActive, UsageReportingID: "u", UpdateTime: time.Unix(1, 0)}
	if assert.Len(t, steps, 2) {
		assert.Equal(t, want, steps[0].ent)
		assert.Equal(t, want, steps[1].ent)
	}

	cur := &procurement.Entitlement{ID: "e", State: procurement.EntitlementActivationRequested}
	steps = observed{stored: prev, read: cur, acted: true}.callbacks()
	if assert.Len(t, steps, 2) {
		assert.Same(t, cur, steps[0].ent)
		assert.Same(t, cur, steps[1].ent)
	}
}

// The account rows of the table.
func TestAccountTransition(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                               string
		stored, entitlementsStored, exists bool
		want                               events.Type
	}{
		{"account unknown → exists", false, false, true, events.TypeAccountActive},
		{"only entitlements known → exists", false, true, true, events.TypeAccountActive},
		{"account known → exists", true, true, true, ""},
		{"account known → deleted", true, false, false, events.TypeAccountDeleted},
		{"only entitlements known → deleted", false, true, false, events.TypeAccountDeleted},
		{"never known, gone", false, false, false, ""},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, accountTransition(tt.stored, tt.entitlementsStored, tt.exists), tt.name)
	}
}
