package marketplacetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// PushIssuer is the iss claim of the OIDC tokens Pub/Sub attaches to push
// deliveries.
const PushIssuer = "https://accounts.google.com"

// PushTokenLifetime is exp − iat of a push token.
const PushTokenLifetime = time.Hour

// DefaultPushServiceAccount is the email in push tokens: the service
// account the push subscription authenticates as.
const DefaultPushServiceAccount = "marketplace-push@vendor-project.iam.gserviceaccount.com"

// DefaultPushSubscription is the subscription field of push envelopes when
// PushParams.Subscription is empty.
const DefaultPushSubscription = "projects/vendor-project/subscriptions/marketplace-push"

// pushJWKSPath mirrors Google's https://www.googleapis.com/oauth2/v3/certs.
const pushJWKSPath = "/oauth2/v3/certs"

// pushUserAgent is the User-Agent of Google's push requests.
const pushUserAgent = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"

// PushAttackTokens lists every BadToken kind that applies to push
// tokens, for table-driven attack suites.
var PushAttackTokens = []BadToken{
	BadTokenAlgNone, BadTokenHS256PublicKey, BadTokenWrongIssuer, BadTokenWrongAudience,
	BadTokenExpired, BadTokenIssuedInFuture, BadTokenEmptySubject, BadTokenUnknownKeyID,
	BadTokenForeignKey, BadTokenTamperedPayload, BadTokenTruncated, BadTokenOversize,
	BadTokenWrongEmail, BadTokenEmailNotVerified, BadTokenCritHeader, BadTokenSignatureNewline,
	BadTokenSignatureLowBits, BadTokenLongLifetime, BadTokenStringExpiry, BadTokenSubjectPath,
	BadTokenUnicodeEmail,
}

// PushTokenParams describes a push OIDC token for MintPushToken. Zero
// fields get the values a genuine token has, except Audience, which is used
// as given.
type PushTokenParams struct {
	Audience  string    // aud: the audience configured on the push subscription
	Email     string    // "" = PushServiceAccount()
	Subject   string    // sub (and azp); "" = the service account's numeric id
	Issuer    string    // "" = PushIssuer
	IssuedAt  time.Time // zero = the emulator clock's now
	ExpiresAt time.Time // zero = IssuedAt + PushTokenLifetime
	// EmailVerified is the email_verified claim; nil = true.
	EmailVerified *bool
	KeyID         string   // "" = the id of the key that signs
	Alg           TokenAlg // "" = AlgRS256
	// ForeignKey signs with a key the JWKS endpoint does not serve.
	ForeignKey bool
	// EmptySubject sends "sub":"" (Subject "" means the default).
	EmptySubject bool
	Extra        map[string]any // added last, override the claims above
	Omit         []string       // claims to leave out, e.g. "exp"
	// Header fields are added to the JOSE header (alg and kid excepted),
	// e.g. crit.
	Header map[string]any
}

// PushParams describes one push delivery for PushWith.
type PushParams struct {
	Audience     string            // aud of the minted token
	Data         []byte            // message data (sent base64-encoded)
	Attributes   map[string]string // message attributes
	MessageID    string            // "" = a fresh numeric id
	PublishTime  time.Time         // zero = the emulator clock's now
	Subscription string            // "" = DefaultPushSubscription
	// Token, if set, is sent verbatim instead of a minted token.
	Token string
	// NoToken sends no Authorization header at all.
	NoToken bool
	// Client sends the request; nil = http.DefaultClient.
	Client *http.Client
}

// pushIssuer holds the keys that sign Google-style OIDC tokens for Pub/Sub
// push deliveries and serves their JWKS.
type pushIssuer struct {
	now     func() time.Time
	baseURL string // set by NewServer once the listener is up
	ring    *keyRing
	email   string
	msgSeq  atomic.Int64
	// redirect sends the JWKS endpoint to the attacker's copy
	// (RedirectKeysToAttacker).
	redirect atomic.Bool
}

func newPushIssuer(now func() time.Time) (*pushIssuer, error) {
	return &pushIssuer{
		now:   now,
		ring:  &keyRing{now: now, commonName: "accounts.google.com"},
		email: DefaultPushServiceAccount,
	}, nil
}

