package verify_test

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

const (
	signupTestAudience = "example-service.endpoints.acme-provider.cloud.goog"
	signupTestAccount  = "acct-1"
)

// authRequestLog is an http.RoundTripper that records the URL of every
// request it forwards, and can fail them on demand.
type authRequestLog struct {
	mu   sync.Mutex
	urls []string
	down bool // answer 503 without forwarding
}

func (l *authRequestLog) RoundTrip(r *http.Request) (*http.Response, error) {
	l.mu.Lock()
	l.urls = append(l.urls, r.URL.String())
	down := l.down
	l.mu.Unlock()
	if down {
		return &http.Response{
			StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable",
			Header: http.Header{}, Body: io.NopCloser(strings.NewReader("down")), Request: r,
		}, nil
	}
	return http.DefaultTransport.RoundTrip(r)
}

func (l *authRequestLog) requests() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.urls...)
}

func (l *authRequestLog) setDown(down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = down
}

// signupTestEnv is an emulator plus a verifier that fetches keys from it
// through a recording client and reads the emulator's clock.
type signupTestEnv struct {
	s   *marketplacetest.Server
	log *authRequestLog
	v   *verify.SignupVerifier
}

func newSignupTestEnv(t *testing.T, edits ...func(*verify.Config)) signupTestEnv {
	t.Helper()
	s := marketplacetest.New(t)
	rl := &authRequestLog{}
	cfg := &verify.Config{
		Runtime:        gcpmarketplace.Runtime{Clock: s.Clock().Now},
		SignupCertsURL: s.CertsURL(),
		HTTPClient:     &http.Client{Transport: rl},
	}
	for _, edit := range edits {
		edit(cfg)
	}
	v, err := verify.NewSignupVerifier([]string{signupTestAudience}, cfg)
	require.NoError(t, err)
	return signupTestEnv{s: s, log: rl, v: v}
}

// requireOnlyCertsFetched asserts that every key request went to the
// pinned certificate URL, n of them.
func (e signupTestEnv) requireOnlyCertsFetched(t *testing.T, n int) {
	t.Helper()
	reqs := e.log.requests()
	for _, u := range reqs {
		require.Equal(t, e.s.CertsURL(), u, "a request left the pinned key URL")
	}
	require.Len(t, reqs, n, "key fetches")
}

func requireAuthReason(t *testing.T, err error, want verify.TokenReason) {
	t.Helper()
	require.Error(t, err)
	var te *verify.TokenError
	require.ErrorAs(t, err, &te, "not a *TokenError: %v", err)
	require.Equal(t, want, te.Reason, "error: %v", err)
	require.ErrorIs(t, err, want)
}

func TestVerifySignupTokenGood(t *testing.T) {
	t.Parallel()
	e := newSignupTestEnv(t)
	now := e.s.Clock().Now()
	tok := e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})

	c, err := e.v.Verify(context.Background(), tok)
	require.NoError(t, err)
	assert.Equal(t, signupTestAccount, c.AccountID)
	assert.NotEmpty(t, c.UserIdentity)
	assert.Equal(t, []string{"account_admin"}, c.Roles)
	assert.Nil(t, c.Orders)
	assert.Equal(t, signupTestAudience, c.Audience)
	assert.True(t, c.IssuedAt.Equal(now.Truncate(time.Second)), "iat %v", c.IssuedAt)
	assert.Equal(t, marketplacetest.SignupTokenLifetime, c.ExpiresAt.Sub(c.IssuedAt))

	// A second token is verified from the cache.
	_, err = e.v.Verify(context.Background(), e.s.SignupToken(marketplacetest.TokenParams{Subject: "acct-2", Audience: signupTestAudience}))
	require.NoError(t, err)
	e.requireOnlyCertsFetched(t, 1)
}

