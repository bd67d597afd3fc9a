package marketplacetest

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Reasons a strict verifier rejects a token.
var (
	errTooLarge       = errors.New("token too large")
	errMalformed      = errors.New("token malformed")
	errAlg            = errors.New("alg is not RS256")
	errIssuer         = errors.New("iss is not the pinned issuer")
	errUnknownKid     = errors.New("kid not served by the pinned key URL")
	errSignature      = errors.New("signature invalid")
	errAudience       = errors.New("aud mismatch")
	errExpired        = errors.New("token expired")
	errIssuedInFuture = errors.New("iat in the future")
	errSubject        = errors.New("sub empty or not an account id")
	errLifetime       = errors.New("exp - iat out of (0, 1h]")
	errEmail          = errors.New("email is not the push service account")
	errEmailVerified  = errors.New("email not verified")
)

const maxTokenLen = 16 << 10

// Shapes a strict verifier requires: one spelling per token, and account
// ids that cannot change a resource name.
var (
	compactJWS = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$`)
	accountID  = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,256}$`)
)

// strictVerifier is what a correct verifier does, in the safe order: size,
// then alg and iss from the unverified token, then the key by kid from the
// pinned URL (never from iss), then signature and claims.
type strictVerifier struct {
	issuer   string
	audience string
	keys     func(t *testing.T) map[string]*rsa.PublicKey
	now      func() time.Time
	email    string // push tokens only
}

func (v strictVerifier) verify(t *testing.T, tok string) (jwt.MapClaims, error) {
	if len(tok) > maxTokenLen {
		return nil, errTooLarge
	}
	if !compactJWS.MatchString(tok) {
		return nil, fmt.Errorf("%w: not base64url segments", errMalformed)
	}
	unverified, _, err := jwt.NewParser(jwt.WithStrictDecoding()).ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformed, err)
	}
	if unverified.Method.Alg() != "RS256" {
		return nil, errAlg
	}
	if _, ok := unverified.Header["crit"]; ok {
		return nil, fmt.Errorf("%w: crit header", errMalformed)
	}
	for _, date := range []string{"exp", "iat", "nbf"} {
		if v, ok := unverified.Claims.(jwt.MapClaims)[date]; ok {
			if _, num := v.(float64); !num {
				return nil, fmt.Errorf("%w: %s is not a number", errMalformed, date)
			}
		}
	}
	if iss, _ := unverified.Claims.GetIssuer(); iss != v.issuer {
		return nil, errIssuer
	}
	keys := v.keys(t)
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithStrictDecoding(),
		jwt.WithIssuer(v.issuer),
		jwt.WithAudience(v.audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(30*time.Second),
		jwt.WithTimeFunc(v.now),
	)
	claims := jwt.MapClaims{}
	_, err = parser.ParseWithClaims(tok, claims, func(tk *jwt.Token) (any, error) {
		kid, _ := tk.Header["kid"].(string)
		k, ok := keys[kid]
		if !ok {
			return nil, errUnknownKid
		}
		return k, nil
	})
	switch {
	case err == nil:
	case errors.Is(err, errUnknownKid):
		return nil, errUnknownKid
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return nil, fmt.Errorf("%w: %w", errSignature, err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return nil, errAudience
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, errExpired
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return nil, errIssuedInFuture
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, fmt.Errorf("%w: %w", errMalformed, err)
	default:
		return nil, err
	}
	exp, _ := claims.GetExpirationTime()
	iat, _ := claims.GetIssuedAt()
	if exp == nil || iat == nil {
		return nil, fmt.Errorf("%w: exp and iat are required", errMalformed)
	}
	if life := exp.Sub(iat.Time); life <= 0 || life > time.Hour {
		return nil, errLifetime
	}
	if sub, _ := claims.GetSubject(); !accountID.MatchString(sub) || sub == "." || sub == ".." {
		return nil, errSubject
	}
	if v.email != "" {
		if claims["email"] != v.email {
			return nil, errEmail
		}
		if claims["email_verified"] != true {
			return nil, errEmailVerified
		}
	}
	return claims, nil
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, url)
	require.Contains(t, resp.Header.Get("Content-Type"), "application/json")
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
}

