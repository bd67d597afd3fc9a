package verify

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// SignupIssuer is the iss claim of every Marketplace sign-up JWT. It is also
// the URL of the certificate map ({kid: PEM certificate}) holding the
// signing keys, which is where SignupVerifier fetches them by default.
// The verifier compares iss with this constant before it fetches anything,
// so a token naming another key URL in iss never causes a request.
const SignupIssuer = "https://www.googleapis.com/robot/v1/metadata/x509/cloud-commerce-partner@system.gserviceaccount.com"

// SignupTokenField is the name of the POST form field, and of the header,
// that carries the sign-up JWT to the partner's sign-up URL (package
// signup reads it there).
const SignupTokenField = "x-gcp-marketplace-token"

// SignupClaims are the verified claims of a sign-up JWT.
type SignupClaims struct {
	// AccountID is sub: the Procurement account id to approve and link to
	// the user (marketplace.Processor.CompleteSignup).
	AccountID string
	// UserIdentity is google.user_identity, an obfuscated Google user id.
	// It is sent only at sign-up: store it to recognise the user at SSO
	// login later.
	UserIdentity string
	// Roles is google.roles, the user's roles on the billing account.
	Roles []string
	// Orders is google.orders (or a top-level orders claim) when the
	// listing has multiple orders enabled: the order ids. Its shape is not
	// documented precisely; values that are not a list of strings are
	// ignored rather than failing the token.
	Orders []string
	// Audience is the configured audience the token was issued for.
	Audience string
	// IssuedAt and ExpiresAt are iat and exp.
	IssuedAt, ExpiresAt time.Time
}

// SignupVerifier verifies the x-gcp-marketplace-token JWT that Google posts
// to the partner's sign-up URL when a customer finishes buying:
//
//   - at most MaxTokenSize bytes, checked before parsing;
//   - strict base64url only, so a token has one spelling;
//   - alg RS256 only (so "none" and HS256 keyed with the public key fail),
//     and no crit header;
//   - iss equal to SignupIssuer, checked before any key is fetched;
//   - the signature, with the key named by kid from Google's certificate
//     map, cached per Cache-Control and refreshed on an unknown kid at most
//     once every 30 seconds, never through a redirect;
//   - aud one of the configured audiences;
//   - exp required and not past, iat required and not in the future, both
//     JSON numbers, with a clock skew allowance (Config.Leeway, 30 s by
//     default), and exp − iat at most MaxTokenLifetime;
//   - sub a Procurement account id (procurement.ValidID).
//
// Because of the refresh rate limit, a kid first seen less than 30 seconds
// after the last fetch is refused with ErrTokenUnknownKey until the next
// refresh is allowed. Google publishes a new key before it signs with it,
// so genuine tokens do not meet this.
//
// Failures are *TokenError values matching the Err* reasons with
// errors.Is. A SignupVerifier is safe for concurrent use; create one per
// process and share it, so the key cache is shared too. Package signup
// serves the sign-up URL with it.
type SignupVerifier struct {
	check jwtCheck
}

// NewSignupVerifier returns a verifier accepting tokens whose aud is one of
// audiences: the product domain or service name configured for the listing
// in Producer Portal (often "<service>.endpoints.<project>.cloud.goog").
// cfg may be nil; its Push* fields are ignored.
func NewSignupVerifier(audiences []string, cfg *Config) (*SignupVerifier, error) {
	if len(audiences) == 0 {
		return nil, errors.New("verify: NewSignupVerifier: no audience; pass the product's domain or service name")
	}
	for _, a := range audiences {
		if strings.TrimSpace(a) == "" {
			return nil, errors.New("verify: NewSignupVerifier: empty audience")
		}
	}
	s, err := resolve(cfg, "NewSignupVerifier")
	if err != nil {
		return nil, err
	}
	certsURL := cmp.Or(s.SignupCertsURL, SignupIssuer)
	if err := checkKeyURL(certsURL); err != nil {
		return nil, fmt.Errorf("verify: NewSignupVerifier: %w", err)
	}
	return &SignupVerifier{
		check: jwtCheck{
			kind:      "sign-up",
			issuers:   []string{SignupIssuer},
			audiences: append([]string(nil), audiences...),
			leeway:    s.leeway,
			now:       s.now,
			keys:      newKeyCache("sign-up", certsURL, formatX509, s.HTTPClient, s.now, s.Logger),
		}.withParser(),
	}, nil
}

// Audiences returns the audiences v accepts, in the order given to
// NewSignupVerifier.
func (v *SignupVerifier) Audiences() []string { return slices.Clone(v.check.audiences) }

// signupTokenClaims is the payload of a sign-up JWT. google is a nested
// object (not flat "google.user_identity" keys).
type signupTokenClaims struct {
	registeredClaims
	Google struct {
		UserIdentity lenientString   `json:"user_identity"`
		Roles        lenientStrings  `json:"roles"`
		Orders       json.RawMessage `json:"orders"`
	} `json:"google"`
	Orders json.RawMessage `json:"orders"`
}

// Verify verifies a sign-up JWT and returns its claims. Every
// error is a *TokenError; see SignupVerifier for the checks. Only
// ErrKeysUnavailable is worth retrying. ctx bounds a key fetch, if one is
// needed.
func (v *SignupVerifier) Verify(ctx context.Context, token string) (SignupClaims, error) {
	var c signupTokenClaims
	if err := v.check.verify(ctx, token, &c); err != nil {
		return SignupClaims{}, err
	}
	out := SignupClaims{
		AccountID:    c.Subject,
		UserIdentity: string(c.Google.UserIdentity),
		Roles:        []string(c.Google.Roles),
		Orders:       decodeOrders(c.Google.Orders, c.Orders),
		Audience:     matchedAudience(c.Audience, v.check.audiences),
	}
	// The core has required both.
	out.IssuedAt, out.ExpiresAt = c.IssuedAt.Time, c.ExpiresAt.Time
	return out, nil
}

// matchedAudience is the first of the token's audiences that is configured.
func matchedAudience(tokenAud jwt.ClaimStrings, configured []string) string {
	for _, a := range tokenAud {
		for _, c := range configured {
			if a == c {
				return a
			}
		}
	}
	return ""
}

// decodeOrders reads the first of the candidate claims that is a list of
// strings. The orders claim's location and shape are undocumented, so an
// unexpected shape is ignored rather than refusing a genuine token.
func decodeOrders(candidates ...json.RawMessage) []string {
	for _, raw := range candidates {
		var orders []string
		if len(raw) > 0 && json.Unmarshal(raw, &orders) == nil && len(orders) > 0 {
			return orders
		}
	}
	return nil
}

// lenientString accepts a JSON string or number (user ids are numeric).
type lenientString string

func (s *lenientString) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*s = lenientString(str)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("want a string or number: %w", err)
	}
	*s = lenientString(n.String())
	return nil
}

// lenientStrings accepts a JSON list of strings or a single string.
type lenientStrings []string

func (s *lenientStrings) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = lenientStrings{one}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("want a string or a list of strings: %w", err)
	}
	*s = list
	return nil
}