// signupAttackReasons is the reason each emulator attack token must be
// refused with.
var signupAttackReasons = map[marketplacetest.BadToken]verify.TokenReason{
	marketplacetest.BadTokenAlgNone:          verify.ErrTokenAlgorithm,
	marketplacetest.BadTokenHS256PublicKey:   verify.ErrTokenAlgorithm,
	marketplacetest.BadTokenWrongIssuer:      verify.ErrTokenIssuer,
	marketplacetest.BadTokenAttackerIssuer:   verify.ErrTokenIssuer,
	marketplacetest.BadTokenWrongAudience:    verify.ErrTokenAudience,
	marketplacetest.BadTokenExpired:          verify.ErrTokenExpired,
	marketplacetest.BadTokenIssuedInFuture:   verify.ErrTokenIssuedInFuture,
	marketplacetest.BadTokenEmptySubject:     verify.ErrTokenSubject,
	marketplacetest.BadTokenUnknownKeyID:     verify.ErrTokenUnknownKey,
	marketplacetest.BadTokenForeignKey:       verify.ErrTokenSignature,
	marketplacetest.BadTokenTamperedPayload:  verify.ErrTokenSignature,
	marketplacetest.BadTokenTruncated:        verify.ErrTokenMalformed,
	marketplacetest.BadTokenOversize:         verify.ErrTokenTooLarge,
	marketplacetest.BadTokenCritHeader:       verify.ErrTokenMalformed,
	marketplacetest.BadTokenSignatureNewline: verify.ErrTokenMalformed,
	marketplacetest.BadTokenSignatureLowBits: verify.ErrTokenMalformed,
	marketplacetest.BadTokenLongLifetime:     verify.ErrTokenLifetime,
	marketplacetest.BadTokenStringExpiry:     verify.ErrTokenMalformed,
	marketplacetest.BadTokenSubjectPath:      verify.ErrTokenSubject,
}

func TestVerifySignupTokenAttacks(t *testing.T) {
	t.Parallel()
	e := newSignupTestEnv(t)
	ctx := context.Background()
	require.Len(t, marketplacetest.SignupAttackTokens(), len(signupAttackReasons))

	for _, kind := range marketplacetest.SignupAttackTokens() {
		want, ok := signupAttackReasons[kind]
		require.True(t, ok, "no expected reason for attack %q", kind)
		tok := e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience, Bad: kind})

		c, err := e.v.Verify(ctx, tok)
		requireAuthReason(t, err, want)
		assert.Zero(t, c, "%s: claims returned with an error", kind)
		if sig := tok[strings.LastIndexByte(tok, '.')+1:]; sig != "" {
			assert.NotContains(t, err.Error(), sig, "%s: error quotes the signature", kind)
		}
		t.Logf("%-18s -> %v", kind, err)
	}
	// Only the pinned URL was ever fetched (once: the unknown kid came
	// within the refresh interval of the first fetch); never the attacker's.
	e.requireOnlyCertsFetched(t, 1)
}

// The attacker-issuer token is refused even when it is the very first
// token the verifier sees, before any key is cached: iss is checked first.
func TestVerifySignupTokenAttackerIssuerFetchesNothing(t *testing.T) {
	t.Parallel()
	e := newSignupTestEnv(t)
	for _, kind := range []marketplacetest.BadToken{
		marketplacetest.BadTokenAttackerIssuer, marketplacetest.BadTokenWrongIssuer,
		marketplacetest.BadTokenAlgNone, marketplacetest.BadTokenHS256PublicKey, marketplacetest.BadTokenOversize,
	} {
		tok := e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience, Bad: kind})
		_, err := e.v.Verify(context.Background(), tok)
		require.Error(t, err)
	}
	e.requireOnlyCertsFetched(t, 0)
}

