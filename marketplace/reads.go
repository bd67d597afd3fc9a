package marketplace

import (
	"context"
	"errors"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// SCAFFOLD: signatures agreed in the session design; bodies are filled in
// by the data-layer branch.

var errScaffold = errors.New("marketplace: not implemented yet")

// Accounts lists the accounts this integration knows, sorted by id.
func (p *Processor) Accounts(ctx context.Context) ([]Account, error) { return nil, errScaffold }

// Account returns the stored account id, or an error matching ErrNotFound.
func (p *Processor) Account(ctx context.Context, id string) (Account, error) {
	return Account{}, errScaffold
}

// Entitlements lists the stored entitlements q selects, sorted by id.
func (p *Processor) Entitlements(ctx context.Context, q EntitlementQuery) ([]Entitlement, error) {
	return nil, errScaffold
}

// Entitlement returns the stored entitlement id, or an error matching
// ErrNotFound.
func (p *Processor) Entitlement(ctx context.Context, id string) (Entitlement, error) {
	return Entitlement{}, errScaffold
}

// Transition is one change of a stored entitlement, as the processor
// committed it: the entitlement's history.
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
	return nil, errScaffold
}

// Dismiss removes a poison message without running it (EventID or
// MessageID, as Redrive), or returns an error matching ErrNotFound.
func (p *Processor) Dismiss(ctx context.Context, id string) error { return errScaffold }

// Health is how receiving is going, for a readiness check and the operator
// console.
type Health struct {
	Running     bool      // Run is running (receiving, or serving push)
	Pull        bool      // Run was given a subscription
	Since       time.Time // when Run started; zero if it is not running
	LastMessage time.Time // when the last message was handled; zero if none
	LastError   string    // the last message's failure or the receive error; "" if none since
	LastErrorAt time.Time
	InFlight    int   // messages being handled now
	Handled     int64 // messages acked since the processor was made
	Failed      int64 // messages nacked (to be redelivered)
}

// Health reports how receiving is going. It reads no store.
func (p *Processor) Health() Health { return Health{} }
