package agent

import (
	"context"
	"net/http"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

// SCAFFOLD: the identity-per-request half; the agent-app branch fills it in.

// Caller is who is calling the agent: the order, its entitlement, and the
// account.
type Caller struct {
	Order       Order
	Entitlement marketplace.Entitlement
}

// TokenChecker is the app's check of an access token its authorization
// server issued (introspection or local JWT validation): it returns the
// OAuth client id the token was issued to.
type TokenChecker interface {
	ClientID(ctx context.Context, accessToken string) (string, error)
}

// CallerFrom returns the Caller the Middleware put in ctx.
func CallerFrom(ctx context.Context) (Caller, bool) { return Caller{}, false }

// Middleware identifies each request's order from its bearer token and
// refuses inactive or unknown orders.
func (r *Registry) Middleware(tc TokenChecker) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler { return h }
}

// IdentifyStatement identifies the caller from a software_statement (as
// sent in A2A request metadata); verified statements are cached until
// they expire.
func (r *Registry) IdentifyStatement(ctx context.Context, statement string) (Caller, error) {
	return Caller{}, errScaffold
}
