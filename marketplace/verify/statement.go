package verify

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// AgentspaceIssuer is the iss of the software_statement Gemini Enterprise
// sends to an AI agent's Dynamic Client Registration endpoint; its signing
// keys are served at this URL ({kid: PEM certificate}). Note the path
// service_accounts/v1, not the robot/v1 of SignupIssuer: another signer,
// which is why the two verifiers share no constant.
const AgentspaceIssuer = "https://www.googleapis.com/service_accounts/v1/metadata/x509/cloud-agentspace@system.gserviceaccount.com"

// statementIssuerPrefix is what every accepted statement issuer, the real
// one and the test ones, starts with: Google's x509 metadata URL of a
// service account, followed by its email.
const statementIssuerPrefix = "https://www.googleapis.com/service_accounts/v1/metadata/x509/"

// MaxRedirectURIs bounds the auth_app_redirect_uris of a software
// statement. Gemini Enterprise documents two; the app registers every one
// on an OAuth client, so a statement cannot make it register hundreds.
const MaxRedirectURIs = 10

// maxRedirectURILen bounds one redirect URI, in bytes.
const maxRedirectURILen = 2048

// StatementClaims are the verified claims of a software_statement.
type StatementClaims struct {
	Issuer       string    // iss: AgentspaceIssuer or an allowed test issuer
	Audience     string    // aud: the agent card's provider.url
	AccountID    string    // sub: the Procurement account id
	OrderID      string    // google.order: the Marketplace order id
	RedirectURIs []string  // auth_app_redirect_uris, validated (https, no fragment); nil if the statement has none
	IssuedAt     time.Time // iat
	ExpiresAt    time.Time // exp
}

// StatementVerifier verifies the software_statement JWT that Gemini
// Enterprise sends to an AI agent's Dynamic Client Registration endpoint
// (and may send in A2A request metadata). It runs the same RS256 core as
// SignupVerifier, with its own constants:
//
//   - at most MaxTokenSize bytes, strict base64url, alg RS256 only, no crit
//     header;
//   - iss equal to AgentspaceIssuer, or to one of Config.TestStatementIssuers,
//     checked before any key is fetched;
//   - the signature, with the key named by kid from the issuer's own
//     certificate map (Config.StatementCertsURL in tests), cached and
//     refreshed with the same limits as the sign-up keys, never through a
//     redirect;
//   - aud equal to the configured audience (the agent card's provider.url,
//     compared exactly);
//   - exp and iat required JSON numbers, with Config.Leeway of clock skew,
//     and exp − iat at most MaxTokenLifetime (one hour). Google's lifetime
//     for these statements is not documented: 300 s is reported but
//     unverified, and test statements minted with a service account key
//     (Config.TestStatementIssuers) are commonly valid for 3600 s, so one
//     hour accepts both and still bounds a leaked statement;
//   - sub a Procurement account id (procurement.ValidID);
//   - google.order (a nested object claim, "google": {"order": "..."}) a
//     non-empty string shaped like a Procurement id: ErrTokenOrder
//     otherwise;
//   - auth_app_redirect_uris, when present, at most MaxRedirectURIs
//     absolute https URLs with a host and no userinfo, fragment, space or
//     control character: ErrTokenRedirectURI otherwise. A statement
//     without the claim verifies with nil RedirectURIs; the DCR handler
//     decides what to register then;
//   - google and auth_app_redirect_uris of the wrong JSON type (not an
//     object, not a list of strings): ErrTokenMalformed, as for any claim
//     of the wrong type.
//
// Every error is a *TokenError whose Reason is one of the Err* reasons.
// A StatementVerifier is safe for concurrent use; create one per process so
// the key cache is shared.
type StatementVerifier struct {
	check jwtCheck
}

// NewStatementVerifier returns a verifier for statements issued for
// audience (the agent card's provider.url, compared exactly). cfg may be
// nil; its Signup* and Push* fields are ignored. It refuses an empty
// audience, a StatementCertsURL that is neither https nor http to a
// loopback host, and a TestStatementIssuers entry that is not a service
// account's x509 metadata URL on www.googleapis.com.
func NewStatementVerifier(audience string, cfg *Config) (*StatementVerifier, error) {
	if audience == "" || strings.TrimSpace(audience) != audience {
		return nil, fmt.Errorf("verify: NewStatementVerifier: audience %q: pass the agent card's provider.url", audience)
	}
	s, err := resolve(cfg, "NewStatementVerifier")
	if err != nil {
		return nil, err
	}
	issuers := []string{AgentspaceIssuer}
	for _, iss := range s.TestStatementIssuers {
		if err := checkTestStatementIssuer(iss); err != nil {
			return nil, fmt.Errorf("verify: NewStatementVerifier: %w", err)
		}
		issuers = append(issuers, iss)
	}
	check := jwtCheck{
		kind:      "software-statement",
		issuers:   issuers,
		audiences: []string{audience},
		leeway:    s.leeway,
		now:       s.now,
	}
	newCache := func(u string) *keyCache {
		return newKeyCache(check.kind, u, formatX509, s.HTTPClient, s.now, s.Logger)
	}
	if s.StatementCertsURL != "" {
		if err := checkKeyURL(s.StatementCertsURL); err != nil {
			return nil, fmt.Errorf("verify: NewStatementVerifier: %w", err)
		}
		check.keys = newCache(s.StatementCertsURL)
	} else {
		// Each issuer publishes its keys at its own URL (iss is that URL),
		// so each gets its own cache: a test issuer's key must never verify
		// a statement naming AgentspaceIssuer.
		check.keysByIssuer = make(map[string]*keyCache, len(issuers))
		for _, iss := range issuers {
			check.keysByIssuer[iss] = newCache(iss)
		}
	}
	return &StatementVerifier{check: check.withParser()}, nil
}

