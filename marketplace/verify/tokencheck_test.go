package verify_test

// Regression tests for the token hardening of issue 19 (items 12-17): each
// case here was accepted before, by the sign-up or the push verifier.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// mintSignup mints a sign-up token for the test account and audience
// unless p says otherwise.
func (e signupTestEnv) mintSignup(t *testing.T, p marketplacetest.TokenParams) string {
	t.Helper()
	if p.Subject == "" {
		p.Subject = signupTestAccount
	}
	if p.Audience == "" {
		p.Audience = signupTestAudience
	}
	tok := e.s.SignupToken(p)
	return tok
}

// tokenCase is a token and the reason it must be refused for ("" =
// accepted).
type tokenCase struct {
	name  string
	token string
	want  verify.TokenReason
}

func (e signupTestEnv) requireCases(t *testing.T, cases []tokenCase) {
	t.Helper()
	requireTokenCases(t, e.v.Verify, cases)
}

// requireTokenCases runs each case through check (a Verify method):
// accepted, or refused with its reason as a *TokenError and zero claims.
func requireTokenCases[C any](t *testing.T, check func(context.Context, string) (C, error), cases []tokenCase) {
	t.Helper()
	for _, tc := range cases {
		c, err := check(context.Background(), tc.token)
		if tc.want == "" {
			assert.NoError(t, err, tc.name)
			continue
		}
		if assert.Error(t, err, tc.name) {
			var te *verify.TokenError
			if assert.ErrorAs(t, err, &te, tc.name) {
				assert.Equal(t, tc.want, te.Reason, "%s: %v", tc.name, err)
			}
			assert.Zero(t, c, tc.name)
		}
	}
}

// Item 12: a redirect from the key URL, to another origin or to another
// path of the same one, is refused, also with a caller-supplied client,
// which is left unmodified.
func TestVerifySignupTokenRefusesKeyRedirect(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("to another origin", func(t *testing.T) {
		t.Parallel()
		s := marketplacetest.New(t)
		redirector := httptest.NewServer(http.RedirectHandler(s.AttackerCertsURL(), http.StatusFound))
		t.Cleanup(redirector.Close)
		client := &http.Client{}
		v, err := verify.NewSignupVerifier([]string{signupTestAudience},
			&verify.Config{Runtime: gcpmarketplace.Runtime{Clock: s.Clock().Now},
				SignupCertsURL: redirector.URL + "/robot/v1/metadata/x509/keys", HTTPClient: client})
		require.NoError(t, err)
		tok := s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience, ForeignKey: true})
		_, err = v.Verify(ctx, tok)
		requireAuthReason(t, err, verify.ErrKeysUnavailable)
		assert.ErrorContains(t, err, "redirect")
		assert.Nil(t, client.CheckRedirect, "the caller's client was modified")
	})

	// A Transport that follows redirects itself is not asked by
	// CheckRedirect: the response for another URL is refused all the same.
	t.Run("through a transport that follows redirects", func(t *testing.T) {
		t.Parallel()
		s := marketplacetest.New(t)
		redirector := httptest.NewServer(http.RedirectHandler(s.AttackerCertsURL(), http.StatusFound))
		t.Cleanup(redirector.Close)
		client := &http.Client{Transport: followingTransport{&http.Client{}}}
		v, err := verify.NewSignupVerifier([]string{signupTestAudience},
			&verify.Config{Runtime: gcpmarketplace.Runtime{Clock: s.Clock().Now},
				SignupCertsURL: redirector.URL + "/robot/v1/metadata/x509/keys", HTTPClient: client})
		require.NoError(t, err)
		tok := s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience, ForeignKey: true})
		_, err = v.Verify(ctx, tok)
		requireAuthReason(t, err, verify.ErrKeysUnavailable)
		assert.ErrorContains(t, err, "refused")
	})

	t.Run("from the emulator's key endpoint", func(t *testing.T) {
		t.Parallel()
		e := newSignupTestEnv(t)
		e.s.RedirectKeysToAttacker(true)
		attack := e.mintSignup(t, marketplacetest.TokenParams{ForeignKey: true})
		_, err := e.v.Verify(ctx, attack)
		requireAuthReason(t, err, verify.ErrKeysUnavailable)
		e.requireOnlyCertsFetched(t, 1)

		// With the endpoint restored (and the rate limit past), genuine
		// keys load and the foreign token is refused for its kid.
		e.s.RedirectKeysToAttacker(false)
		e.s.Clock().Advance(time.Minute)
		_, err = e.v.Verify(ctx, attack)
		requireAuthReason(t, err, verify.ErrTokenUnknownKey)
		_, err = e.v.Verify(ctx, e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience}))
		require.NoError(t, err)
	})
}