// certMapKeys fetches a {kid: PEM certificate} map and parses each entry.
func certMapKeys(url string) func(t *testing.T) map[string]*rsa.PublicKey {
	return func(t *testing.T) map[string]*rsa.PublicKey {
		var m map[string]string
		getJSON(t, url, &m)
		keys := map[string]*rsa.PublicKey{}
		for kid, p := range m {
			block, _ := pem.Decode([]byte(p))
			require.NotNil(t, block, "kid %s: not PEM", kid)
			require.Equal(t, "CERTIFICATE", block.Type)
			cert, err := x509.ParseCertificate(block.Bytes)
			require.NoError(t, err)
			pub, ok := cert.PublicKey.(*rsa.PublicKey)
			require.True(t, ok)
			require.Equal(t, 2048, pub.N.BitLen())
			keys[kid] = pub
		}
		return keys
	}
}

// jwksKeys fetches a JWK Set and builds its RSA keys.
func jwksKeys(url string) func(t *testing.T) map[string]*rsa.PublicKey {
	return func(t *testing.T) map[string]*rsa.PublicKey {
		var set struct {
			Keys []struct{ Kty, Alg, Use, Kid, N, E string }
		}
		getJSON(t, url, &set)
		keys := map[string]*rsa.PublicKey{}
		for _, k := range set.Keys {
			require.Equal(t, "RSA", k.Kty)
			require.Equal(t, "RS256", k.Alg)
			require.Equal(t, "sig", k.Use)
			n, err := base64.RawURLEncoding.DecodeString(k.N)
			require.NoError(t, err)
			e, err := base64.RawURLEncoding.DecodeString(k.E)
			require.NoError(t, err)
			keys[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		}
		return keys
	}
}

func decodeSegment(t *testing.T, tok string, i int) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[i])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	return m
}

func TestSignupTokens(t *testing.T) {
	t.Parallel()
	s := New(t)
	const aud = "example-service.endpoints.acme-provider.cloud.goog"
	verifier := strictVerifier{issuer: SignupIssuer, audience: aud, keys: certMapKeys(s.CertsURL()), now: s.Clock().Now}

	t.Run("genuine token verifies against the certificate endpoint", func(t *testing.T) {
		tok := s.SignupToken(TokenParams{Subject: "acct-1", Audience: aud})
		claims, err := verifier.verify(t, tok)
		require.NoError(t, err)

		now := s.Clock().Now().Unix()
		assert.Equal(t, SignupIssuer, claims["iss"])
		assert.Equal(t, aud, claims["aud"])
		assert.Equal(t, "acct-1", claims["sub"])
		assert.EqualValues(t, now, claims["iat"])
		assert.EqualValues(t, now+300, claims["exp"])
		google, ok := claims["google"].(map[string]any)
		require.True(t, ok, "google must be a nested object, got %T", claims["google"])
		assert.Equal(t, []any{"account_admin"}, google["roles"])
		assert.Equal(t, userIdentity("acct-1"), google["user_identity"])
		assert.NotContains(t, claims, "google.user_identity")

		header := decodeSegment(t, tok, 0)
		assert.Equal(t, "RS256", header["alg"])
		assert.Len(t, header["kid"], 40)
	})

	t.Run("JWKS serves the same key", func(t *testing.T) {
		v := verifier
		v.keys = jwksKeys(s.SignupJWKSURL())
		_, err := v.verify(t, s.SignupToken(TokenParams{Subject: "acct-2", Audience: aud}))
		require.NoError(t, err)
	})

	t.Run("expiry follows the emulator clock", func(t *testing.T) {
		tok := s.SignupToken(TokenParams{Subject: "acct-3", Audience: aud})
		s.Clock().Advance(4 * time.Minute)
		_, err := verifier.verify(t, tok)
		require.NoError(t, err)
		s.Clock().Advance(2 * time.Minute)
		_, err = verifier.verify(t, tok)
		require.ErrorIs(t, err, errExpired)
	})

	t.Run("endpoints are cacheable", func(t *testing.T) {
		resp, err := http.Get(s.CertsURL())
		require.NoError(t, err)
		resp.Body.Close()
		assert.Contains(t, resp.Header.Get("Cache-Control"), "max-age=")
	})
}

