package marketplacetest

import (
	"crypto/rsa"
	"net/http"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The re-spelled tokens are the genuine token to a lenient decoder, so they
// test spelling and nothing else.
func TestRespelledTokensVerifyLeniently(t *testing.T) {
	t.Parallel()
	s := New(t)
	const aud = "https://saas.example.com/marketplace/push"
	signupKeys := certMapKeys(s.CertsURL())(t)
	pushKeys := jwksKeys(s.PushJWKSURL())(t)
	for _, kind := range []BadToken{BadTokenSignatureNewline, BadTokenSignatureLowBits} {
		signup := s.SignupToken(TokenParams{Subject: "acct-1", Audience: aud, Bad: kind})
		push := s.PushToken(TokenParams{Audience: aud, Bad: kind})
		for tok, keys := range map[string]map[string]*rsa.PublicKey{signup: signupKeys, push: pushKeys} {
			_, err := jwt.NewParser(jwt.WithTimeFunc(s.Clock().Now)).Parse(tok, func(tk *jwt.Token) (any, error) {
				return keys[tk.Header["kid"].(string)], nil
			})
			require.NoError(t, err, "%s: a lenient parser refuses it", kind)
		}
	}
}

// A redirected key endpoint hands a redirect-following client the key that
// signs ForeignKey tokens.
func TestRedirectKeysToAttacker(t *testing.T) {
	t.Parallel()
	s := New(t)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	foreign := s.SignupToken(TokenParams{Subject: "acct-1", Audience: "aud", ForeignKey: true})
	foreignKid := decodeSegment(t, foreign, 0)["kid"].(string)
	pushForeign := s.PushToken(TokenParams{Audience: "aud", ForeignKey: true})
	pushForeignKid := decodeSegment(t, pushForeign, 0)["kid"].(string)

	assert.NotContains(t, certMapKeys(s.CertsURL())(t), foreignKid)
	s.RedirectKeysToAttacker(true)
	for _, u := range []string{s.CertsURL(), s.PushJWKSURL()} {
		resp, err := noFollow.Get(u)
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusFound, resp.StatusCode, u)
	}
	assert.Contains(t, certMapKeys(s.CertsURL())(t), foreignKid)
	assert.Contains(t, jwksKeys(s.PushJWKSURL())(t), pushForeignKid)

	s.RedirectKeysToAttacker(false)
	assert.NotContains(t, jwksKeys(s.PushJWKSURL())(t), pushForeignKid)
}