func TestVerifyPushRequestRefusesKeyRedirect(t *testing.T) {
	t.Parallel()
	e := newPushTestEnv(t)
	e.s.RedirectKeysToAttacker(true)
	tok := e.s.PushToken(marketplacetest.TokenParams{Audience: pushTestAudience, ForeignKey: true})
	_, err := e.v.VerifyRequest(context.Background(), pushBearerRequest(t, tok))
	requireAuthReason(t, err, verify.ErrKeysUnavailable)
	e.requireOnlyJWKSFetched(t, 1)
}

// Item 13: sub must be shaped like a Procurement id.
func TestVerifySignupTokenSubject(t *testing.T) {
	t.Parallel()
	e := newSignupTestEnv(t)
	bad := []string{"   ", " acct-1", "acct-1 ", marketplacetest.AttackSubjectPath, "providers/p/accounts/a",
		"acct\r\nX-Injected: 1", "acct\x00", "acct\t1", ".", "..", "acct%2F1", "acct?x", "acct#x", "ａcct",
		strings.Repeat("a", 257), strings.Repeat("a", 5000)}
	var cases []tokenCase
	for _, sub := range bad {
		cases = append(cases, tokenCase{subjectCaseName(sub), e.mintSignup(t, marketplacetest.TokenParams{Subject: sub}), verify.ErrTokenSubject})
	}
	for _, sub := range []string{"acct-1", "E-1234_x.y:z", "4f165726-0a12-4b7c-ab5b-34a6ca9fa5d3", strings.Repeat("a", 256)} {
		cases = append(cases, tokenCase{subjectCaseName(sub), e.mintSignup(t, marketplacetest.TokenParams{Subject: sub}), ""})
	}
	e.requireCases(t, cases)

	_, err := e.v.Verify(context.Background(), e.mintSignup(t, marketplacetest.TokenParams{Subject: "../x"}))
	require.ErrorIs(t, err, procurement.ErrInvalidName)
	assert.NotContains(t, err.Error(), "\n")
}

func subjectCaseName(sub string) string {
	if len(sub) > 20 {
		return fmt.Sprintf("sub %q… (%d bytes)", sub[:20], len(sub))
	}
	return fmt.Sprintf("sub %q", sub)
}

// Item 14: the push email is compared exactly after ASCII lower-casing;
// Unicode case folding would let look-alikes match.
func TestVerifyPushRequestEmailIsComparedASCII(t *testing.T) {
	t.Parallel()
	e := newPushTestEnv(t)
	sa := e.s.PushServiceAccount()
	for _, tc := range []struct {
		email string
		want  verify.TokenReason
	}{
		{sa, ""},
		{strings.ToUpper(sa), ""},
		{strings.Replace(sa, "s", "ſ", 1), verify.ErrTokenEmail},      // U+017F folds to s
		{strings.Replace(sa, "k", "\u212a", 1), verify.ErrTokenEmail}, // Kelvin sign folds to k
		{sa + " ", verify.ErrTokenEmail},
	} {
		tok := e.s.PushToken(marketplacetest.TokenParams{Audience: pushTestAudience, Email: tc.email})
		_, err := e.v.Verify(context.Background(), tok)
		if tc.want == "" {
			assert.NoError(t, err, tc.email)
			continue
		}
		requireAuthReason(t, err, tc.want)
	}

	// A configured address in upper case matches the token's lower case.
	upper := newPushTestEnv(t, func(c *verify.Config) { c.PushServiceAccount = strings.ToUpper(sa) })
	_, err := upper.v.Verify(context.Background(), upper.s.PushToken(marketplacetest.TokenParams{Audience: pushTestAudience}))
	require.NoError(t, err)
}