func TestVerifySignupTokenEdgeCases(t *testing.T) {
	t.Parallel()
	e := newSignupTestEnv(t)
	now := e.s.Clock().Now()
	mint := func(p marketplacetest.TokenParams) string {
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
	good := mint(marketplacetest.TokenParams{})
	header, payload, _ := strings.Cut(good, ".")

	cases := []struct {
		name  string
		token string
		want  verify.TokenReason // "" = accepted
	}{
		{"empty", "", verify.ErrTokenMissing},
		{"one segment", "abc", verify.ErrTokenMalformed},
		{"two segments", header + "." + strings.Split(payload, ".")[0], verify.ErrTokenMalformed},
		{"four segments", good + ".x", verify.ErrTokenMalformed},
		{"header not base64", "!!!." + payload, verify.ErrTokenMalformed},
		{"header not JSON", "bm90IGpzb24." + payload, verify.ErrTokenMalformed},
		{"alg not a string", "eyJhbGciOjF9." + payload, verify.ErrTokenMalformed},
		{"unknown alg", "eyJhbGciOiJYWVoifQ." + payload, verify.ErrTokenAlgorithm},
		{"exactly MaxTokenSize of junk", strings.Repeat("a", verify.MaxTokenSize), verify.ErrTokenMalformed},
		{"MaxTokenSize+1", strings.Repeat("a", verify.MaxTokenSize+1), verify.ErrTokenTooLarge},
		{"no exp", mint(marketplacetest.TokenParams{Omit: []string{"exp"}}), verify.ErrTokenMalformed},
		{"no iat", mint(marketplacetest.TokenParams{Omit: []string{"iat"}}), verify.ErrTokenMalformed},
		{"no aud", mint(marketplacetest.TokenParams{Omit: []string{"aud"}}), verify.ErrTokenAudience},
		{"no sub", mint(marketplacetest.TokenParams{Omit: []string{"sub"}}), verify.ErrTokenSubject},
		{"no iss", mint(marketplacetest.TokenParams{Omit: []string{"iss"}}), verify.ErrTokenIssuer},
		{"iss with trailing slash", mint(marketplacetest.TokenParams{Issuer: verify.SignupIssuer + "/"}), verify.ErrTokenIssuer},
		{"iss not a string", mint(marketplacetest.TokenParams{Extra: map[string]any{"iss": 7}}), verify.ErrTokenMalformed},
		{"exp not a number", mint(marketplacetest.TokenParams{Extra: map[string]any{"exp": "soon"}}), verify.ErrTokenMalformed},
		{"kid not served", mint(marketplacetest.TokenParams{KeyID: "-"}), verify.ErrTokenUnknownKey},
		{"no kid header", "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9." + payload, verify.ErrTokenUnknownKey},
		{"iat 29s ahead (skew)", mint(marketplacetest.TokenParams{IssuedAt: now.Add(29 * time.Second)}), ""},
		{"iat 31s ahead", mint(marketplacetest.TokenParams{IssuedAt: now.Add(31 * time.Second)}), verify.ErrTokenIssuedInFuture},
		{"exp 29s ago (skew)", mint(marketplacetest.TokenParams{IssuedAt: now.Add(-5 * time.Minute), ExpiresAt: now.Add(-29 * time.Second)}), ""},
		{"exp 31s ago", mint(marketplacetest.TokenParams{IssuedAt: now.Add(-5 * time.Minute), ExpiresAt: now.Add(-31 * time.Second)}), verify.ErrTokenExpired},
		{"nbf in the future", mint(marketplacetest.TokenParams{Extra: map[string]any{"nbf": now.Add(time.Hour).Unix()}}), verify.ErrTokenIssuedInFuture},
		{"expired and wrong aud: expiry wins", mint(marketplacetest.TokenParams{Audience: "other", ExpiresAt: now.Add(-time.Hour), IssuedAt: now.Add(-2 * time.Hour)}), verify.ErrTokenExpired},
		{"aud list containing ours", mint(marketplacetest.TokenParams{Extra: map[string]any{"aud": []string{"other", signupTestAudience}}}), ""},
		{"aud list without ours", mint(marketplacetest.TokenParams{Extra: map[string]any{"aud": []string{"other", "more"}}}), verify.ErrTokenAudience},
		{"no google claim", mint(marketplacetest.TokenParams{Omit: []string{"google"}}), ""},
		{"numeric user_identity, roles as a string", mint(marketplacetest.TokenParams{Google: map[string]any{"user_identity": 1234567890123, "roles": "account_admin"}}), ""},
		{"roles of the wrong type", mint(marketplacetest.TokenParams{Google: map[string]any{"roles": map[string]any{}}}), verify.ErrTokenMalformed},
	}
	for _, tc := range cases {
		_, err := e.v.Verify(context.Background(), tc.token)
		if tc.want == "" {
			assert.NoError(t, err, tc.name)
			continue
		}
		if assert.Error(t, err, tc.name) {
			var te *verify.TokenError
			if assert.ErrorAs(t, err, &te, tc.name) {
				assert.Equal(t, tc.want, te.Reason, "%s: %v", tc.name, err)
			}
		}
	}
}

func TestVerifySignupTokenClaimsShapes(t *testing.T) {
	t.Parallel()
	e := newSignupTestEnv(t)
	tok := e.s.SignupToken(marketplacetest.TokenParams{
		Subject: signupTestAccount, Audience: signupTestAudience,
		Google: map[string]any{"user_identity": 1234567890123, "roles": "account_admin", "orders": []string{"order-1", "order-2"}},
	})
	c, err := e.v.Verify(context.Background(), tok)
	require.NoError(t, err)
	assert.Equal(t, "1234567890123", c.UserIdentity)
	assert.Equal(t, []string{"account_admin"}, c.Roles)
	assert.Equal(t, []string{"order-1", "order-2"}, c.Orders)

	// Top-level orders, and an orders claim of an unexpected shape.
	tok = e.s.SignupToken(marketplacetest.TokenParams{
		Subject: signupTestAccount, Audience: signupTestAudience,
		Extra: map[string]any{"orders": []string{"order-3"}},
	})
	c, err = e.v.Verify(context.Background(), tok)
	require.NoError(t, err)
	assert.Equal(t, []string{"order-3"}, c.Orders)

	tok = e.s.SignupToken(marketplacetest.TokenParams{
		Subject: signupTestAccount, Audience: signupTestAudience,
		Google: map[string]any{"user_identity": "u", "orders": map[string]any{"id": "x"}},
	})
	c, err = e.v.Verify(context.Background(), tok)
	require.NoError(t, err)
	assert.Nil(t, c.Orders)
}

func TestVerifySignupTokenKeyRotation(t *testing.T) {
	t.Parallel()
	e := newSignupTestEnv(t)
	ctx := context.Background()
	old := e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})
	_, err := e.v.Verify(ctx, old)
	require.NoError(t, err)
	e.requireOnlyCertsFetched(t, 1)

	// Google rotates some time later: tokens carry a kid the cache lacks.
	e.s.Clock().Advance(time.Minute)
	require.NoError(t, e.s.RotateSignupKey())
	fresh := e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})
	_, err = e.v.Verify(ctx, fresh)
	require.NoError(t, err, "unknown kid -> one refresh -> verified")
	e.requireOnlyCertsFetched(t, 2)

	// The previous key is still served and still verifies; no more fetches.
	old = e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience}) // new key now
	_, err = e.v.Verify(ctx, old)
	require.NoError(t, err)
	e.requireOnlyCertsFetched(t, 2)
}

