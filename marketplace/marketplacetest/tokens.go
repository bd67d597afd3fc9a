package marketplacetest

// This file mints the two kinds of token the emulator signs: the sign-up
// JWT Marketplace posts to the partner's sign-up URL, and the OIDC token
// Pub/Sub attaches to a push delivery. One issuer type, one TokenParams and
// one attack switch (attacks.go) serve both; tokenKind holds what differs.

import (
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// SignupIssuer is the iss claim of every Marketplace sign-up JWT. It is also
// the URL of Google's certificate map for the signing keys; the emulator
// serves the same map at CertsURL, and verifiers must compare iss with this
// constant rather than fetch keys from whatever iss says.
const SignupIssuer = "https://www.googleapis.com/robot/v1/metadata/x509/cloud-commerce-partner@system.gserviceaccount.com"

// SignupTokenLifetime is exp − iat of a sign-up JWT.
const SignupTokenLifetime = 5 * time.Minute

const (
	signupAccount  = "cloud-commerce-partner@system.gserviceaccount.com"
	signupCertPath = "/robot/v1/metadata/x509/" + signupAccount
	signupJWKSPath = "/robot/v1/metadata/jwk/" + signupAccount
	// attackerCertPath serves the foreign key's certificate: the key URL an
	// attacker would put in iss.
	attackerCertPath = "/attacker/robot/v1/metadata/x509/" + signupAccount
)

// TokenAlg is how a minted token is signed.
type TokenAlg string

const (
	// AlgRS256 is what Google uses: RSA PKCS#1 v1.5 with SHA-256.
	AlgRS256 TokenAlg = "RS256"
	// AlgNone produces an unsigned token ("alg":"none", empty signature).
	AlgNone TokenAlg = "none"
	// AlgHS256PublicKey signs with HMAC-SHA256 keyed with the public key
	// bytes as served (the PEM certificate for sign-up tokens, the PEM
	// public key for push tokens): the algorithm-confusion attack that a
	// verifier falls for when it lets the token choose the algorithm.
	AlgHS256PublicKey TokenAlg = "HS256-with-public-key"
)

// TokenParams describes a token for SignupToken or PushToken. Zero fields
// get the values a genuine token has, except Audience, which is used as
// given.
type TokenParams struct {
	// Subject is sub. Sign-up tokens: the Procurement account ID, used as
	// given (an empty Subject yields "sub":""). Push tokens: sub and azp;
	// "" = the push service account's numeric id.
	Subject string
	// Audience is aud: for sign-up tokens the partner's domain or service
	// name, for push tokens the audience configured on the push
	// subscription.
	Audience  string
	Issuer    string    // iss; "" = SignupIssuer or PushIssuer
	IssuedAt  time.Time // iat; zero = the emulator clock's now
	ExpiresAt time.Time // exp; zero = IssuedAt + SignupTokenLifetime or PushTokenLifetime
	// KeyID is the kid header; "" = the id of the key that signs.
	KeyID string
	// Alg is the signing algorithm; "" = AlgRS256.
	Alg TokenAlg
	// ForeignKey signs with a key that the key endpoints do not serve (it
	// is served at AttackerCertsURL instead, and by the redirected
	// endpoints of RedirectKeysToAttacker).
	ForeignKey bool
	// EmptySubject sends "sub":"" (for push tokens an empty Subject means
	// the default).
	EmptySubject bool
	// Extra claims are added last and override the ones above.
	Extra map[string]any
	// Omit lists claims to leave out entirely, e.g. "exp".
	Omit []string
	// Header fields are added to the JOSE header (alg and kid excepted),
	// e.g. crit.
	Header map[string]any
	// Bad makes the token wrong in the one way it names, on top of the
	// fields above; "" = a genuine token. SignupAttackTokens and
	// PushAttackTokens list the kinds that apply to each kind of token.
	Bad BadToken

	// Google (sign-up tokens only) is the nested google claim; nil =
	// {"roles": ["account_admin"], "user_identity": <a stable id derived
	// from Subject>}.
	Google map[string]any

	// Email (push tokens only) is the email claim; "" =
	// PushServiceAccount().
	Email string
	// EmailVerified (push tokens only) is the email_verified claim; nil =
	// true.
	EmailVerified *bool
}

// tokenKind is what tells the two kinds of token apart.
type tokenKind struct {
	name        string // in error messages: "sign-up", "push"
	issuer      string // the default iss
	lifetime    time.Duration
	wrongIssuer string     // the iss of BadTokenWrongIssuer: another Google issuer
	attacks     []BadToken // the BadToken kinds that apply, in the order the lists give them
	// hmacKey is the served form of the public key that AlgHS256PublicKey
	// tokens are keyed with.
	hmacKey func(*signingKey) []byte
	// claims are the genuine claims for p, issued at iat, expiring at exp.
	claims func(i *issuer, p TokenParams, iat, exp time.Time) jwt.MapClaims
	// attackerPath serves the foreign key (BadTokenAttackerIssuer).
	attackerPath string
	// edit, if set, applies the attacks of this kind only (attack handles
	// the shared ones).
	edit func(kind BadToken, p *TokenParams)
}

var signupTokens = &tokenKind{
	name:        "sign-up",
	issuer:      SignupIssuer,
	lifetime:    SignupTokenLifetime,
	wrongIssuer: "https://www.googleapis.com/robot/v1/metadata/x509/someone-else@system.gserviceaccount.com",
	attacks: []BadToken{
		BadTokenAlgNone, BadTokenHS256PublicKey, BadTokenWrongIssuer, BadTokenAttackerIssuer,
		BadTokenWrongAudience, BadTokenExpired, BadTokenIssuedInFuture, BadTokenEmptySubject,
		BadTokenUnknownKeyID, BadTokenForeignKey, BadTokenTamperedPayload, BadTokenTruncated,
		BadTokenOversize, BadTokenCritHeader, BadTokenSignatureNewline, BadTokenSignatureLowBits,
		BadTokenLongLifetime, BadTokenStringExpiry, BadTokenSubjectPath,
	},
	hmacKey: func(k *signingKey) []byte { return k.certPEM },
	claims:  signupClaims,

	attackerPath: attackerCertPath,
}

var pushTokens = &tokenKind{
	name:        "push",
	issuer:      PushIssuer,
	lifetime:    PushTokenLifetime,
	wrongIssuer: "https://accounts.example.com",
	attacks: []BadToken{
		BadTokenAlgNone, BadTokenHS256PublicKey, BadTokenWrongIssuer, BadTokenWrongAudience,
		BadTokenExpired, BadTokenIssuedInFuture, BadTokenEmptySubject, BadTokenUnknownKeyID,
		BadTokenForeignKey, BadTokenTamperedPayload, BadTokenTruncated, BadTokenOversize,
		BadTokenWrongEmail, BadTokenEmailNotVerified, BadTokenCritHeader, BadTokenSignatureNewline,
		BadTokenSignatureLowBits, BadTokenLongLifetime, BadTokenStringExpiry, BadTokenSubjectPath,
		BadTokenUnicodeEmail,
	},
	hmacKey: func(k *signingKey) []byte { return k.pubPEM },
	claims:  pushClaims,
}

// issuer holds the RSA keys that sign one kind of token. Its key endpoints
// are served by signupRoutes (tokens.go) or pushRoutes (push.go).
type issuer struct {
	kind    *tokenKind
	now     func() time.Time
	baseURL string // set by New once the listener is up
	ring    *keyRing
	email   string // push tokens: the service account they name
	// redirect sends the key endpoints to the attacker's copy
	// (RedirectKeysToAttacker).
	redirect atomic.Bool
}

func newIssuer(kind *tokenKind, now func() time.Time, commonName, email string) *issuer {
	return &issuer{kind: kind, now: now, ring: &keyRing{now: now, commonName: commonName}, email: email}
}

// mint signs the token p describes, after the edits of p.Bad.
func (i *issuer) mint(p TokenParams) (string, error) {
	if err := i.kind.check(p); err != nil {
		return "", err
	}
	var after func(string) (string, error)
	if p.Bad != "" {
		var err error
		if after, err = i.attack(&p); err != nil {
			return "", err
		}
	}
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
		exp = iat.Add(i.kind.lifetime)
	}
	if p.Issuer == "" {
		p.Issuer = i.kind.issuer
	}
	claims := i.kind.claims(i, p, iat, exp)
	applyClaimEdits(claims, p.Extra, p.Omit)
	kid := p.KeyID
	if kid == "" {
		kid = signer.kid
	}
	tok, err := signJWT(p.Alg, signer, i.kind.hmacKey(key), kid, p.Header, claims)
	if err != nil || after == nil {
		return tok, err
	}
	return after(tok)
}

