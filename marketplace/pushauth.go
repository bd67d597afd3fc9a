package marketplace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultPushJWKSURL is where Google publishes the keys that sign the OIDC
// tokens of Pub/Sub push deliveries (Google's OAuth2 JWK Set).
const DefaultPushJWKSURL = "https://www.googleapis.com/oauth2/v3/certs"

// The iss values of Google-signed OIDC tokens.
const (
	pushIssuerURL  = "https://accounts.google.com"
	pushIssuerHost = "accounts.google.com"
)

// PushClaims are the verified claims of a push delivery's OIDC token.
type PushClaims struct {
	// Email is the service account the push subscription authenticates as.
	Email string
	// EmailVerified is email_verified.
	EmailVerified bool
	// Subject is sub: the service account's unique numeric id.
	Subject string
	// Audience is the configured audience the token was issued for.
	Audience string
	// Issuer is iss: "https://accounts.google.com" or "accounts.google.com".
	Issuer string
	// IssuedAt and ExpiresAt are iat and exp.
	IssuedAt, ExpiresAt time.Time
}

// PushVerifier verifies the OIDC token that Pub/Sub puts in the
// Authorization: Bearer header of push deliveries to an authenticated push
// subscription: RS256 only; iss https://accounts.google.com or
// accounts.google.com (checked before any key is fetched); the signature
// with Google's keys (JWKS, cached per Cache-Control and refreshed on an
// unknown kid at most once every 30 seconds, never through a redirect); aud
// equal to the configured audience; exp and iat with a clock skew allowance
// (30 s by default) and exp − iat at most MaxTokenLifetime; a sub of the
// shape of an id (procurement.ValidID; Google's is numeric); the service
// account's email (WithPushServiceAccount), compared exactly after ASCII
// lower-casing, with email_verified true; and, as for sign-up tokens,
// strict base64url, no crit header and numeric dates.
//
// The service account is required: anyone can have Google sign a token for
// your endpoint's audience with their own service account, so the audience
// alone proves nothing. WithAnyPushServiceAccount lifts the requirement,
// knowingly.
//
// Failures are *TokenError values matching the ErrToken* reasons with
// errors.Is. A PushVerifier is safe for concurrent use.
type PushVerifier struct {
	check jwtCheck
	email string // required email, ASCII lower case; "" = any
}

// PushOption configures a PushVerifier.
type PushOption func(*pushConfig)

type pushConfig struct {
	jwksURL string
	email   string
	any     bool // WithAnyPushServiceAccount
	client  *http.Client
	now     func() time.Time
	leeway  time.Duration
	logger  *slog.Logger
}

// WithPushJWKSURL replaces the JWK Set URL the keys are fetched from.
//
// FOR TESTS ONLY: point it at the emulator (marketplacetest.Server.PushJWKSURL).
// Production code must NOT set it: the default, DefaultPushJWKSURL, is
// where Google publishes its keys, and any other URL trusts whoever serves
// it. It must be https, or http to a loopback host.
func WithPushJWKSURL(url string) PushOption {
	return func(c *pushConfig) { c.jwksURL = url }
}

// WithPushServiceAccount requires the token's email to be this service
// account (the one configured on the push subscription) and
// email_verified to be true.
func WithPushServiceAccount(email string) PushOption {
	return func(c *pushConfig) { c.email = email }
}

// WithAnyPushServiceAccount accepts a Google-signed token for the audience
// whatever service account it was issued to, instead of the one
// WithPushServiceAccount names. Anyone with a Google Cloud project can then
// push messages to your endpoint. The processor re-reads every resource, so
// such a message cannot approve or change anything, but it can fire the
// informational callbacks of an active entitlement (OnEntitlementRenewed,
// OnEntitlementOfferEnded, OnEntitlementCancelling) with fields of its
// choosing, and spend your concurrency and API quota. For tests and for a
// network path no one else can reach.
func WithAnyPushServiceAccount() PushOption {
	return func(c *pushConfig) { c.any = true }
}

// WithPushHTTPClient sets the client that fetches the keys. The default is
// a client with a 10 second timeout. The verifier fetches with a copy of
// client that refuses redirects; client is not modified.
func WithPushHTTPClient(client *http.Client) PushOption {
	return func(c *pushConfig) { c.client = client }
}

// WithPushClock sets the source of the current time for exp and iat checks
// and the key cache; the default is time.Now.
func WithPushClock(now func() time.Time) PushOption {
	return func(c *pushConfig) { c.now = now }
}

// WithPushLeeway sets the clock skew allowed on exp and iat, between 0 and
// 5 minutes; the default is 30 seconds.
func WithPushLeeway(d time.Duration) PushOption {
	return func(c *pushConfig) { c.leeway = d }
}

// WithPushLogger sets the logger for key fetches. The default is
// slog.Default() when the verifier is made; pass
// slog.New(slog.DiscardHandler) to discard.
func WithPushLogger(l *slog.Logger) PushOption {
	return func(c *pushConfig) { c.logger = l }
}