func (i *pushIssuer) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+pushJWKSPath, redirecting(&i.redirect, func() string { return i.baseURL + attackerPushJWKSPath },
		func(w http.ResponseWriter, r *http.Request) {
			keys, err := i.ring.published()
			serveJWKS(w, keys, err)
		}))
	mux.HandleFunc("GET "+attackerPushJWKSPath, func(w http.ResponseWriter, r *http.Request) {
		k, err := i.ring.foreignKey()
		serveJWKS(w, []*signingKey{k}, err)
	})
}

// numericID is a stable 21-digit id, the shape of a service account's
// unique id, derived from s.
func numericID(s string) string {
	sum := sha256.Sum256([]byte(s))
	return fmt.Sprintf("1%020d", binary.BigEndian.Uint64(sum[:8]))
}

func (i *pushIssuer) mint(p PushTokenParams) (string, error) {
	key, err := i.ring.current()
	if err != nil {
		return "", err
	}
	signer := key
	if p.ForeignKey {
		if signer, err = i.ring.foreignKey(); err != nil {
			return "", err
		}
	}
	iat := p.IssuedAt
	if iat.IsZero() {
		iat = i.now()
	}
	exp := p.ExpiresAt
	if exp.IsZero() {
		exp = iat.Add(PushTokenLifetime)
	}
	iss := p.Issuer
	if iss == "" {
		iss = PushIssuer
	}
	email := p.Email
	if email == "" {
		email = i.email
	}
	sub := p.Subject
	if sub == "" {
		sub = numericID("service_account:" + i.email)
	}
	if p.EmptySubject {
		sub = ""
	}
	verified := true
	if p.EmailVerified != nil {
		verified = *p.EmailVerified
	}
	claims := jwt.MapClaims{
		"iss":            iss,
		"aud":            p.Audience,
		"azp":            sub,
		"sub":            sub,
		"email":          email,
		"email_verified": verified,
		"iat":            iat.Unix(),
		"exp":            exp.Unix(),
	}
	applyClaimEdits(claims, p.Extra, p.Omit)
	kid := p.KeyID
	if kid == "" {
		kid = signer.kid
	}
	return signJWT(p.Alg, signer, key.pubPEM, kid, p.Header, claims)
}

func (i *pushIssuer) bad(kind BadToken, audience string) (string, error) {
	p := PushTokenParams{Audience: audience}
	now := i.now()
	switch kind {
	case BadTokenAlgNone:
		p.Alg = AlgNone
	case BadTokenHS256PublicKey:
		p.Alg = AlgHS256PublicKey
	case BadTokenWrongIssuer:
		p.Issuer = "https://accounts.example.com"
	case BadTokenWrongAudience:
		p.Audience = badTokenAudience
	case BadTokenExpired:
		p.IssuedAt = now.Add(-time.Hour - PushTokenLifetime)
		p.ExpiresAt = now.Add(-time.Hour)
	case BadTokenIssuedInFuture:
		p.IssuedAt = now.Add(time.Hour)
	case BadTokenEmptySubject:
		p.EmptySubject = true
	case BadTokenUnknownKeyID:
		p.ForeignKey = true
		p.KeyID = "0000000000000000000000000000000000000000"
	case BadTokenForeignKey:
		key, err := i.ring.current()
		if err != nil {
			return "", err
		}
		p.ForeignKey, p.KeyID = true, key.kid
	case BadTokenTamperedPayload:
		tok, err := i.mint(p)
		if err != nil {
			return "", err
		}
		return tamperPayload(tok)
	case BadTokenTruncated:
		tok, err := i.mint(p)
		if err != nil {
			return "", err
		}
		return truncateSignature(tok), nil
	case BadTokenOversize:
		p.Extra = map[string]any{"padding": strings.Repeat("A", OversizeTokenLen)}
	case BadTokenWrongEmail:
		p.Email = "someone-else@attacker-project.iam.gserviceaccount.com"
	case BadTokenEmailNotVerified:
		f := false
		p.EmailVerified = &f
	case BadTokenCritHeader:
		p.Header = critHeader()
	case BadTokenSignatureNewline, BadTokenSignatureLowBits:
		tok, err := i.mint(p)
		if err != nil {
			return "", err
		}
		return respell(kind, tok)
	case BadTokenLongLifetime:
		p.ExpiresAt = longExpiry(now)
	case BadTokenStringExpiry:
		p.Extra = stringExpiry(now.Add(PushTokenLifetime))
	case BadTokenSubjectPath:
		p.Subject = AttackSubjectPath
	case BadTokenUnicodeEmail:
		p.Email = unicodeLookalike(i.email)
	default:
		return "", fmt.Errorf("marketplacetest: bad token kind %q does not apply to push tokens", kind)
	}
	return i.mint(p)
}

