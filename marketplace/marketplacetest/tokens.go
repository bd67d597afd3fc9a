package marketplacetest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"sync"
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

// OversizeTokenLen is the minimum length of the BadTokenOversize token:
// far above any real Google token (about 1 KiB) but under net/http's default
// 1 MiB header limit, so the code under test has to enforce its own limit.
const OversizeTokenLen = 256 << 10

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

// TokenParams describes a sign-up JWT for MintSignupToken. Zero fields get
// the values a genuine token has, except Subject and Audience, which are
// used as given (an empty Subject yields "sub":"").
type TokenParams struct {
	Subject   string    // sub: the Procurement account ID
	Audience  string    // aud: the partner's domain or service name
	Issuer    string    // iss; "" = SignupIssuer
	IssuedAt  time.Time // iat; zero = the emulator clock's now
	ExpiresAt time.Time // exp; zero = IssuedAt + SignupTokenLifetime
	// KeyID is the kid header; "" = the id of the key that signs.
	KeyID string
	// Alg is the signing algorithm; "" = AlgRS256.
	Alg TokenAlg
	// ForeignKey signs with a key that the certificate endpoints do not
	// serve (it is served at AttackerCertsURL instead).
	ForeignKey bool
	// Google is the nested google claim; nil = {"roles": ["account_admin"],
	// "user_identity": <a stable id derived from Subject>}.
	Google map[string]any
	// Extra claims are added last and override the ones above.
	Extra map[string]any
	// Omit lists claims to leave out entirely, e.g. "exp".
	Omit []string
	// Header fields are added to the JOSE header (alg and kid excepted),
	// e.g. crit.
	Header map[string]any
}

// BadToken names one way a token can be wrong. Each kind is rejected by a
// correct verifier for one reason only; everything else about the token is
// genuine.
type BadToken string

const (
	BadTokenAlgNone          BadToken = "alg-none"           // unsigned, "alg":"none"
	BadTokenHS256PublicKey   BadToken = "hs256-public-key"   // HMAC keyed with the served public key
	BadTokenWrongIssuer      BadToken = "wrong-issuer"       // genuine key, iss of another Google account
	BadTokenAttackerIssuer   BadToken = "attacker-issuer"    // iss = AttackerCertsURL, signed by the key served there
	BadTokenWrongAudience    BadToken = "wrong-audience"     // aud of another product
	BadTokenExpired          BadToken = "expired"            // exp one hour ago
	BadTokenIssuedInFuture   BadToken = "issued-in-future"   // iat one hour ahead
	BadTokenEmptySubject     BadToken = "empty-subject"      // "sub":""
	BadTokenUnknownKeyID     BadToken = "unknown-kid"        // kid the key endpoints do not list
	BadTokenForeignKey       BadToken = "foreign-key"        // genuine kid, signed by another key
	BadTokenTamperedPayload  BadToken = "tampered-payload"   // payload edited after signing
	BadTokenTruncated        BadToken = "truncated"          // signature cut off in transit
	BadTokenOversize         BadToken = "oversize"           // validly signed but OversizeTokenLen long
	BadTokenWrongEmail       BadToken = "wrong-email"        // push only: another service account
	BadTokenEmailNotVerified BadToken = "email-not-verified" // push only: email_verified false
)

// badTokenAudience is the aud of BadTokenWrongAudience tokens.
const badTokenAudience = "https://attacker.example.com"

// SignupAttackTokens lists every BadToken kind that applies to sign-up JWTs,
// for table-driven attack suites.
var SignupAttackTokens = []BadToken{
	BadTokenAlgNone, BadTokenHS256PublicKey, BadTokenWrongIssuer, BadTokenAttackerIssuer,
	BadTokenWrongAudience, BadTokenExpired, BadTokenIssuedInFuture, BadTokenEmptySubject,
	BadTokenUnknownKeyID, BadTokenForeignKey, BadTokenTamperedPayload, BadTokenTruncated,
	BadTokenOversize, BadTokenCritHeader, BadTokenSignatureNewline, BadTokenSignatureLowBits,
	BadTokenLongLifetime, BadTokenStringExpiry, BadTokenSubjectPath,
}

// signingKey is one RSA key with its key id and self-signed certificate.
type signingKey struct {
	kid     string
	priv    *rsa.PrivateKey
	certPEM []byte // as the x509 metadata endpoint serves it
	pubPEM  []byte // PKIX public key
}