// NewPushVerifier returns a verifier accepting tokens whose aud is
// audience: the audience set on the push subscription's OIDC token
// (by default Pub/Sub uses the push endpoint URL).
func NewPushVerifier(audience string, opts ...PushOption) (*PushVerifier, error) {
	cfg := pushConfig{jwksURL: DefaultPushJWKSURL, leeway: defaultTokenLeeway}
	for _, o := range opts {
		o(&cfg)
	}
	if strings.TrimSpace(audience) == "" {
		return nil, errors.New("marketplace: NewPushVerifier: empty audience")
	}
	if err := checkKeyURL(cfg.jwksURL); err != nil {
		return nil, fmt.Errorf("marketplace: NewPushVerifier: %w", err)
	}
	if err := checkLeeway(cfg.leeway); err != nil {
		return nil, fmt.Errorf("marketplace: NewPushVerifier: %w", err)
	}
	switch {
	case cfg.email != "" && !strings.Contains(cfg.email, "@"):
		return nil, fmt.Errorf("marketplace: NewPushVerifier: service account %q is not an email address", cfg.email)
	case cfg.email == "" && !cfg.any:
		return nil, errors.New("marketplace: NewPushVerifier: no service account: set WithPushServiceAccount to the one " +
			"your push subscription's OIDC token is issued for (WithAnyPushServiceAccount accepts any, which lets anyone push to you)")
	}
	if cfg.client == nil {
		cfg.client = newKeyHTTPClient()
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	return &PushVerifier{
		check: jwtCheck{
			kind:      "push",
			issuers:   []string{pushIssuerURL, pushIssuerHost},
			audiences: []string{audience},
			leeway:    cfg.leeway,
			now:       cfg.now,
			keys:      newKeyCache("push", cfg.jwksURL, formatJWKS, cfg.client, cfg.now, cfg.logger),
		},
		email: asciiLower(cfg.email),
	}, nil
}

// pushTokenClaims is the payload of a Google OIDC token.
type pushTokenClaims struct {
	jwt.RegisteredClaims
	Email         string      `json:"email"`
	EmailVerified lenientBool `json:"email_verified"`
}

// VerifyPushRequest verifies the Authorization: Bearer token of a push
// request. It reads only the header, never the body. A request without the
// header fails with ErrTokenMissing; one with another scheme, or with
// several Authorization headers, with ErrTokenMalformed.
func (v *PushVerifier) VerifyPushRequest(ctx context.Context, r *http.Request) (PushClaims, error) {
	values := r.Header.Values("Authorization")
	switch len(values) {
	case 0:
		return PushClaims{}, v.check.tokenErr(ErrTokenMissing, errors.New("no Authorization header"))
	case 1:
	default:
		return PushClaims{}, v.check.tokenErr(ErrTokenMalformed, fmt.Errorf("%d Authorization headers", len(values)))
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return PushClaims{}, v.check.tokenErr(ErrTokenMalformed, errors.New("the Authorization header is not a Bearer token"))
	}
	return v.VerifyPushToken(ctx, strings.TrimSpace(token))
}

// VerifyPushToken verifies a push OIDC token given directly. Every error is
// a *TokenError; only ErrKeysUnavailable is worth retrying.
func (v *PushVerifier) VerifyPushToken(ctx context.Context, token string) (PushClaims, error) {
	var c pushTokenClaims
	if err := v.check.verify(ctx, token, &c); err != nil {
		return PushClaims{}, err
	}
	if v.email != "" {
		// Exact comparison after ASCII lower-casing only: EqualFold and
		// ToLower fold Unicode, so "ſ" (U+017F) would match "s" and the
		// Kelvin sign "K" (U+212A) would match "k".
		if asciiLower(c.Email) != v.email {
			return PushClaims{}, v.check.tokenErr(ErrTokenEmail, fmt.Errorf("email %q", truncate(c.Email, 128)))
		}
		if !c.EmailVerified {
			return PushClaims{}, v.check.tokenErr(ErrTokenEmailUnverified, nil)
		}
	}
	out := PushClaims{
		Email:         c.Email,
		EmailVerified: bool(c.EmailVerified),
		Subject:       c.Subject,
		Audience:      matchedAudience(c.Audience, v.check.audiences),
		Issuer:        c.Issuer,
	}
	if c.IssuedAt != nil {
		out.IssuedAt = c.IssuedAt.Time
	}
	if c.ExpiresAt != nil {
		out.ExpiresAt = c.ExpiresAt.Time
	}
	return out, nil
}

// asciiLower lower-cases the ASCII letters of s and nothing else.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// lenientBool accepts true/false and the strings "true"/"false", which some
// Google tokens have used for email_verified.
type lenientBool bool

func (b *lenientBool) UnmarshalJSON(data []byte) error {
	var v bool
	if err := json.Unmarshal(data, &v); err == nil {
		*b = lenientBool(v)
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("want a boolean: %w", err)
	}
	switch s {
	case "true":
		*b = true
	case "false":
		*b = false
	default:
		return fmt.Errorf("want a boolean, got %q", truncate(s, 16))
	}
	return nil
}