func TestVerifySignupTokenRotationWithinRefreshInterval(t *testing.T) {
	t.Parallel()
	e := newSignupTestEnv(t)
	ctx := context.Background()
	_, err := e.v.Verify(ctx, e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience}))
	require.NoError(t, err)

	// A kid that appears less than 30 s after the last fetch waits for the
	// next allowed refresh.
	require.NoError(t, e.s.RotateSignupKey())
	tok := e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})
	_, err = e.v.Verify(ctx, tok)
	requireAuthReason(t, err, verify.ErrTokenUnknownKey)
	e.requireOnlyCertsFetched(t, 1)

	e.s.Clock().Advance(30 * time.Second)
	_, err = e.v.Verify(ctx, tok)
	require.NoError(t, err)
	e.requireOnlyCertsFetched(t, 2)
}

func TestVerifySignupTokenRefreshRateLimit(t *testing.T) {
	t.Parallel()
	e := newSignupTestEnv(t)
	ctx := context.Background()
	unknownKid := func(i int) string {
		t.Helper()
		tok := e.s.SignupToken(marketplacetest.TokenParams{
			Subject: signupTestAccount, Audience: signupTestAudience,
			ForeignKey: true, KeyID: fmt.Sprintf("%040d", i),
		})
		return tok
	}

	// 100 tokens with made-up kids, sequential then concurrent: one fetch.
	for i := range 50 {
		_, err := e.v.Verify(ctx, unknownKid(i))
		requireAuthReason(t, err, verify.ErrTokenUnknownKey)
	}
	toks := make([]string, 50)
	for i := range toks {
		toks[i] = unknownKid(100 + i)
	}
	var wg sync.WaitGroup
	for _, tok := range toks {
		wg.Go(func() {
			_, err := e.v.Verify(ctx, tok)
			assert.ErrorIs(t, err, verify.ErrTokenUnknownKey)
		})
	}
	wg.Wait()
	e.requireOnlyCertsFetched(t, 1)

	// Each further interval allows one more fetch, however many tokens.
	for round := 2; round <= 4; round++ {
		e.s.Clock().Advance(30 * time.Second)
		for i := range 20 {
			_, err := e.v.Verify(ctx, unknownKid(1000*round+i))
			requireAuthReason(t, err, verify.ErrTokenUnknownKey)
		}
		e.requireOnlyCertsFetched(t, round)
	}
}