// Item 15: any crit header is refused, before a key is fetched.
func TestVerifySignupTokenCritHeader(t *testing.T) {
	t.Parallel()
	e := newSignupTestEnv(t)
	e.requireCases(t, []tokenCase{
		{"crit unknown extension", e.mintSignup(t, marketplacetest.TokenParams{Header: map[string]any{"crit": []string{"exp-ext"}, "exp-ext": 1}}), verify.ErrTokenMalformed},
		{"crit b64", e.mintSignup(t, marketplacetest.TokenParams{Header: map[string]any{"crit": []string{"b64"}, "b64": true}}), verify.ErrTokenMalformed},
		{"crit empty", e.mintSignup(t, marketplacetest.TokenParams{Header: map[string]any{"crit": []string{}}}), verify.ErrTokenMalformed},
		{"crit null", e.mintSignup(t, marketplacetest.TokenParams{Header: map[string]any{"crit": nil}}), verify.ErrTokenMalformed},
		{"other unknown header", e.mintSignup(t, marketplacetest.TokenParams{Header: map[string]any{"x-note": "ok"}}), ""},
	})
}

// Item 16: one token, one spelling. Each variant below decodes to the
// genuine token's bytes with a lenient base64 decoder.
func TestVerifySignupTokenStrictEncoding(t *testing.T) {
	t.Parallel()
	e := newSignupTestEnv(t)
	good := e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})
	parts := strings.Split(good, ".")
	h, p, sig := parts[0], parts[1], parts[2]
	lowBits := e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience, Bad: marketplacetest.BadTokenSignatureLowBits})
	require.NotEqual(t, good, lowBits)
	e.requireCases(t, []tokenCase{
		{"genuine", good, ""},
		{"LF in signature", h + "." + p + "." + sig[:100] + "\n" + sig[100:], verify.ErrTokenMalformed},
		{"CR LF in signature", h + "." + p + "." + sig[:100] + "\r\n" + sig[100:], verify.ErrTokenMalformed},
		{"LF in payload", h + "." + p[:10] + "\n" + p[10:] + "." + sig, verify.ErrTokenMalformed},
		{"LF in header", h[:5] + "\n" + h[5:] + "." + p + "." + sig, verify.ErrTokenMalformed},
		{"trailing LF", good + "\n", verify.ErrTokenMalformed},
		{"padding", good + "==", verify.ErrTokenMalformed},
		{"standard alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(good), verify.ErrTokenMalformed},
		{"unused low bits in signature", lowBits, verify.ErrTokenMalformed},
	})
}

