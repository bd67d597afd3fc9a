package marketplace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
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
// that carries the sign-up JWT to the partner's sign-up URL.
const SignupTokenField = "x-gcp-marketplace-token"

// maxSignupBody bounds the sign-up POST body: the form holds one ~1 KiB token.
const maxSignupBody = 64 << 10

// SignupClaims are the verified claims of a sign-up JWT.
type SignupClaims struct {
	// AccountID is sub: the Procurement account id to approve
	// (procurement.Client.ApproveAccountSignup) and link to the user.
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
//     JSON numbers, with a clock skew allowance (30 s by default), and
//     exp − iat at most MaxTokenLifetime;
//   - sub a Procurement account id (procurement.ValidID).
//
// Because of the refresh rate limit, a kid first seen less than 30 seconds
// after the last fetch is refused with ErrTokenUnknownKey until the next
// refresh is allowed. Google publishes a new key before it signs with it,
// so genuine tokens do not meet this.
//
// Failures are *TokenError values matching the ErrToken* reasons with
// errors.Is. A SignupVerifier is safe for concurrent use; create one per
// process and share it, so the key cache is shared too.
type SignupVerifier struct {
	check  jwtCheck
	logger *slog.Logger
}

// SignupOption configures a SignupVerifier.
type SignupOption func(*signupConfig)

type signupConfig struct {
	certsURL string
	client   *http.Client
	now      func() time.Time
	leeway   time.Duration
	logger   *slog.Logger
}

// WithSignupCertsURL replaces the URL the signing keys are fetched from
// (a JSON map {kid: PEM certificate}, the format SignupIssuer serves).
//
// FOR TESTS ONLY: point it at the emulator (marketplacetest.Server.CertsURL).
// Production code must NOT set it: the default is the only URL Google's
// keys are published at, and any other URL trusts whoever serves it to
// sign sign-ups for any account. It must be https, or http to a loopback
// host. The iss claim is still required to equal SignupIssuer.
func WithSignupCertsURL(url string) SignupOption {
	return func(c *signupConfig) { c.certsURL = url }
}

// WithSignupHTTPClient sets the client that fetches the signing keys.
// The default is a client with a 10 second timeout. The verifier fetches
// with a copy of client that refuses redirects; client is not modified.
func WithSignupHTTPClient(client *http.Client) SignupOption {
	return func(c *signupConfig) { c.client = client }
}

// WithSignupClock sets the source of the current time for exp and iat
// checks and for the key cache's expiry and refresh rate limit. Tests pass
// the emulator's clock (s.Clock().Now); the default is time.Now.
func WithSignupClock(now func() time.Time) SignupOption {
	return func(c *signupConfig) { c.now = now }
}

// WithSignupLeeway sets the clock skew allowed on exp and iat, between 0
// and 5 minutes; the default is 30 seconds.
func WithSignupLeeway(d time.Duration) SignupOption {
	return func(c *signupConfig) { c.leeway = d }
}

// WithSignupLogger sets the logger for key fetches and, in SignupHandler,
// refused tokens. The default is slog.Default() when the verifier is made;
// pass slog.New(slog.DiscardHandler) to discard.
func WithSignupLogger(l *slog.Logger) SignupOption {
	return func(c *signupConfig) { c.logger = l }
}

// NewSignupVerifier returns a verifier accepting tokens whose aud is one of
// audiences: the product domain or service name configured for the listing
// in Producer Portal (often "<service>.endpoints.<project>.cloud.goog").
func NewSignupVerifier(audiences []string, opts ...SignupOption) (*SignupVerifier, error) {
	cfg := signupConfig{certsURL: SignupIssuer, leeway: defaultTokenLeeway}
	for _, o := range opts {
		o(&cfg)
	}
	if len(audiences) == 0 {
		return nil, errors.New("marketplace: NewSignupVerifier: no audience; pass the product's domain or service name")
	}
	for _, a := range audiences {
		if strings.TrimSpace(a) == "" {
			return nil, errors.New("marketplace: NewSignupVerifier: empty audience")
		}
	}
	if err := checkKeyURL(cfg.certsURL); err != nil {
		return nil, fmt.Errorf("marketplace: NewSignupVerifier: %w", err)
	}
	if err := checkLeeway(cfg.leeway); err != nil {
		return nil, fmt.Errorf("marketplace: NewSignupVerifier: %w", err)
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
	return &SignupVerifier{
		check: jwtCheck{
			kind:      "sign-up",
			issuers:   []string{SignupIssuer},
			audiences: append([]string(nil), audiences...),
			leeway:    cfg.leeway,
			now:       cfg.now,
			keys:      newKeyCache("sign-up", cfg.certsURL, formatX509, cfg.client, cfg.now, cfg.logger),
		},
		logger: cfg.logger,
	}, nil
}

// signupTokenClaims is the payload of a sign-up JWT. google is a nested
// object (not flat "google.user_identity" keys).
type signupTokenClaims struct {
	jwt.RegisteredClaims
	Google struct {
		UserIdentity lenientString   `json:"user_identity"`
		Roles        lenientStrings  `json:"roles"`
		Orders       json.RawMessage `json:"orders"`
	} `json:"google"`
	Orders json.RawMessage `json:"orders"`
}

// VerifySignupToken verifies a sign-up JWT and returns its claims. Every
// error is a *TokenError; see SignupVerifier for the checks. Only
// ErrKeysUnavailable is worth retrying. ctx bounds a key fetch, if one is
// needed.
func (v *SignupVerifier) VerifySignupToken(ctx context.Context, token string) (SignupClaims, error) {
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
	if c.IssuedAt != nil {
		out.IssuedAt = c.IssuedAt.Time
	}
	if c.ExpiresAt != nil {
		out.ExpiresAt = c.ExpiresAt.Time
	}
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

// SignupHandler serves the partner's sign-up URL. Google sends the buyer's
// browser there with a POST whose form field x-gcp-marketplace-token holds
// the sign-up JWT; the handler also accepts the token in a header of that
// name (some proxies forward it so), but never in the URL query, where it
// would end up in access logs.
//
// It verifies the token and calls next with the claims, which next uses to
// show the sign-up form or link the account (AccountID) to the signed-in
// user (UserIdentity), then approve it. Otherwise it answers, with a short
// plain-text body:
//
//   - 405 for methods other than POST (Google always POSTs);
//   - 413 if the body exceeds 64 KiB;
//   - 400 if the token is missing, malformed or too large;
//   - 503 if Google's keys cannot be fetched (ErrKeysUnavailable; the
//     browser can retry);
//   - 401 for every other refusal (signature, issuer, audience, expiry...).
//
// Refusals are logged at Warn on the verifier's logger with the reason and
// the error, never the token. SignupHandler panics if v or next is nil.
func SignupHandler(v *SignupVerifier, next func(w http.ResponseWriter, r *http.Request, c SignupClaims)) http.Handler {
	if v == nil || next == nil {
		panic("marketplace: SignupHandler: nil verifier or next")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			signupRefuse(w, http.StatusMethodNotAllowed, "sign-up requires POST")
			return
		}
		token, err := signupTokenFromRequest(w, r)
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				v.logRefusal(r, "body too large", err)
				signupRefuse(w, http.StatusRequestEntityTooLarge, "sign-up request body too large")
				return
			}
			v.logRefusal(r, string(ErrTokenMalformed), err)
			signupRefuse(w, http.StatusBadRequest, "malformed sign-up request")
			return
		}
		claims, err := v.VerifySignupToken(r.Context(), token)
		if err != nil {
			var te *TokenError
			reason := ErrTokenMalformed
			if errors.As(err, &te) {
				reason = te.Reason
			}
			v.logRefusal(r, string(reason), err)
			switch reason {
			case ErrTokenMissing, ErrTokenMalformed, ErrTokenTooLarge:
				signupRefuse(w, http.StatusBadRequest, "sign-up token refused: "+string(reason))
			case ErrKeysUnavailable:
				w.Header().Set("Retry-After", "30")
				signupRefuse(w, http.StatusServiceUnavailable, "sign-up temporarily unavailable, try again shortly")
			default:
				signupRefuse(w, http.StatusUnauthorized, "sign-up token refused: "+string(reason))
			}
			return
		}
		next(w, r, claims)
	})
}