func TestVerifySignupTokenKeysUnavailable(t *testing.T) {
	t.Parallel()
	e := newSignupTestEnv(t)
	ctx := context.Background()
	e.log.setDown(true)
	tok := e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})

	_, err := e.v.Verify(ctx, tok)
	requireAuthReason(t, err, verify.ErrKeysUnavailable)
	var te *verify.TokenError
	require.ErrorAs(t, err, &te)
	assert.True(t, te.Retryable())

	// The endpoint comes back; after the refresh interval the same token
	// verifies.
	e.log.setDown(false)
	_, err = e.v.Verify(ctx, tok)
	requireAuthReason(t, err, verify.ErrKeysUnavailable)
	e.s.Clock().Advance(30 * time.Second)
	_, err = e.v.Verify(ctx, tok)
	require.NoError(t, err)
	e.requireOnlyCertsFetched(t, 2)

	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		v, err := verify.NewSignupVerifier([]string{signupTestAudience},
			&verify.Config{Runtime: gcpmarketplace.Runtime{Clock: e.s.Clock().Now}, SignupCertsURL: dead.URL})
		require.NoError(t, err)
		_, err = v.Verify(ctx, tok)
		requireAuthReason(t, err, verify.ErrKeysUnavailable)
	})
	t.Run("context cancelled", func(t *testing.T) {
		t.Parallel()
		e := newSignupTestEnv(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := e.v.Verify(cctx, e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience}))
		requireAuthReason(t, err, verify.ErrKeysUnavailable)
		assert.ErrorIs(t, err, context.Canceled)
	})
}

func TestVerifySignupTokenExpiresPerEmulatorClock(t *testing.T) {
	t.Parallel()
	e := newSignupTestEnv(t)
	ctx := context.Background()
	tok := e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})
	_, err := e.v.Verify(ctx, tok)
	require.NoError(t, err)

	e.s.Clock().Advance(marketplacetest.SignupTokenLifetime + 29*time.Second)
	_, err = e.v.Verify(ctx, tok)
	require.NoError(t, err, "within the 30 s leeway")

	e.s.Clock().Advance(2 * time.Second)
	_, err = e.v.Verify(ctx, tok)
	requireAuthReason(t, err, verify.ErrTokenExpired)

	t.Run("zero leeway", func(t *testing.T) {
		t.Parallel()
		e := newSignupTestEnv(t, func(c *verify.Config) { c.Leeway = -1 }) // none
		tok := e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})
		e.s.Clock().Advance(marketplacetest.SignupTokenLifetime)
		_, err := e.v.Verify(ctx, tok)
		requireAuthReason(t, err, verify.ErrTokenExpired)
	})
}

func TestVerifySignupTokenMultipleAudiences(t *testing.T) {
	t.Parallel()
	s := marketplacetest.New(t)
	v, err := verify.NewSignupVerifier(
		[]string{"old-name.example.com", signupTestAudience},
		&verify.Config{Runtime: gcpmarketplace.Runtime{Clock: s.Clock().Now}, SignupCertsURL: s.CertsURL()})
	require.NoError(t, err)
	ctx := context.Background()

	for _, aud := range []string{"old-name.example.com", signupTestAudience} {
		c, err := v.Verify(ctx, s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: aud}))
		require.NoError(t, err, aud)
		assert.Equal(t, aud, c.Audience)
	}
	_, err = v.Verify(ctx, s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: "third.example.com"}))
	requireAuthReason(t, err, verify.ErrTokenAudience)
}