// check refuses fields that belong to the other kind of token.
func (k *tokenKind) check(p TokenParams) error {
	switch {
	case k == signupTokens && (p.Email != "" || p.EmailVerified != nil):
		return errors.New("marketplacetest: Email and EmailVerified apply to push tokens only")
	case k == pushTokens && p.Google != nil:
		return errors.New("marketplacetest: Google applies to sign-up tokens only")
	}
	return nil
}

func signupClaims(_ *issuer, p TokenParams, iat, exp time.Time) jwt.MapClaims {
	google := p.Google
	if google == nil {
		google = map[string]any{
			"roles":         []string{"account_admin"},
			"user_identity": userIdentity(p.Subject),
		}
	}
	sub := p.Subject
	if p.EmptySubject {
		sub = ""
	}
	return jwt.MapClaims{
		"iss":    p.Issuer,
		"iat":    iat.Unix(),
		"exp":    exp.Unix(),
		"aud":    p.Audience,
		"sub":    sub,
		"google": google,
	}
}

func pushClaims(i *issuer, p TokenParams, iat, exp time.Time) jwt.MapClaims {
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
	return jwt.MapClaims{
		"iss":            p.Issuer,
		"aud":            p.Audience,
		"azp":            sub,
		"sub":            sub,
		"email":          email,
		"email_verified": verified,
		"iat":            iat.Unix(),
		"exp":            exp.Unix(),
	}
}