// signupTokenFromRequest returns the token from the POST form, else the
// header; "" if neither has it.
func signupTokenFromRequest(w http.ResponseWriter, r *http.Request) (string, error) {
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxSignupBody)
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mediaType, _, err := mime.ParseMediaType(ct)
		if err != nil {
			return "", fmt.Errorf("content type: %w", err)
		}
		switch mediaType {
		case "application/x-www-form-urlencoded":
			if err := r.ParseForm(); err != nil {
				return "", fmt.Errorf("parse form: %w", err)
			}
		case "multipart/form-data":
			if err := r.ParseMultipartForm(maxSignupBody); err != nil {
				return "", fmt.Errorf("parse multipart form: %w", err)
			}
		}
	}
	if tok := strings.TrimSpace(r.PostForm.Get(SignupTokenField)); tok != "" {
		return tok, nil
	}
	return strings.TrimSpace(r.Header.Get(SignupTokenField)), nil
}

func (v *SignupVerifier) logRefusal(r *http.Request, reason string, err error) {
	v.logger.LogAttrs(r.Context(), slog.LevelWarn, "marketplace: sign-up refused",
		slog.String("reason", reason),
		slog.String("error", err.Error()),
		slog.String("remote_addr", r.RemoteAddr))
}

func signupRefuse(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, msg, code)
}