// PushJWKSURL serves the push token signing keys as a JWK Set, like
// Google's https://www.googleapis.com/oauth2/v3/certs.
func (s *Server) PushJWKSURL() string { return s.push.baseURL + pushJWKSPath }

// PushServiceAccount is the email claim of push tokens.
func (s *Server) PushServiceAccount() string { return s.push.email }

// PushToken mints the OIDC token Pub/Sub sends with a push delivery to an
// endpoint configured with audience: RS256 with a kid, iss PushIssuer, aud,
// email PushServiceAccount(), email_verified true, sub, iat now (emulator
// clock), exp iat+1h. It panics if signing fails, which only a broken
// crypto/rand can cause.
func (s *Server) PushToken(audience string) string {
	tok, err := s.push.mint(PushTokenParams{Audience: audience})
	if err != nil {
		panic(err)
	}
	return tok
}

// MintPushToken mints a push token from explicit parameters.
func (s *Server) MintPushToken(p PushTokenParams) (string, error) { return s.push.mint(p) }

// BadPushToken mints a push token for audience that is wrong in the one way
// kind names (see PushAttackTokens).
func (s *Server) BadPushToken(kind BadToken, audience string) (string, error) {
	return s.push.bad(kind, audience)
}

// Push delivers one message to url the way a Pub/Sub push subscription
// does: a POST of the push envelope with a bearer token minted for
// audience. The caller closes the response body.
func (s *Server) Push(ctx context.Context, url, audience string, data []byte, attrs map[string]string) (*http.Response, error) {
	return s.PushWith(ctx, url, PushParams{Audience: audience, Data: data, Attributes: attrs})
}

// pushEnvelope is the body of a push request. Pub/Sub sends messageId and
// publishTime in both camelCase and snake_case; so does the emulator.
type pushEnvelope struct {
	Message struct {
		Attributes     map[string]string `json:"attributes,omitempty"`
		Data           string            `json:"data"`
		MessageID      string            `json:"messageId"`
		MessageIDSnake string            `json:"message_id"`
		PublishTime    string            `json:"publishTime"`
		PublishSnake   string            `json:"publish_time"`
	} `json:"message"`
	Subscription string `json:"subscription"`
}

// PushWith delivers one message to url with full control over the token
// and envelope. The caller closes the response body.
func (s *Server) PushWith(ctx context.Context, url string, p PushParams) (*http.Response, error) {
	var env pushEnvelope
	env.Message.Attributes = p.Attributes
	env.Message.Data = base64.StdEncoding.EncodeToString(p.Data)
	id := p.MessageID
	if id == "" {
		id = strconv.FormatInt(4000000000000000+s.push.msgSeq.Add(1), 10)
	}
	env.Message.MessageID, env.Message.MessageIDSnake = id, id
	at := p.PublishTime
	if at.IsZero() {
		at = s.clock.Now()
	}
	ts := at.UTC().Format(time.RFC3339Nano)
	env.Message.PublishTime, env.Message.PublishSnake = ts, ts
	env.Subscription = p.Subscription
	if env.Subscription == "" {
		env.Subscription = DefaultPushSubscription
	}
	body, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("marketplacetest: push: encode envelope: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("marketplacetest: push: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", pushUserAgent)
	if !p.NoToken {
		tok := p.Token
		if tok == "" {
			if tok, err = s.push.mint(PushTokenParams{Audience: p.Audience}); err != nil {
				return nil, err
			}
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	client := p.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("marketplacetest: push to %s: %w", url, err)
	}
	return resp, nil
}

// RotatePushKey makes a new push signing key; the JWKS serves the new and
// the previous key.
func (s *Server) RotatePushKey() error {
	_, err := s.push.ring.rotate()
	return err
}