// Item 17: dates must be JSON numbers and exp − iat at most
// MaxTokenLifetime.
func TestVerifySignupTokenDatesAndLifetime(t *testing.T) {
	t.Parallel()
	e := newSignupTestEnv(t)
	now := e.s.Clock().Now()
	e.requireCases(t, []tokenCase{
		{"exp numeric string", e.mintSignup(t, marketplacetest.TokenParams{Extra: map[string]any{"exp": itoa(now.Add(time.Minute).Unix())}}), verify.ErrTokenMalformed},
		{"iat numeric string", e.mintSignup(t, marketplacetest.TokenParams{Extra: map[string]any{"iat": itoa(now.Unix())}}), verify.ErrTokenMalformed},
		{"nbf numeric string", e.mintSignup(t, marketplacetest.TokenParams{Extra: map[string]any{"nbf": itoa(now.Unix())}}), verify.ErrTokenMalformed},
		{"exp null", e.mintSignup(t, marketplacetest.TokenParams{Extra: map[string]any{"exp": nil}}), verify.ErrTokenMalformed},
		{"iat true", e.mintSignup(t, marketplacetest.TokenParams{Extra: map[string]any{"iat": true}}), verify.ErrTokenMalformed},
		{"fractional exp", e.mintSignup(t, marketplacetest.TokenParams{Extra: map[string]any{"exp": float64(now.Unix()) + 60.5}}), ""},
		{"lifetime 10 years", e.mintSignup(t, marketplacetest.TokenParams{ExpiresAt: now.AddDate(10, 0, 0)}), verify.ErrTokenLifetime},
		{"lifetime max+1s", e.mintSignup(t, marketplacetest.TokenParams{ExpiresAt: now.Add(verify.MaxTokenLifetime + time.Second)}), verify.ErrTokenLifetime},
		{"lifetime exactly max", e.mintSignup(t, marketplacetest.TokenParams{ExpiresAt: now.Add(verify.MaxTokenLifetime)}), ""},
		{"exp equal to iat", e.mintSignup(t, marketplacetest.TokenParams{IssuedAt: now.Add(-10 * time.Second), ExpiresAt: now.Add(-10 * time.Second)}), verify.ErrTokenLifetime},
		{"exp before iat (within the skew)", e.mintSignup(t, marketplacetest.TokenParams{IssuedAt: now, ExpiresAt: now.Add(-time.Second)}), verify.ErrTokenLifetime},
		{"exp far future as float", e.mintSignup(t, marketplacetest.TokenParams{Extra: map[string]any{"exp": 1e12}}), verify.ErrTokenLifetime},
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// requireFuzzTokenError fails unless err is a *TokenError with one of the
// documented reasons.
func requireFuzzTokenError(t *testing.T, err error) {
	t.Helper()
	var te *verify.TokenError
	if !errors.As(err, &te) {
		t.Fatalf("error is not a *TokenError: %T %v", err, err)
	}
	if !errors.Is(err, te.Reason) || te.Reason.Error() == "" {
		t.Fatalf("error %v does not match its reason %q", err, te.Reason)
	}
}

// FuzzVerifyPushToken fuzzes the push verifier from the genuine token and
// every push attack: nothing but the genuine token verifies, and every
// refusal is a typed error.
func FuzzVerifyPushToken(f *testing.F) {
	s := marketplacetest.New(nil)
	f.Cleanup(func() { _ = s.Close() })
	good := s.PushToken(marketplacetest.TokenParams{Audience: pushTestAudience})
	f.Add(good)
	for _, kind := range marketplacetest.PushAttackTokens() {
		if kind == marketplacetest.BadTokenOversize {
			continue
		}
		tok, err := s.PushToken(marketplacetest.TokenParams{Audience: pushTestAudience, Bad: kind}), error(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok)
	}
	v, err := verify.NewPushVerifier(pushTestAudience, &verify.Config{Runtime: gcpmarketplace.Runtime{Clock: s.Clock().Now},
		PushJWKSURL: s.PushJWKSURL(), PushServiceAccount: s.PushServiceAccount()})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Verify(context.Background(), token)
		if err == nil {
			if token != good {
				t.Fatalf("fuzzed token verified: %q", token)
			}
			if c.Email != s.PushServiceAccount() || c.ExpiresAt.Sub(c.IssuedAt) > verify.MaxTokenLifetime {
				t.Fatalf("verified claims out of bounds: %+v", c)
			}
			return
		}
		requireFuzzTokenError(t, err)
	})
}

// followingTransport follows redirects inside RoundTrip, as some proxy and
// instrumentation wrappers do.
type followingTransport struct{ inner *http.Client }

func (f followingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r2, err := http.NewRequestWithContext(r.Context(), r.Method, r.URL.String(), nil)
	if err != nil {
		return nil, err
	}
	return f.inner.Do(r2)
}
