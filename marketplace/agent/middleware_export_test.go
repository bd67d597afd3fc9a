package agent

import (
	"context"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
)

// CountVerifications makes the Registry call n before each statement
// verification (set it before any concurrent use); for agent_test, whose
// stores import this package.
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
