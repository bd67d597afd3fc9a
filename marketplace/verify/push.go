package verify

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
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
// (Config.Leeway, 30 s by default) and exp − iat at most MaxTokenLifetime;
// a sub of the shape of an id (procurement.ValidID; Google's is numeric);
// the service account's email (Config.PushServiceAccount), compared exactly
// after ASCII lower-casing, with email_verified true; and, as for sign-up
// tokens, strict base64url, no crit header and numeric dates.
//
// The service account is required: anyone can have Google sign a token for
// your endpoint's audience with their own service account, so the audience
// alone proves nothing. Config.AnyPushServiceAccount lifts the requirement,
// knowingly.
//
// Failures are *TokenError values matching the Err* reasons with
// errors.Is. A PushVerifier is safe for concurrent use.
// marketplace.Processor.PushHandler serves a push subscription with it.
type PushVerifier struct {
	check jwtCheck
	email string // required email, ASCII lower case; "" = any
}

// NewPushVerifier returns a verifier accepting tokens whose aud is
// audience: the audience set on the push subscription's OIDC token
// (by default Pub/Sub uses the push endpoint URL). cfg must name the
// service account (Config.PushServiceAccount), or accept any
// (Config.AnyPushServiceAccount); its Signup* fields are ignored.
func NewPushVerifier(audience string, cfg *Config) (*PushVerifier, error) {
	if strings.TrimSpace(audience) == "" {
		return nil, errors.New("verify: NewPushVerifier: empty audience")
	}
	s, err := resolve(cfg, "NewPushVerifier")
	if err != nil {
		return nil, err
	}
	jwksURL := cmp.Or(s.PushJWKSURL, DefaultPushJWKSURL)
	if err := checkKeyURL(jwksURL); err != nil {
		return nil, fmt.Errorf("verify: NewPushVerifier: %w", err)
	}
	switch {
	case s.PushServiceAccount != "" && !strings.Contains(s.PushServiceAccount, "@"):
		return nil, fmt.Errorf("verify: NewPushVerifier: service account %q is not an email address", s.PushServiceAccount)
	case s.PushServiceAccount == "" && !s.AnyPushServiceAccount:
		return nil, errors.New("verify: NewPushVerifier: no service account: set Config.PushServiceAccount to the one " +
			"your push subscription's OIDC token is issued for (Config.AnyPushServiceAccount accepts any, which lets anyone push to you)")
	}
	return &PushVerifier{
		check: jwtCheck{
			kind:      "push",
			issuers:   []string{pushIssuerURL, pushIssuerHost},
			audiences: []string{audience},
			leeway:    s.leeway,
			now:       s.now,
			keys:      newKeyCache("push", jwksURL, formatJWKS, s.HTTPClient, s.now, s.Logger),
		}.withParser(),
		email: asciiLower(s.PushServiceAccount),
	}, nil
}

// pushTokenClaims is the payload of a Google OIDC token.
type pushTokenClaims struct {
	registeredClaims
	Email         string      `json:"email"`
	EmailVerified lenientBool `json:"email_verified"`
}

// VerifyRequest verifies the Authorization: Bearer token of a push
// request. It reads only the header, never the body. A request without the
// header fails with ErrTokenMissing; one with another scheme, or with
// several Authorization headers, with ErrTokenMalformed.
func (v *PushVerifier) VerifyRequest(ctx context.Context, r *http.Request) (PushClaims, error) {
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
	return v.Verify(ctx, strings.TrimSpace(token))
}

// Verify verifies a push OIDC token given directly (VerifyRequest takes it
// from a request). Every error is
// a *TokenError; only ErrKeysUnavailable is worth retrying.
func (v *PushVerifier) Verify(ctx context.Context, token string) (PushClaims, error) {
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
	// The core has required both.
	out.IssuedAt, out.ExpiresAt = c.IssuedAt.Time, c.ExpiresAt.Time
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
