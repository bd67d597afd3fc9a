package ops

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"

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

	// SessionKey signs the console's session cookies (HMAC-SHA256). nil
	// means a random key per Handler: sessions then do not survive a
	// restart, nor move between replicas. Otherwise it must have at least
	// MinSessionKeyBytes bytes (New refuses a shorter one).
	SessionKey []byte
	// SessionTTL is how long a console session lasts: 12 hours by
	// default.
	SessionTTL time.Duration
}

// MinSessionKeyBytes is the shortest Config.SessionKey New accepts: a
// shorter HMAC-SHA256 key is weaker than the digest.
const MinSessionKeyBytes = 32

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
// tokens, a map from token to the principal's name; an empty token is
// ignored. Nothing else is checked: give tokens of at least 16 random
// bytes (32 hex digits), a guessable token protects nothing. The SHA-256
// digests of the tokens are compared in constant time, so that neither
// the time taken nor the token's length leaks; every token is compared,
// so that the time does not tell which one came close.
func BearerTokens(tokens map[string]string) Authenticator {
	type entry struct {
		digest [sha256.Size]byte
		name   string
	}
	var entries []entry
	for tok, name := range tokens {
		if tok != "" {
			entries = append(entries, entry{sha256.Sum256([]byte(tok)), name})
		}
	}
	return AuthenticatorFunc(func(r *http.Request) (Principal, error) {
		got, ok := bearer(r)
		if !ok {
			return Principal{}, fmt.Errorf("no bearer token: %w", ErrUnauthenticated)
		}
		digest := sha256.Sum256([]byte(got))
		var name string
		found := 0
		for _, e := range entries {
			if subtle.ConstantTimeCompare(e.digest[:], digest[:]) == 1 {
				name, found = e.name, 1
			}
		}
		if found == 0 {
			return Principal{}, fmt.Errorf("unknown bearer token: %w", ErrUnauthenticated)
		}
		return Principal{Name: name}, nil
	})
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(h[len(prefix):]), true
}

// Handler serves the ops JSON API and console. Build it with New.
type Handler struct {
	cfg   Config
	base  string // BasePath, without a trailing slash
	log   *slog.Logger
	key   []byte
	ttl   time.Duration
	pages map[string]*template.Template
	mux   *http.ServeMux
	root  http.Handler // mux behind authentication and cross-origin protection
}

// New returns a Handler for cfg. Processor and Auth are required.
func New(cfg Config) (*Handler, error) {
	if cfg.Processor == nil || cfg.Auth == nil {
		return nil, errors.New("ops: Config.Processor and Config.Auth are required")
	}
	base := strings.TrimRight(cfg.BasePath, "/")
	if cfg.BasePath == "" {
		base = "/ops"
	}
	if base != "" && !strings.HasPrefix(base, "/") {
		return nil, fmt.Errorf("ops: Config.BasePath %q must start with /", cfg.BasePath)
	}
	if len(cfg.SessionKey) > 0 && len(cfg.SessionKey) < MinSessionKeyBytes {
		return nil, fmt.Errorf("ops: Config.SessionKey has %d bytes, want at least %d", len(cfg.SessionKey), MinSessionKeyBytes)
	}
	h := &Handler{cfg: cfg, base: base, log: cfg.Log(), key: cfg.SessionKey, ttl: cfg.SessionTTL}
	if len(h.key) == 0 {
		h.key = make([]byte, 32)
		_, _ = rand.Read(h.key) // crypto/rand.Read never fails (Go 1.24+)
	}
	if h.ttl <= 0 {
		h.ttl = 12 * time.Hour
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	h.pages = pages
	h.mux = http.NewServeMux()
	h.routeAPI()
	h.routeConsole()
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "ops: cross-origin request refused",
			slog.String("method", r.Method), slog.String("path", r.URL.Path))
		h.deny(w, r, http.StatusForbidden, "cross-origin request refused")
	}))
	h.root = cop.Handler(h.mux)
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.root.ServeHTTP(w, r)
}

// deny answers an API request with a JSON error and a console request
// with plain text.
func (h *Handler) deny(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if h.isAPI(r) {
		writeError(w, code, msg)
		return
	}
	http.Error(w, msg, code)
}

func (h *Handler) isAPI(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, h.base+"/api/")
}

// handle registers an authenticated route: pattern is "METHOD /path" with
// path relative to BasePath.
func (h *Handler) handle(pattern string, fn func(w http.ResponseWriter, r *http.Request, p Principal)) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		h.mux.Handle(h.base+method, h.authenticated(fn)) // any method
		return
	}
	h.mux.Handle(method+" "+h.base+path, h.authenticated(fn))
}

// action logs an operator's action with its principal and outcome.
func (h *Handler) action(r *http.Request, p Principal, name, id string, err error) {
	attrs := []slog.Attr{slog.String("principal", p.Name), slog.String("action", name), slog.String("id", id)}
	level := slog.LevelInfo
	if err != nil {
		level = slog.LevelWarn
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	h.log.LogAttrs(r.Context(), level, "ops: operator action", attrs...)
}