func newSigningKey(now time.Time, commonName string) (*signingKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate RSA key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	// Google's kids are 40 hex digits; a SHA-1 of the key has that shape.
	sum := sha1.Sum(pubDER)
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    now.Add(-time.Hour),
		// Far in the future: tests advance the emulator clock freely and a
		// verifier that checks certificate validity must not start failing.
		NotAfter:    now.AddDate(10, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, fmt.Errorf("self-sign certificate: %w", err)
	}
	return &signingKey{
		kid:     hex.EncodeToString(sum[:]),
		priv:    priv,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}),
		pubPEM:  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}),
	}, nil
}

// keyRing holds an issuer's keys. Keys are generated on first use, because
// 2048-bit RSA generation is slow under -race and many tests never sign.
type keyRing struct {
	now        func() time.Time
	commonName string

	mu      sync.Mutex
	keys    []*signingKey // keys[0] signs; keys[1], if any, is the previous key, still served
	foreign *signingKey   // signs ForeignKey tokens; never in keys
}

func (r *keyRing) current() (*signingKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.keys) == 0 {
		k, err := newSigningKey(r.now(), r.commonName)
		if err != nil {
			return nil, err
		}
		r.keys = []*signingKey{k}
	}
	return r.keys[0], nil
}

func (r *keyRing) foreignKey() (*signingKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.foreign == nil {
		k, err := newSigningKey(r.now(), "attacker@example.com")
		if err != nil {
			return nil, err
		}
		r.foreign = k
	}
	return r.foreign, nil
}

// rotate makes a new signing key; the previous one stays published (as
// Google publishes two keys around a rotation) and older ones are dropped.
func (r *keyRing) rotate() (*signingKey, error) {
	k, err := newSigningKey(r.now(), r.commonName)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = append([]*signingKey{k}, r.keys...)
	if len(r.keys) > 2 {
		r.keys = r.keys[:2]
	}
	return k, nil
}

