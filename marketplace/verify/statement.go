package verify

import (
	"context"
	"errors"
	"time"
)

// SCAFFOLD: shapes agreed in the session design; the tokens branch fills
// them in.

// AgentspaceIssuer is the iss of the software_statement Gemini Enterprise
// sends to an AI agent's Dynamic Client Registration endpoint; its signing
// keys are served at this URL ({kid: PEM certificate}).
const AgentspaceIssuer = "https://www.googleapis.com/service_accounts/v1/metadata/x509/cloud-agentspace@system.gserviceaccount.com"

// StatementClaims are the verified claims of a software_statement.
type StatementClaims struct {
	Issuer       string    // iss: AgentspaceIssuer or an allowed test issuer
	Audience     string    // aud: the agent card's provider.url
	AccountID    string    // sub: the Procurement account id
	OrderID      string    // google.order: the Marketplace order id
	RedirectURIs []string  // auth_app_redirect_uris, validated (https, no fragment)
	IssuedAt     time.Time // iat
	ExpiresAt    time.Time // exp
}

// StatementVerifier verifies software_statement JWTs.
type StatementVerifier struct{ s settings }

// NewStatementVerifier returns a verifier for statements issued for
// audience (the agent card's provider.url).
func NewStatementVerifier(audience string, cfg *Config) (*StatementVerifier, error) {
	s, err := resolve(cfg, "NewStatementVerifier")
	return &StatementVerifier{s: s}, err
}

// Verify verifies a software_statement and returns its claims. Every
// error is a *TokenError.
func (v *StatementVerifier) Verify(ctx context.Context, token string) (StatementClaims, error) {
	return StatementClaims{}, errors.New("verify: not implemented yet")
}