func TestSignupAttackTokens(t *testing.T) {
	t.Parallel()
	s := New(t)
	const aud = "example-service.endpoints.acme-provider.cloud.goog"
	verifier := strictVerifier{issuer: SignupIssuer, audience: aud, keys: certMapKeys(s.CertsURL()), now: s.Clock().Now}

	wantReason := map[BadToken]error{
		BadTokenAlgNone:          errAlg,
		BadTokenHS256PublicKey:   errAlg,
		BadTokenWrongIssuer:      errIssuer,
		BadTokenAttackerIssuer:   errIssuer,
		BadTokenWrongAudience:    errAudience,
		BadTokenExpired:          errExpired,
		BadTokenIssuedInFuture:   errIssuedInFuture,
		BadTokenEmptySubject:     errSubject,
		BadTokenUnknownKeyID:     errUnknownKid,
		BadTokenForeignKey:       errSignature,
		BadTokenTamperedPayload:  errSignature,
		BadTokenTruncated:        errSignature,
		BadTokenOversize:         errTooLarge,
		BadTokenCritHeader:       errMalformed,
		BadTokenSignatureNewline: errMalformed,
		BadTokenSignatureLowBits: errMalformed,
		BadTokenLongLifetime:     errLifetime,
		BadTokenStringExpiry:     errMalformed,
		BadTokenSubjectPath:      errSubject,
	}
	require.Len(t, SignupAttackTokens(), len(wantReason))
	for _, kind := range SignupAttackTokens() {
		t.Run("bad/"+string(kind), func(t *testing.T) {
			tok := s.SignupToken(TokenParams{Subject: "acct-1", Audience: aud, Bad: kind})
			_, err := verifier.verify(t, tok)
			require.ErrorIs(t, err, wantReason[kind])
		})
	}

	t.Run("bad kinds for push only are refused", func(t *testing.T) {
		require.PanicsWithError(t, `marketplacetest: bad token kind "wrong-email" does not apply to sign-up tokens`, func() {
			s.SignupToken(TokenParams{Subject: "acct-1", Audience: aud, Bad: BadTokenWrongEmail})
		})
	})

}

// The attacks work against the verifiers they target, so the tokens really
// exercise what their names say.
func TestSignupAttacksFoolWeakVerifiers(t *testing.T) {
	t.Parallel()
	s := New(t)
	const aud = "example-service.endpoints.acme-provider.cloud.goog"
	verifier := strictVerifier{issuer: SignupIssuer, audience: aud, keys: certMapKeys(s.CertsURL()), now: s.Clock().Now}

	t.Run("attacker issuer fools a verifier that fetches keys from iss", func(t *testing.T) {
		tok := s.SignupToken(TokenParams{Subject: "acct-1", Audience: aud, Bad: BadTokenAttackerIssuer})
		claims := jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(tok, claims, func(tk *jwt.Token) (any, error) {
			iss, _ := tk.Claims.GetIssuer()
			return certMapKeys(iss)(t)[tk.Header["kid"].(string)], nil
		}, jwt.WithTimeFunc(s.Clock().Now), jwt.WithValidMethods([]string{"RS256"}))
		require.NoError(t, err)
		assert.Equal(t, s.AttackerCertsURL(), claims["iss"])
	})

	t.Run("HS256 with the public key fools a verifier that lets the token pick alg", func(t *testing.T) {
		tok := s.SignupToken(TokenParams{Subject: "acct-1", Audience: aud, Bad: BadTokenHS256PublicKey})
		var pems map[string]string
		getJSON(t, s.CertsURL(), &pems)
		_, err := jwt.Parse(tok, func(tk *jwt.Token) (any, error) {
			return []byte(pems[tk.Header["kid"].(string)]), nil
		}, jwt.WithTimeFunc(s.Clock().Now))
		require.NoError(t, err)
	})

	t.Run("alg none has an empty signature", func(t *testing.T) {
		tok := s.SignupToken(TokenParams{Subject: "acct-1", Audience: aud, Bad: BadTokenAlgNone})
		assert.True(t, strings.HasSuffix(tok, "."))
		assert.Equal(t, "none", decodeSegment(t, tok, 0)["alg"])
	})

	t.Run("tampered payload names another account", func(t *testing.T) {
		tok := s.SignupToken(TokenParams{Subject: "acct-1", Audience: aud, Bad: BadTokenTamperedPayload})
		assert.Equal(t, "attacker-chosen-account", decodeSegment(t, tok, 1)["sub"])
	})

	t.Run("oversize is otherwise genuine", func(t *testing.T) {
		tok := s.SignupToken(TokenParams{Subject: "acct-1", Audience: aud, Bad: BadTokenOversize})
		assert.Greater(t, len(tok), OversizeTokenLen)
		// Check the signature directly: a full parse of 256 KiB is slow
		// under -race.
		i := strings.LastIndexByte(tok, '.')
		sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
		require.NoError(t, err)
		kid := decodeSegment(t, tok[:64*1024], 0)["kid"].(string)
		require.NoError(t, jwt.SigningMethodRS256.Verify(tok[:i], sig, verifier.keys(t)[kid]))
	})

}