// checkTestStatementIssuer accepts only Google's x509 metadata URL of a
// service account: keys are fetched from the issuer URL, so anything else
// would fetch keys from wherever the configuration says.
func checkTestStatementIssuer(iss string) error {
	email, ok := strings.CutPrefix(iss, statementIssuerPrefix)
	local, domain, hasAt := strings.Cut(email, "@")
	if !ok || !hasAt || local == "" || domain == "" || strings.Contains(domain, "@") {
		return fmt.Errorf("test statement issuer %q: want %s<service account email>", iss, statementIssuerPrefix)
	}
	for i := 0; i < len(email); i++ {
		c := email[i]
		if c != '@' && c != '.' && c != '-' && c != '_' && !('0' <= c && c <= '9') && !('a' <= c && c <= 'z') {
			return fmt.Errorf("test statement issuer %q: the email may hold lower-case letters, digits, '.', '-', '_' and one '@'", iss)
		}
	}
	return nil
}

// Audience returns the audience v accepts.
func (v *StatementVerifier) Audience() string { return v.check.audiences[0] }

// statementTokenClaims is the payload of a software statement. google is a
// nested object, as in the sign-up JWT. A claim of the wrong JSON type (a
// google that is not an object, redirect URIs that are not a list of
// strings) fails the decoding and is refused as ErrTokenMalformed, as a
// sign-up token's roles of the wrong type are; order is decoded as any so
// that a number is refused as ErrTokenOrder, with the other order checks.
type statementTokenClaims struct {
	registeredClaims
	Google struct {
		Order any `json:"order"`
	} `json:"google"`
	RedirectURIs []string `json:"auth_app_redirect_uris"`
}

// Verify verifies a software_statement and returns its claims. Every
// error is a *TokenError; see StatementVerifier for the checks. Only
// ErrKeysUnavailable is worth retrying. ctx bounds a key fetch, if one is
// needed.
func (v *StatementVerifier) Verify(ctx context.Context, token string) (StatementClaims, error) {
	var c statementTokenClaims
	if err := v.check.verify(ctx, token, &c); err != nil {
		return StatementClaims{}, err
	}
	order, err := statementOrder(c.Google.Order)
	if err != nil {
		return StatementClaims{}, v.check.tokenErr(ErrTokenOrder, err)
	}
	if err := checkRedirectURIs(c.RedirectURIs); err != nil {
		return StatementClaims{}, v.check.tokenErr(ErrTokenRedirectURI, err)
	}
	out := StatementClaims{
		Issuer:    c.Issuer,
		Audience:  v.check.audiences[0],
		AccountID: c.Subject,
		OrderID:   order,
	}
	if len(c.RedirectURIs) > 0 { // absent, null and [] are all nil
		out.RedirectURIs = c.RedirectURIs
	}
	// The core has required both.
	out.IssuedAt, out.ExpiresAt = c.IssuedAt.Time, c.ExpiresAt.Time
	return out, nil
}

// statementOrder checks google.order: a non-empty string shaped like a
// Procurement id, since the app looks it up and stores it.
func statementOrder(v any) (string, error) {
	order, ok := v.(string)
	switch {
	case v == nil:
		return "", errors.New("no google.order claim")
	case !ok:
		return "", fmt.Errorf("google.order is a %T, not a string", v)
	case !procurement.ValidID(order):
		return "", fmt.Errorf("google.order %q (%d bytes) is not a valid order id", truncate(order, 64), len(order))
	}
	return order, nil
}

// checkRedirectURIs bounds the count and checks each URI.
func checkRedirectURIs(uris []string) error {
	if len(uris) > MaxRedirectURIs {
		return fmt.Errorf("%d auth_app_redirect_uris, the limit is %d", len(uris), MaxRedirectURIs)
	}
	for i, u := range uris {
		if err := checkRedirectURI(u); err != nil {
			return fmt.Errorf("auth_app_redirect_uris[%d]: %w", i, err)
		}
	}
	return nil
}

// checkRedirectURI accepts what RFC 6749 section 3.1.2 and RFC 8252 allow
// a confidential web client to register: an absolute https URL with a
// host, no fragment and no userinfo (which would let a URL read as one
// host and go to another).
func checkRedirectURI(raw string) error {
	if len(raw) > maxRedirectURILen {
		return fmt.Errorf("%d bytes, the limit is %d", len(raw), maxRedirectURILen)
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c == 0x7f {
			return fmt.Errorf("%q has a space or control character at offset %d", truncate(raw, 128), i)
		}
	}
	if strings.Contains(raw, "#") {
		return fmt.Errorf("%q has a fragment", truncate(raw, 128))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q: %w", truncate(raw, 128), err)
	}
	switch {
	case u.Scheme != "https" || !strings.HasPrefix(raw, "https://"):
		return fmt.Errorf("%q is not an absolute https URL", truncate(raw, 128))
	case u.User != nil:
		return fmt.Errorf("%q has userinfo", truncate(raw, 128))
	case u.Hostname() == "":
		return fmt.Errorf("%q has no host", truncate(raw, 128))
	}
	return nil
}
