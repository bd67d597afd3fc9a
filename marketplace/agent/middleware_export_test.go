package agent

import (
	"context"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
)

// ForgetOrder is forgetOrder, for agent_test (whose stores import this
// package).
func (r *Registry) ForgetOrder(orderID string) { r.forgetOrder(orderID) }

// ForgetEntitlement is forgetEntitlement, for agent_test.
func (r *Registry) ForgetEntitlement(id string) { r.forgetEntitlement(id) }

// CountVerifications makes the Registry count its statement
// verifications in *n (before any concurrent use).
func (r *Registry) CountVerifications(n func()) {
	next := r.verify
	r.verify = func(ctx context.Context, tok string) (verify.StatementClaims, error) {
		n()
		return next(ctx, tok)
	}
}

// ForgetStatements empties the verified-statement cache.
func (r *Registry) ForgetStatements() {
	r.ident.mu.Lock()
	defer r.ident.mu.Unlock()
	clear(r.ident.statements)
}
