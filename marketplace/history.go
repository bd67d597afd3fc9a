package marketplace

import (
	"context"
	"fmt"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// Transition is one change of a stored entitlement, as the processor
// committed it: the entitlement's history. It is written by the same
// transaction that commits the change (Tx.AppendTransition), and deleted
// with the account's other data when the account is purged
// (Tx.DeleteAccount).
type Transition struct {
	Seq           int64 // order of commit, assigned by the store
	EntitlementID string
	AccountID     string
	At            time.Time                    // when it was committed (processor clock)
	Change        events.Type                  // the callback the change ran (e.g. events.TypeEntitlementActive)
	FromState     procurement.EntitlementState // "" when first seen
	ToState       procurement.EntitlementState // "" when deleted
	FromPlan      string
	ToPlan        string
	Source        string // "message", "reconcile", "signup", "operator", "redrive"
	EventID       string // the triggering message's eventId; "" if none
}

// HistoryQuery selects transitions for History; fields are ANDed.
type HistoryQuery struct {
	AccountID     string // "" = any account
	EntitlementID string // "" = any entitlement
	Limit         int    // <= 0: all; otherwise the newest Limit
}

// History lists the transitions q selects, oldest first.
func (p *Processor) History(ctx context.Context, q HistoryQuery) ([]Transition, error) {
	var out []Transition
	err := p.read(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		out, err = tx.ListTransitions(ctx, q)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("marketplace: list history: %w", err)
	}
	return out, nil
}

// historySource is the Transition.Source of a settlement: the settlement
// of an entitlement of a purged account is told by what found the account
// gone.
func historySource(tr entTrigger) string {
	if tr.source == sourceAccountDeleted {
		return tr.origin
	}
	return tr.source
}

// transitionOf is the history record of a commit that stores local (nil:
// deleted) over prev (nil: first seen), after running the callbacks steps;
// nil when the commit changes nothing the history shows (no callback ran
// and neither the state nor the plan moved).
func transitionOf(id string, prev, local *Entitlement, steps []step, tr entTrigger, now time.Time) *Transition {
	t := Transition{EntitlementID: id, At: now, Source: historySource(tr)}
	if prev != nil {
		t.AccountID, t.FromState, t.FromPlan = prev.AccountID, prev.State, prev.Plan
	}
	if local != nil {
		t.AccountID, t.ToState, t.ToPlan = local.AccountID, local.State, local.Plan
	}
	if len(steps) > 0 {
		t.Change = steps[len(steps)-1].kind
	}
	moved := (prev == nil) != (local == nil) || t.FromState != t.ToState || t.FromPlan != t.ToPlan
	if t.Change == "" && !moved {
		return nil
	}
	if tr.ev != nil {
		t.EventID = tr.ev.ID()
	}
	return &t
}

// appendTransition records t, if any, in tx.
func appendTransition(ctx context.Context, tx Tx, t *Transition) error {
	if t == nil {
		return nil
	}
	return tx.AppendTransition(ctx, *t)
}