// mustToken is the panic of SignupToken and PushToken.
func mustToken(tok string, err error) string {
	if err != nil {
		panic(err)
	}
	return tok
}

// signJWT signs claims with key the way alg says. kid goes in the header
// unless empty, and so do the fields of header other than alg and kid.
func signJWT(alg TokenAlg, key *signingKey, hmacKey []byte, kid string, header map[string]any, claims jwt.MapClaims) (string, error) {
	var (
		tok    *jwt.Token
		secret any
	)
	switch alg {
	case "", AlgRS256:
		tok, secret = jwt.NewWithClaims(jwt.SigningMethodRS256, claims), key.priv
	case AlgNone:
		tok, secret = jwt.NewWithClaims(jwt.SigningMethodNone, claims), jwt.UnsafeAllowNoneSignatureType
	case AlgHS256PublicKey:
		tok, secret = jwt.NewWithClaims(jwt.SigningMethodHS256, claims), hmacKey
	default:
		return "", fmt.Errorf("marketplacetest: unknown token algorithm %q", alg)
	}
	for k, v := range header {
		if k != "alg" && k != "kid" {
			tok.Header[k] = v
		}
	}
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("marketplacetest: sign %s token: %w", alg, err)
	}
	return s, nil
}

// applyClaimEdits adds extra claims and removes omitted ones.
func applyClaimEdits(claims jwt.MapClaims, extra map[string]any, omit []string) {
	for k, v := range extra {
		claims[k] = v
	}
	for _, k := range omit {
		delete(claims, k)
	}
}

func (i *issuer) signupRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+signupCertPath, redirecting(&i.redirect, i.attackerCertsURL, func(w http.ResponseWriter, r *http.Request) {
		keys, err := i.ring.published()
		serveCertMap(w, keys, err)
	}))
	mux.HandleFunc("GET "+signupJWKSPath, func(w http.ResponseWriter, r *http.Request) {
		keys, err := i.ring.published()
		serveJWKS(w, keys, err)
	})
	mux.HandleFunc("GET "+attackerCertPath, func(w http.ResponseWriter, r *http.Request) {
		k, err := i.ring.foreignKey()
		serveCertMap(w, []*signingKey{k}, err)
	})
}

func (i *issuer) attackerCertsURL() string { return i.baseURL + i.kind.attackerPath }

// userIdentity is a stable obfuscated user id for an account, shaped like
// Google's numeric ids.
func userIdentity(accountID string) string { return numericID("user_identity:" + accountID) }

// CertsURL is the emulator's copy of Google's x509 metadata URL for the
// sign-up signing keys: a JSON object {kid: PEM certificate}.
func (s *Server) CertsURL() string { return s.signup.baseURL + signupCertPath }

// SignupJWKSURL serves the sign-up signing keys as a JWK Set.
func (s *Server) SignupJWKSURL() string { return s.signup.baseURL + signupJWKSPath }

// AttackerCertsURL serves, in the same format as CertsURL, the certificate
// of the key that signs ForeignKey tokens: the URL an attacker puts in iss
// (BadTokenAttackerIssuer). A verifier that fetches keys from iss accepts
// such a token; one that pins iss to SignupIssuer does not.
func (s *Server) AttackerCertsURL() string { return s.signup.baseURL + attackerCertPath }

// SignupToken mints the JWT Marketplace posts to the partner's sign-up URL.
// With only Subject (the account ID) and Audience set it is a genuine
// token: RS256 with a kid, iss SignupIssuer, aud, sub, iat now (emulator
// clock), exp iat+5m and a nested google claim {roles: ["account_admin"],
// user_identity}. The other fields of p, and p.Bad, make it wrong on
// purpose, for tests of how the code under test rejects bad tokens.
//
// SignupToken panics if p asks for what it cannot mint (an unknown Alg, a
// push-only field, a Bad kind that does not apply to sign-up tokens) or if
// signing fails, which only a broken crypto/rand can cause: mistakes of the
// test, not outcomes to handle.
func (s *Server) SignupToken(p TokenParams) string { return mustToken(s.signup.mint(p)) }

// RotateSignupKey makes a new sign-up signing key. Tokens minted afterwards
// carry its kid; the endpoints serve the new and the previous key.
func (s *Server) RotateSignupKey() error {
	_, err := s.signup.ring.rotate()
	return err
}