func TestSignupTokenParams(t *testing.T) {
	t.Parallel()
	s := New(t)
	const aud = "example-service.endpoints.acme-provider.cloud.goog"
	verifier := strictVerifier{issuer: SignupIssuer, audience: aud, keys: certMapKeys(s.CertsURL()), now: s.Clock().Now}

	t.Run("omits and overrides claims", func(t *testing.T) {
		tok := s.SignupToken(TokenParams{
			Subject: "acct-9", Audience: aud, Omit: []string{"exp"},
			Google: map[string]any{"roles": []string{"billing_admin"}, "orders": []string{"o-1"}},
			Extra:  map[string]any{"nonce": "n"},
		})
		claims := decodeSegment(t, tok, 1)
		assert.NotContains(t, claims, "exp")
		assert.Equal(t, "n", claims["nonce"])
		assert.Equal(t, []any{"o-1"}, claims["google"].(map[string]any)["orders"])
		_, err := verifier.verify(t, tok)
		require.ErrorIs(t, err, jwt.ErrTokenRequiredClaimMissing)
	})

	t.Run("unknown algorithm panics", func(t *testing.T) {
		require.PanicsWithError(t, `marketplacetest: unknown token algorithm "ES256"`, func() {
			s.SignupToken(TokenParams{Alg: "ES256"})
		})
	})

	t.Run("push-only fields panic", func(t *testing.T) {
		require.PanicsWithError(t, "marketplacetest: Email and EmailVerified apply to push tokens only", func() {
			s.SignupToken(TokenParams{Subject: "acct-1", Audience: aud, Email: "x@y"})
		})
	})

	t.Run("Bad applies on top of the other fields", func(t *testing.T) {
		tok := s.SignupToken(TokenParams{Subject: "acct-1", Audience: aud, Bad: BadTokenOversize, Extra: map[string]any{"nonce": "n"}})
		claims := decodeSegment(t, tok, 1)
		assert.Equal(t, "n", claims["nonce"])
		assert.Greater(t, len(claims["padding"].(string)), OversizeTokenLen-1)
	})

	t.Run("the attack list is the caller's own copy", func(t *testing.T) {
		kinds := SignupAttackTokens()
		kinds[0] = "changed"
		assert.Equal(t, BadTokenAlgNone, SignupAttackTokens()[0])
	})

}

func TestRotateSignupKey(t *testing.T) {
	t.Parallel()
	s := New(t)
	const aud = "svc"
	verifier := strictVerifier{issuer: SignupIssuer, audience: aud, keys: certMapKeys(s.CertsURL()), now: s.Clock().Now}
	old := s.SignupToken(TokenParams{Subject: "a", Audience: aud})
	require.NoError(t, s.RotateSignupKey())
	fresh := s.SignupToken(TokenParams{Subject: "a", Audience: aud})
	assert.NotEqual(t, decodeSegment(t, old, 0)["kid"], decodeSegment(t, fresh, 0)["kid"])

	keys := verifier.keys(t)
	assert.Len(t, keys, 2, "the previous key stays published after a rotation")
	for _, tok := range []string{old, fresh} {
		_, err := verifier.verify(t, tok)
		require.NoError(t, err)
	}
}
