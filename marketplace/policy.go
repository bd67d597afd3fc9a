package marketplace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// Policy decides what happens to a new entitlement whose account has signed
// up, and to a plan change, both of which wait for the vendor's approval.
// The processor asks it once per request; a Decision with OutcomeQueued
// puts the request in the Store's approval queue until an operator calls
// Processor.Approve or Processor.Reject. A nil Config.Policy approves
// every request.
//
// Decide runs while the processor serialises work on the entitlement and
// before the Procurement API is called: keep it quick, and return an error
// (the message is redelivered and Decide asked again) rather than block.
type Policy interface {
	Decide(ctx context.Context, r PolicyRequest) (Decision, error)
}

// PolicyFunc adapts a function to a Policy.
type PolicyFunc func(ctx context.Context, r PolicyRequest) (Decision, error)

// Decide calls f(ctx, r).
func (f PolicyFunc) Decide(ctx context.Context, r PolicyRequest) (Decision, error) { return f(ctx, r) }

// PolicyRequest is what a Policy decides on, as just re-read from the
// Procurement API.
type PolicyRequest struct {
	// Kind is ApprovalEntitlement for a new entitlement and
	// ApprovalPlanChange for a plan change (Entitlement.NewPendingPlan is the
	// plan asked for).
	Kind ApprovalKind
	// Entitlement is the entitlement as just read.
	Entitlement procurement.Entitlement
	// Account is the entitlement's account as just read; set for
	// ApprovalEntitlement only.
	Account procurement.Account
}

// Decision is a Policy's answer.
type Decision struct {
	// Outcome is OutcomeApproved (approve the entitlement or the plan
	// change), OutcomeRejected (reject it) or OutcomeQueued (queue it for
	// an operator: Processor.Approve or Processor.Reject).
	Outcome Outcome
	// Reason accompanies OutcomeRejected (at most 256 bytes; the API keeps
	// no more).
	Reason string
	// MessageToUser accompanies OutcomeQueued: the status shown to the
	// customer while the request waits, for example "Provisioning, expect
	// one business day". Empty leaves the entitlement's message alone.
	MessageToUser string
}

// ErrInvalidDecision is matched by the error the processor reports when a
// Policy returns a Decision with another Outcome.
var ErrInvalidDecision = errors.New("marketplace: invalid policy decision")

func (d Decision) check() error {
	switch d.Outcome {
	case OutcomeApproved, OutcomeRejected, OutcomeQueued:
		return nil
	}
	return fmt.Errorf("%w: outcome %q", ErrInvalidDecision, d.Outcome)
}

// autoApprove approves every entitlement of a signed-up account and every
// plan change: the policy of a nil Config.Policy.
var autoApprove Policy = PolicyFunc(func(context.Context, PolicyRequest) (Decision, error) {
	return Decision{Outcome: OutcomeApproved}, nil
})

// ManualApproval holds every request for an operator, showing messageToUser
// (for example "Provisioning, expect one business day") to the customer
// while it waits. Operators list the queue with Processor.PendingApprovals
// and answer with Processor.Approve or Processor.Reject.
func ManualApproval(messageToUser string) Policy {
	return PolicyFunc(func(context.Context, PolicyRequest) (Decision, error) {
		return Decision{Outcome: OutcomeQueued, MessageToUser: messageToUser}, nil
	})
}

// ErrNotQueued is matched by the error Approve and Reject return when no
// request for the entitlement is in the approval queue.
var ErrNotQueued = errors.New("marketplace: no queued approval request")

// ErrNoLongerPending is matched by the error Approve and Reject return when
// the queued request is no longer waiting at Google (the customer cancelled
// or changed it, or it was decided elsewhere). The request has been removed
// from the queue and the entitlement's local state brought up to date.
var ErrNoLongerPending = errors.New("marketplace: request is no longer pending")

// PendingApprovals lists the approval queue, oldest first.
func (p *Processor) PendingApprovals(ctx context.Context) ([]ApprovalRequest, error) {
	var out []ApprovalRequest
	err := p.read(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		out, err = tx.ListApprovals(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("marketplace: list approval queue: %w", err)
	}
	return out, nil
}

// Approve approves the queued request (a new entitlement or a plan change)
// of the entitlement, as an operator: it re-reads the entitlement, approves
// it through the Procurement API (a plan change only if the pending plan is
// still the one queued), runs the callbacks the change leads to, and
// removes the request from the queue. It returns an error matching
// ErrNotQueued if nothing is queued for the entitlement, and
// ErrNoLongerPending if the request is no longer waiting at Google.
// Calling it again after success returns ErrNotQueued.
func (p *Processor) Approve(ctx context.Context, entitlementID string) error {
	return p.operatorDecision(ctx, entitlementID, Decision{Outcome: OutcomeApproved})
}

// Reject rejects the queued request of the entitlement with reason (shown
// to the customer, at most 256 bytes), as an operator. Errors are as for
// Approve.
func (p *Processor) Reject(ctx context.Context, entitlementID, reason string) error {
	return p.operatorDecision(ctx, entitlementID, Decision{Outcome: OutcomeRejected, Reason: reason})
}

func (p *Processor) operatorDecision(ctx context.Context, entitlementID string, d Decision) error {
	verb := map[Outcome]string{OutcomeApproved: "approve", OutcomeRejected: "reject"}[d.Outcome]
	if entitlementID == "" {
		return fmt.Errorf("marketplace: %s: empty entitlement id: %w", verb, ErrInvalid)
	}
	if err := p.checkOrigin(ctx); err != nil {
		return fmt.Errorf("marketplace: %s entitlement %s: %w", verb, entitlementID, err)
	}
	log := p.logger.With(slog.String("entitlement_id", entitlementID), slog.String("source", "operator"))
	res, err := p.settleEntitlement(ctx, entitlementID, entTrigger{source: sourceOperator, operator: &d}, log)
	if err != nil {
		return fmt.Errorf("marketplace: %s entitlement %s: %w", verb, entitlementID, err)
	}
	switch {
	case !res.wasQueued:
		return fmt.Errorf("marketplace: %s entitlement %s: %w", verb, entitlementID, ErrNotQueued)
	case res.action == "":
		return fmt.Errorf("marketplace: %s entitlement %s: %w", verb, entitlementID, ErrNoLongerPending)
	}
	return nil
}
