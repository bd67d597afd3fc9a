// Package ops is the operator's surface of a Marketplace integration: a JSON
// API and a small server-rendered web console over the marketplace
// Processor's and usage Reporter's public API, mounted as one http.Handler,
// the way net/http/pprof is mounted.
//
// SCAFFOLD: the shapes agreed in the session design; the ops branch fills
// them in.
package ops

import (
	"errors"
	"net/http"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// Config configures a Handler.
type Config struct {
	// Runtime gives the logger (every action is logged with who did it)
	// and the clock.
	gcpmarketplace.Runtime

	// Processor is required.
	Processor *marketplace.Processor
	// Reporter is optional: without it the usage pages and routes answer
	// 404.
	Reporter *usage.Reporter

	// Auth authenticates every request; required (see BearerTokens).
	Auth Authenticator

	// BasePath is the path the Handler is mounted at: "/ops" by default.
	// Mount it with mux.Handle(BasePath+"/", h).
	BasePath string
}

// Principal is who made a request, as an Authenticator established it.
type Principal struct {
	Name string // logged with every action
}

// Authenticator decides who made a request. It returns an error wrapping
// ErrUnauthenticated to refuse it (401).
type Authenticator interface {
	Authenticate(r *http.Request) (Principal, error)
}

// AuthenticatorFunc adapts a function to an Authenticator (an IAP JWT
// header check, a session lookup).
type AuthenticatorFunc func(r *http.Request) (Principal, error)

// Authenticate calls f(r).
func (f AuthenticatorFunc) Authenticate(r *http.Request) (Principal, error) { return f(r) }

// ErrUnauthenticated is wrapped by an Authenticator's refusals.
var ErrUnauthenticated = errors.New("ops: unauthenticated")

// BearerTokens authenticates "Authorization: Bearer <token>" against
// tokens, a map from token to the principal's name, comparing in constant
// time.
func BearerTokens(tokens map[string]string) Authenticator {
	return AuthenticatorFunc(func(r *http.Request) (Principal, error) { return Principal{}, ErrUnauthenticated })
}

// Handler serves the ops JSON API and console.
type Handler struct {
	cfg Config
}

// New returns a Handler for cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.Processor == nil || cfg.Auth == nil {
		return nil, errors.New("ops: Config.Processor and Config.Auth are required")
	}
	return &Handler{cfg: cfg}, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "not implemented", http.StatusNotImplemented)
}
