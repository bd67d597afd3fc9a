package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/agent"
)

// ─────────────────────────────────────────────────────────────────────────
// STAND-IN IDENTITY PROVIDER: NOT FOR PRODUCTION.
//
// Gemini Enterprise gets its access tokens from YOUR OAuth authorization
// server (Keycloak, Okta, Auth0, your own): the one your agent card's
// oauth2 security scheme points at. This file stands in for it so that
// -emulator runs offline. It keeps clients and tokens in memory, issues
// opaque tokens with the client_credentials grant only (no authorization
// code flow, no user consent, no refresh tokens), and forgets everything
// at exit.
//
// Replace it with two small adapters to your authorization server:
//   - agent.IdentityProvider: CreateClient / DeleteClient through its admin
//     API (Keycloak: the client registration or admin REST API);
//   - agent.TokenChecker: ClientID, from token introspection (RFC 7662) or
//     a local check of its JWT access tokens (the azp/client_id claim).
// ─────────────────────────────────────────────────────────────────────────

// standinTokenPath is the stand-in's token endpoint.
const standinTokenPath = "/standin-idp/token"

// standinTokenLifetime is how long a stand-in access token is valid.
const standinTokenLifetime = time.Hour

var errStandinUnknownToken = errors.New("stand-in identity provider: unknown or expired access token")

// standinIdP is the stand-in identity provider (see above).
type standinIdP struct {
	now func() time.Time

	mu      sync.Mutex
	clients map[string]standinClient // client id →
	tokens  map[string]standinToken  // access token →
}

type standinClient struct {
	secret       string
	redirectURIs []string
}

type standinToken struct {
	clientID string
	exp      time.Time
}

var (
	_ agent.IdentityProvider = (*standinIdP)(nil)
	_ agent.TokenChecker     = (*standinIdP)(nil)
)

func newStandinIdP(now func() time.Time) *standinIdP {
	return &standinIdP{now: now, clients: map[string]standinClient{}, tokens: map[string]standinToken{}}
}

// CreateClient registers a new client; the Registry calls it once per
// order and keeps the secret sealed.
func (p *standinIdP) CreateClient(_ context.Context, r agent.ClientRequest) (agent.Client, error) {
	c := agent.Client{ID: "standin-client-" + randomHex(8), Secret: randomHex(24)}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clients[c.ID] = standinClient{secret: c.Secret, redirectURIs: slices.Clone(r.RedirectURIs)}
	return c, nil
}

// DeleteClient deletes a client and invalidates its tokens; an unknown
// client is not an error.
func (p *standinIdP) DeleteClient(_ context.Context, clientID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.clients, clientID)
	for tok, t := range p.tokens {
		if t.clientID == clientID {
			delete(p.tokens, tok)
		}
	}
	return nil
}

// ClientID is the token check: which client an access token was issued to.
func (p *standinIdP) ClientID(_ context.Context, accessToken string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.tokens[accessToken]
	if !ok || !p.now().Before(t.exp) {
		return "", errStandinUnknownToken
	}
	return t.clientID, nil
}

// tokenHandler is the token endpoint: grant_type=client_credentials, the
// client authenticated with HTTP Basic or client_id/client_secret in the
// form (RFC 6749 §2.3.1), answering RFC 6749 §5.1/§5.2.
func (p *standinIdP) tokenHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	if r.PostFormValue("grant_type") != "client_credentials" {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "unsupported_grant_type"})
		return
	}
	p.mu.Lock()
	c, known := p.clients[id]
	if !known || subtle.ConstantTimeCompare([]byte(c.secret), []byte(secret)) != 1 {
		p.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client"})
		return
	}
	tok := randomHex(24)
	p.tokens[tok] = standinToken{clientID: id, exp: p.now().Add(standinTokenLifetime)}
	p.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer",
		"expires_in": int(standinTokenLifetime.Seconds())})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