// published returns the keys the endpoints serve, generating the first one
// if needed.
func (r *keyRing) published() ([]*signingKey, error) {
	if _, err := r.current(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*signingKey(nil), r.keys...), nil
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

// tamperPayload replaces the payload of a signed token with one whose sub
// names another account, keeping the original signature.
func tamperPayload(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("marketplacetest: tamper: not a JWS compact token")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("marketplacetest: tamper: %w", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		return "", fmt.Errorf("marketplacetest: tamper: %w", err)
	}
	claims["sub"] = "attacker-chosen-account"
	edited, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("marketplacetest: tamper: %w", err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(edited)
	return strings.Join(parts, "."), nil
}

// truncateSignature cuts the signature in half, and encodes the half
// canonically so that only its length is wrong.
func truncateSignature(token string) string {
	i := strings.LastIndexByte(token, '.')
	sig, err := base64.RawURLEncoding.DecodeString(token[i+1:])
	if err != nil {
		return token[:i+1]
	}
	return token[:i+1] + base64.RawURLEncoding.EncodeToString(sig[:len(sig)/2])
}

// signupIssuer holds the RSA keys that sign Marketplace sign-up JWTs and
// serves their certificates.
type signupIssuer struct {
	now     func() time.Time
	baseURL string // set by NewServer once the listener is up
	ring    *keyRing
	// redirect sends the certificate endpoint to the attacker's copy
	// (RedirectKeysToAttacker).
	redirect atomic.Bool
}

func newSignupIssuer(now func() time.Time) (*signupIssuer, error) {
	return &signupIssuer{now: now, ring: &keyRing{now: now, commonName: signupAccount}}, nil
}

func (i *signupIssuer) routes(mux *http.ServeMux) {
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

func (i *signupIssuer) attackerCertsURL() string { return i.baseURL + attackerCertPath }

// userIdentity is a stable obfuscated user id for an account, shaped like
// Google's numeric ids.
func userIdentity(accountID string) string { return numericID("user_identity:" + accountID) }

func (i *signupIssuer) mint(p TokenParams) (string, error) {
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
		exp = iat.Add(SignupTokenLifetime)
	}
	iss := p.Issuer
	if iss == "" {
		iss = SignupIssuer
	}
	google := p.Google
	if google == nil {
		google = map[string]any{
			"roles":         []string{"account_admin"},
			"user_identity": userIdentity(p.Subject),
		}
	}
	claims := jwt.MapClaims{
		"iss":    iss,
		"iat":    iat.Unix(),
		"exp":    exp.Unix(),
		"aud":    p.Audience,
		"sub":    p.Subject,
		"google": google,
	}
	applyClaimEdits(claims, p.Extra, p.Omit)
	kid := p.KeyID
	if kid == "" {
		kid = signer.kid
	}
	return signJWT(p.Alg, signer, key.certPEM, kid, p.Header, claims)
}

func (i *signupIssuer) bad(kind BadToken, accountID, audience string) (string, error) {
	p := TokenParams{Subject: accountID, Audience: audience}
	now := i.now()
	switch kind {
	case BadTokenAlgNone:
		p.Alg = AlgNone
	case BadTokenHS256PublicKey:
		p.Alg = AlgHS256PublicKey
	case BadTokenWrongIssuer:
		p.Issuer = "https://www.googleapis.com/robot/v1/metadata/x509/someone-else@system.gserviceaccount.com"
	case BadTokenAttackerIssuer:
		p.Issuer = i.baseURL + attackerCertPath
		p.ForeignKey = true
	case BadTokenWrongAudience:
		p.Audience = badTokenAudience
	case BadTokenExpired:
		p.IssuedAt = now.Add(-time.Hour - SignupTokenLifetime)
		p.ExpiresAt = now.Add(-time.Hour)
	case BadTokenIssuedInFuture:
		p.IssuedAt = now.Add(time.Hour)
	case BadTokenEmptySubject:
		p.Subject = ""
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
		p.Extra = stringExpiry(now.Add(SignupTokenLifetime))
	case BadTokenSubjectPath:
		p.Subject = AttackSubjectPath
	default:
		return "", fmt.Errorf("marketplacetest: bad token kind %q does not apply to sign-up tokens", kind)
	}
	return i.mint(p)
}

func serveCertMap(w http.ResponseWriter, keys []*signingKey, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	m := make(map[string]string, len(keys))
	for _, k := range keys {
		m[k.kid] = string(k.certPEM)
	}
	writeKeyJSON(w, m)
}

type jwk struct {
	Kty string `json:"kty"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Kid string `json:"kid"`
	N   string `json:"n"`
	E   string `json:"e"`
}

func serveJWKS(w http.ResponseWriter, keys []*signingKey, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, k := range keys {
		pub := k.priv.PublicKey
		set.Keys = append(set.Keys, jwk{
			Kty: "RSA", Alg: "RS256", Use: "sig", Kid: k.kid,
			N: base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		})
	}
	writeKeyJSON(w, set)
}

func writeKeyJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	// Google's key endpoints are cacheable; verifiers are expected to honour it.
	w.Header().Set("Cache-Control", "public, max-age=3600, must-revalidate, no-transform")
	_ = json.NewEncoder(w).Encode(v)
}

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

// SignupToken mints the JWT Marketplace posts to the partner's sign-up URL
// for accountID: RS256 with a kid, iss SignupIssuer, aud audience, sub
// accountID, iat now (emulator clock), exp iat+5m and a nested google claim
// {roles: ["account_admin"], user_identity}. It panics if signing fails,
// which only a broken crypto/rand can cause.
func (s *Server) SignupToken(accountID, audience string) string {
	tok, err := s.signup.mint(TokenParams{Subject: accountID, Audience: audience})
	if err != nil {
		panic(err)
	}
	return tok
}

// MintSignupToken mints a sign-up JWT from explicit parameters, for tests
// of how the code under test rejects bad tokens.
func (s *Server) MintSignupToken(p TokenParams) (string, error) { return s.signup.mint(p) }

// BadSignupToken mints a sign-up JWT for accountID and audience that is
// wrong in the one way kind names (see SignupAttackTokens).
func (s *Server) BadSignupToken(kind BadToken, accountID, audience string) (string, error) {
	return s.signup.bad(kind, accountID, audience)
}

// RotateSignupKey makes a new sign-up signing key. Tokens minted afterwards
// carry its kid; the endpoints serve the new and the previous key.
func (s *Server) RotateSignupKey() error {
	_, err := s.signup.ring.rotate()
	return err
}