func TestNewSignupVerifierRefusesBadConfig(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		aud []string
		cfg *verify.Config
	}{
		"no audience":            {nil, nil},
		"empty audience":         {[]string{"a", " "}, nil},
		"plain http key URL":     {[]string{"a"}, &verify.Config{SignupCertsURL: "http://certs.example.com/x"}},
		"leeway above token TTL": {[]string{"a"}, &verify.Config{Leeway: 10 * time.Minute}},
	}
	for name, tc := range cases {
		_, err := verify.NewSignupVerifier(tc.aud, tc.cfg)
		assert.Error(t, err, name)
	}
	v, err := verify.NewSignupVerifier([]string{"a"}, nil)
	require.NoError(t, err)
	require.NotNil(t, v)
}

func FuzzVerifySignupToken(f *testing.F) {
	s := marketplacetest.New(nil)
	f.Cleanup(func() { _ = s.Close() })
	f.Add(s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience}))
	for _, kind := range marketplacetest.SignupAttackTokens() {
		if kind == marketplacetest.BadTokenOversize {
			continue
		}
		tok, err := s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience, Bad: kind}), error(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok)
	}
	for _, seed := range []string{"", ".", "..", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30.", "eyJhbGciOiJub25lIn0.eyJpc3MiOjF9.", "e30.e30.e30"} {
		f.Add(seed)
	}
	v, err := verify.NewSignupVerifier([]string{signupTestAudience},
		&verify.Config{Runtime: gcpmarketplace.Runtime{Clock: s.Clock().Now}, SignupCertsURL: s.CertsURL()})
	if err != nil {
		f.Fatal(err)
	}
	good := s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Verify(context.Background(), token)
		if err == nil {
			// Only the genuine token verifies, in its one spelling: the
			// fuzzer can neither forge a token nor re-spell this one.
			if token != good {
				t.Fatalf("fuzzed token verified: %q", token)
			}
			if !procurement.ValidID(c.AccountID) {
				t.Fatalf("verified token with account id %q", c.AccountID)
			}
			return
		}
		requireFuzzTokenError(t, err)
	})
}

// BenchmarkVerifySignupToken measures a verification with the keys cached;
// BenchmarkVerifySignupTokenBaselineJWT is the bare jwt/v5 parse with the
// same key and checks, without the pre-checks, typed errors or cache.
func BenchmarkVerifySignupToken(b *testing.B) {
	s, v := signupBenchSetup(b)
	tok := s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifySignupTokenBaselineJWT(b *testing.B) {
	s, _ := signupBenchSetup(b)
	tok := s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})
	key := signupBenchKey(b, s)
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(verify.SignupIssuer),
		jwt.WithAudience(signupTestAudience), jwt.WithLeeway(30*time.Second), jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(s.Clock().Now))
	keyfunc := func(*jwt.Token) (any, error) { return key, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parser.ParseWithClaims(tok, jwt.MapClaims{}, keyfunc); err != nil {
			b.Fatal(err)
		}
	}
}

func signupBenchSetup(b *testing.B) (*marketplacetest.Server, *verify.SignupVerifier) {
	b.Helper()
	s := marketplacetest.New(b)
	v, err := verify.NewSignupVerifier([]string{signupTestAudience},
		&verify.Config{Runtime: gcpmarketplace.Runtime{Clock: s.Clock().Now}, SignupCertsURL: s.CertsURL()})
	require.NoError(b, err)
	return s, v
}

// signupBenchKey fetches the emulator's current sign-up public key.
func signupBenchKey(b *testing.B, s *marketplacetest.Server) *rsa.PublicKey {
	b.Helper()
	s.SignupToken(marketplacetest.TokenParams{Subject: "warm-up", Audience: "x"}) // make sure a key exists
	return benchCertKey(b, s.CertsURL())
}

// benchCertKey fetches the first key of a {kid: PEM certificate} map.
func benchCertKey(b *testing.B, certsURL string) *rsa.PublicKey {
	b.Helper()
	resp, err := http.Get(certsURL)
	require.NoError(b, err)
	defer resp.Body.Close()
	var certs map[string]string
	require.NoError(b, json.NewDecoder(resp.Body).Decode(&certs))
	for _, c := range certs {
		key, err := jwt.ParseRSAPublicKeyFromPEM([]byte(c))
		require.NoError(b, err)
		return key
	}
	b.Fatal("no key served")
	return nil
}
