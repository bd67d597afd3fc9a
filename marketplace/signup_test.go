package marketplace_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
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
	v   *marketplace.SignupVerifier
}

func newSignupTestEnv(t *testing.T, opts ...marketplace.SignupOption) signupTestEnv {
	t.Helper()
	s := marketplacetest.New(t)
	rl := &authRequestLog{}
	opts = append([]marketplace.SignupOption{
		marketplace.WithSignupCertsURL(s.CertsURL()),
		marketplace.WithSignupHTTPClient(&http.Client{Transport: rl}),
		marketplace.WithSignupClock(s.Clock().Now),
	}, opts...)
	v, err := marketplace.NewSignupVerifier([]string{signupTestAudience}, opts...)
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

func requireAuthReason(t *testing.T, err error, want marketplace.TokenReason) {
	t.Helper()
	require.Error(t, err)
	var te *marketplace.TokenError
	require.ErrorAs(t, err, &te, "not a *TokenError: %v", err)
	require.Equal(t, want, te.Reason, "error: %v", err)
	require.ErrorIs(t, err, want)
}

func TestVerifySignupTokenGood(t *testing.T) {
	t.Parallel()
	e := newSignupTestEnv(t)
	now := e.s.Clock().Now()
	tok := e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})

	c, err := e.v.VerifySignupToken(context.Background(), tok)
	require.NoError(t, err)
	assert.Equal(t, signupTestAccount, c.AccountID)
	assert.NotEmpty(t, c.UserIdentity)
	assert.Equal(t, []string{"account_admin"}, c.Roles)
	assert.Nil(t, c.Orders)
	assert.Equal(t, signupTestAudience, c.Audience)
	assert.True(t, c.IssuedAt.Equal(now.Truncate(time.Second)), "iat %v", c.IssuedAt)
	assert.Equal(t, marketplacetest.SignupTokenLifetime, c.ExpiresAt.Sub(c.IssuedAt))

	// A second token is verified from the cache.
	_, err = e.v.VerifySignupToken(context.Background(), e.s.SignupToken(marketplacetest.TokenParams{Subject: "acct-2", Audience: signupTestAudience}))
	require.NoError(t, err)
	e.requireOnlyCertsFetched(t, 1)
}

// signupAttackReasons is the reason each emulator attack token must be
// refused with.
var signupAttackReasons = map[marketplacetest.BadToken]marketplace.TokenReason{
	marketplacetest.BadTokenAlgNone:          marketplace.ErrTokenAlgorithm,
	marketplacetest.BadTokenHS256PublicKey:   marketplace.ErrTokenAlgorithm,
	marketplacetest.BadTokenWrongIssuer:      marketplace.ErrTokenIssuer,
	marketplacetest.BadTokenAttackerIssuer:   marketplace.ErrTokenIssuer,
	marketplacetest.BadTokenWrongAudience:    marketplace.ErrTokenAudience,
	marketplacetest.BadTokenExpired:          marketplace.ErrTokenExpired,
	marketplacetest.BadTokenIssuedInFuture:   marketplace.ErrTokenIssuedInFuture,
	marketplacetest.BadTokenEmptySubject:     marketplace.ErrTokenSubject,
	marketplacetest.BadTokenUnknownKeyID:     marketplace.ErrTokenUnknownKey,
	marketplacetest.BadTokenForeignKey:       marketplace.ErrTokenSignature,
	marketplacetest.BadTokenTamperedPayload:  marketplace.ErrTokenSignature,
	marketplacetest.BadTokenTruncated:        marketplace.ErrTokenMalformed,
	marketplacetest.BadTokenOversize:         marketplace.ErrTokenTooLarge,
	marketplacetest.BadTokenCritHeader:       marketplace.ErrTokenMalformed,
	marketplacetest.BadTokenSignatureNewline: marketplace.ErrTokenMalformed,
	marketplacetest.BadTokenSignatureLowBits: marketplace.ErrTokenMalformed,
	marketplacetest.BadTokenLongLifetime:     marketplace.ErrTokenLifetime,
	marketplacetest.BadTokenStringExpiry:     marketplace.ErrTokenMalformed,
	marketplacetest.BadTokenSubjectPath:      marketplace.ErrTokenSubject,
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

		c, err := e.v.VerifySignupToken(ctx, tok)
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
		_, err := e.v.VerifySignupToken(context.Background(), tok)
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
		want  marketplace.TokenReason // "" = accepted
	}{
		{"empty", "", marketplace.ErrTokenMissing},
		{"one segment", "abc", marketplace.ErrTokenMalformed},
		{"two segments", header + "." + strings.Split(payload, ".")[0], marketplace.ErrTokenMalformed},
		{"four segments", good + ".x", marketplace.ErrTokenMalformed},
		{"header not base64", "!!!." + payload, marketplace.ErrTokenMalformed},
		{"header not JSON", "bm90IGpzb24." + payload, marketplace.ErrTokenMalformed},
		{"alg not a string", "eyJhbGciOjF9." + payload, marketplace.ErrTokenMalformed},
		{"unknown alg", "eyJhbGciOiJYWVoifQ." + payload, marketplace.ErrTokenAlgorithm},
		{"exactly MaxTokenSize of junk", strings.Repeat("a", marketplace.MaxTokenSize), marketplace.ErrTokenMalformed},
		{"MaxTokenSize+1", strings.Repeat("a", marketplace.MaxTokenSize+1), marketplace.ErrTokenTooLarge},
		{"no exp", mint(marketplacetest.TokenParams{Omit: []string{"exp"}}), marketplace.ErrTokenMalformed},
		{"no iat", mint(marketplacetest.TokenParams{Omit: []string{"iat"}}), marketplace.ErrTokenMalformed},
		{"no aud", mint(marketplacetest.TokenParams{Omit: []string{"aud"}}), marketplace.ErrTokenAudience},
		{"no sub", mint(marketplacetest.TokenParams{Omit: []string{"sub"}}), marketplace.ErrTokenSubject},
		{"no iss", mint(marketplacetest.TokenParams{Omit: []string{"iss"}}), marketplace.ErrTokenIssuer},
		{"iss with trailing slash", mint(marketplacetest.TokenParams{Issuer: marketplace.SignupIssuer + "/"}), marketplace.ErrTokenIssuer},
		{"iss not a string", mint(marketplacetest.TokenParams{Extra: map[string]any{"iss": 7}}), marketplace.ErrTokenMalformed},
		{"exp not a number", mint(marketplacetest.TokenParams{Extra: map[string]any{"exp": "soon"}}), marketplace.ErrTokenMalformed},
		{"kid not served", mint(marketplacetest.TokenParams{KeyID: "-"}), marketplace.ErrTokenUnknownKey},
		{"no kid header", "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9." + payload, marketplace.ErrTokenUnknownKey},
		{"iat 29s ahead (skew)", mint(marketplacetest.TokenParams{IssuedAt: now.Add(29 * time.Second)}), ""},
		{"iat 31s ahead", mint(marketplacetest.TokenParams{IssuedAt: now.Add(31 * time.Second)}), marketplace.ErrTokenIssuedInFuture},
		{"exp 29s ago (skew)", mint(marketplacetest.TokenParams{IssuedAt: now.Add(-5 * time.Minute), ExpiresAt: now.Add(-29 * time.Second)}), ""},
		{"exp 31s ago", mint(marketplacetest.TokenParams{IssuedAt: now.Add(-5 * time.Minute), ExpiresAt: now.Add(-31 * time.Second)}), marketplace.ErrTokenExpired},
		{"nbf in the future", mint(marketplacetest.TokenParams{Extra: map[string]any{"nbf": now.Add(time.Hour).Unix()}}), marketplace.ErrTokenIssuedInFuture},
		{"expired and wrong aud: expiry wins", mint(marketplacetest.TokenParams{Audience: "other", ExpiresAt: now.Add(-time.Hour), IssuedAt: now.Add(-2 * time.Hour)}), marketplace.ErrTokenExpired},
		{"aud list containing ours", mint(marketplacetest.TokenParams{Extra: map[string]any{"aud": []string{"other", signupTestAudience}}}), ""},
		{"aud list without ours", mint(marketplacetest.TokenParams{Extra: map[string]any{"aud": []string{"other", "more"}}}), marketplace.ErrTokenAudience},
		{"no google claim", mint(marketplacetest.TokenParams{Omit: []string{"google"}}), ""},
		{"numeric user_identity, roles as a string", mint(marketplacetest.TokenParams{Google: map[string]any{"user_identity": 1234567890123, "roles": "account_admin"}}), ""},
		{"roles of the wrong type", mint(marketplacetest.TokenParams{Google: map[string]any{"roles": map[string]any{}}}), marketplace.ErrTokenMalformed},
	}
	for _, tc := range cases {
		_, err := e.v.VerifySignupToken(context.Background(), tc.token)
		if tc.want == "" {
			assert.NoError(t, err, tc.name)
			continue
		}
		if assert.Error(t, err, tc.name) {
			var te *marketplace.TokenError
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
	c, err := e.v.VerifySignupToken(context.Background(), tok)
	require.NoError(t, err)
	assert.Equal(t, "1234567890123", c.UserIdentity)
	assert.Equal(t, []string{"account_admin"}, c.Roles)
	assert.Equal(t, []string{"order-1", "order-2"}, c.Orders)

	// Top-level orders, and an orders claim of an unexpected shape.
	tok = e.s.SignupToken(marketplacetest.TokenParams{
		Subject: signupTestAccount, Audience: signupTestAudience,
		Extra: map[string]any{"orders": []string{"order-3"}},
	})
	c, err = e.v.VerifySignupToken(context.Background(), tok)
	require.NoError(t, err)
	assert.Equal(t, []string{"order-3"}, c.Orders)

	tok = e.s.SignupToken(marketplacetest.TokenParams{
		Subject: signupTestAccount, Audience: signupTestAudience,
		Google: map[string]any{"user_identity": "u", "orders": map[string]any{"id": "x"}},
	})
	c, err = e.v.VerifySignupToken(context.Background(), tok)
	require.NoError(t, err)
	assert.Nil(t, c.Orders)
}

func TestVerifySignupTokenKeyRotation(t *testing.T) {
	t.Parallel()
	e := newSignupTestEnv(t)
	ctx := context.Background()
	old := e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})
	_, err := e.v.VerifySignupToken(ctx, old)
	require.NoError(t, err)
	e.requireOnlyCertsFetched(t, 1)

	// Google rotates some time later: tokens carry a kid the cache lacks.
	e.s.Clock().Advance(time.Minute)
	require.NoError(t, e.s.RotateSignupKey())
	fresh := e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})
	_, err = e.v.VerifySignupToken(ctx, fresh)
	require.NoError(t, err, "unknown kid -> one refresh -> verified")
	e.requireOnlyCertsFetched(t, 2)

	// The previous key is still served and still verifies; no more fetches.
	old = e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience}) // new key now
	_, err = e.v.VerifySignupToken(ctx, old)
	require.NoError(t, err)
	e.requireOnlyCertsFetched(t, 2)
}

func TestVerifySignupTokenRotationWithinRefreshInterval(t *testing.T) {
	t.Parallel()
	e := newSignupTestEnv(t)
	ctx := context.Background()
	_, err := e.v.VerifySignupToken(ctx, e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience}))
	require.NoError(t, err)

	// A kid that appears less than 30 s after the last fetch waits for the
	// next allowed refresh.
	require.NoError(t, e.s.RotateSignupKey())
	tok := e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})
	_, err = e.v.VerifySignupToken(ctx, tok)
	requireAuthReason(t, err, marketplace.ErrTokenUnknownKey)
	e.requireOnlyCertsFetched(t, 1)

	e.s.Clock().Advance(30 * time.Second)
	_, err = e.v.VerifySignupToken(ctx, tok)
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
		_, err := e.v.VerifySignupToken(ctx, unknownKid(i))
		requireAuthReason(t, err, marketplace.ErrTokenUnknownKey)
	}
	toks := make([]string, 50)
	for i := range toks {
		toks[i] = unknownKid(100 + i)
	}
	var wg sync.WaitGroup
	for _, tok := range toks {
		wg.Go(func() {
			_, err := e.v.VerifySignupToken(ctx, tok)
			assert.ErrorIs(t, err, marketplace.ErrTokenUnknownKey)
		})
	}
	wg.Wait()
	e.requireOnlyCertsFetched(t, 1)

	// Each further interval allows one more fetch, however many tokens.
	for round := 2; round <= 4; round++ {
		e.s.Clock().Advance(30 * time.Second)
		for i := range 20 {
			_, err := e.v.VerifySignupToken(ctx, unknownKid(1000*round+i))
			requireAuthReason(t, err, marketplace.ErrTokenUnknownKey)
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

	_, err := e.v.VerifySignupToken(ctx, tok)
	requireAuthReason(t, err, marketplace.ErrKeysUnavailable)
	var te *marketplace.TokenError
	require.ErrorAs(t, err, &te)
	assert.True(t, te.Retryable())

	// The endpoint comes back; after the refresh interval the same token
	// verifies.
	e.log.setDown(false)
	_, err = e.v.VerifySignupToken(ctx, tok)
	requireAuthReason(t, err, marketplace.ErrKeysUnavailable)
	e.s.Clock().Advance(30 * time.Second)
	_, err = e.v.VerifySignupToken(ctx, tok)
	require.NoError(t, err)
	e.requireOnlyCertsFetched(t, 2)

	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		v, err := marketplace.NewSignupVerifier([]string{signupTestAudience},
			marketplace.WithSignupCertsURL(dead.URL), marketplace.WithSignupClock(e.s.Clock().Now))
		require.NoError(t, err)
		_, err = v.VerifySignupToken(ctx, tok)
		requireAuthReason(t, err, marketplace.ErrKeysUnavailable)
	})
	t.Run("context cancelled", func(t *testing.T) {
		t.Parallel()
		e := newSignupTestEnv(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := e.v.VerifySignupToken(cctx, e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience}))
		requireAuthReason(t, err, marketplace.ErrKeysUnavailable)
		assert.ErrorIs(t, err, context.Canceled)
	})
}

func TestVerifySignupTokenExpiresPerEmulatorClock(t *testing.T) {
	t.Parallel()
	e := newSignupTestEnv(t)
	ctx := context.Background()
	tok := e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})
	_, err := e.v.VerifySignupToken(ctx, tok)
	require.NoError(t, err)

	e.s.Clock().Advance(marketplacetest.SignupTokenLifetime + 29*time.Second)
	_, err = e.v.VerifySignupToken(ctx, tok)
	require.NoError(t, err, "within the 30 s leeway")

	e.s.Clock().Advance(2 * time.Second)
	_, err = e.v.VerifySignupToken(ctx, tok)
	requireAuthReason(t, err, marketplace.ErrTokenExpired)

	t.Run("zero leeway", func(t *testing.T) {
		t.Parallel()
		e := newSignupTestEnv(t, marketplace.WithSignupLeeway(0))
		tok := e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})
		e.s.Clock().Advance(marketplacetest.SignupTokenLifetime)
		_, err := e.v.VerifySignupToken(ctx, tok)
		requireAuthReason(t, err, marketplace.ErrTokenExpired)
	})
}

func TestVerifySignupTokenMultipleAudiences(t *testing.T) {
	t.Parallel()
	s := marketplacetest.New(t)
	v, err := marketplace.NewSignupVerifier(
		[]string{"old-name.example.com", signupTestAudience},
		marketplace.WithSignupCertsURL(s.CertsURL()), marketplace.WithSignupClock(s.Clock().Now))
	require.NoError(t, err)
	ctx := context.Background()

	for _, aud := range []string{"old-name.example.com", signupTestAudience} {
		c, err := v.VerifySignupToken(ctx, s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: aud}))
		require.NoError(t, err, aud)
		assert.Equal(t, aud, c.Audience)
	}
	_, err = v.VerifySignupToken(ctx, s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: "third.example.com"}))
	requireAuthReason(t, err, marketplace.ErrTokenAudience)
}

func TestNewSignupVerifierRefusesBadConfig(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		aud  []string
		opts []marketplace.SignupOption
	}{
		"no audience":            {nil, nil},
		"empty audience":         {[]string{"a", " "}, nil},
		"plain http key URL":     {[]string{"a"}, []marketplace.SignupOption{marketplace.WithSignupCertsURL("http://certs.example.com/x")}},
		"negative leeway":        {[]string{"a"}, []marketplace.SignupOption{marketplace.WithSignupLeeway(-time.Second)}},
		"leeway above token TTL": {[]string{"a"}, []marketplace.SignupOption{marketplace.WithSignupLeeway(10 * time.Minute)}},
	}
	for name, tc := range cases {
		_, err := marketplace.NewSignupVerifier(tc.aud, tc.opts...)
		assert.Error(t, err, name)
	}
	v, err := marketplace.NewSignupVerifier([]string{"a"})
	require.NoError(t, err)
	require.NotNil(t, v)
}

// signupHandlerEnv serves SignupHandler with a next that records claims,
// and captures the verifier's log.
type signupHandlerEnv struct {
	signupTestEnv
	srv    *httptest.Server
	logBuf *signupLogBuffer
	mu     sync.Mutex
	got    []marketplace.SignupClaims
}

type signupLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *signupLogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *signupLogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newSignupHandlerEnv(t *testing.T) *signupHandlerEnv {
	t.Helper()
	buf := &signupLogBuffer{}
	h := &signupHandlerEnv{logBuf: buf}
	h.signupTestEnv = newSignupTestEnv(t, marketplace.WithSignupLogger(slog.New(slog.NewTextHandler(buf, nil))))
	h.srv = httptest.NewServer(marketplace.SignupHandler(h.v, func(w http.ResponseWriter, r *http.Request, c marketplace.SignupClaims) {
		h.mu.Lock()
		h.got = append(h.got, c)
		h.mu.Unlock()
		fmt.Fprintf(w, "welcome %s", c.AccountID)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *signupHandlerEnv) do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := h.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func (h *signupHandlerEnv) postForm(t *testing.T, form url.Values) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.srv.URL, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

func TestSignupHandler(t *testing.T) {
	t.Parallel()
	h := newSignupHandlerEnv(t)
	good := h.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})
	expired := h.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience, Bad: marketplacetest.BadTokenExpired})
	forged := h.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience, Bad: marketplacetest.BadTokenForeignKey})
	oversize := h.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience, Bad: marketplacetest.BadTokenOversize})

	multipartReq := func(tok string) *http.Request {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		require.NoError(t, mw.WriteField(marketplace.SignupTokenField, tok))
		require.NoError(t, mw.Close())
		req, err := http.NewRequest(http.MethodPost, h.srv.URL, &b)
		require.NoError(t, err)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		return req
	}
	headerReq := func(method, tok string) *http.Request {
		req, err := http.NewRequest(method, h.srv.URL, nil)
		require.NoError(t, err)
		req.Header.Set(marketplace.SignupTokenField, tok)
		return req
	}
	queryReq, err := http.NewRequest(http.MethodPost, h.srv.URL+"?"+url.Values{marketplace.SignupTokenField: {good}}.Encode(), nil)
	require.NoError(t, err)
	bigBody := h.postForm(t, url.Values{marketplace.SignupTokenField: {good}, "padding": {strings.Repeat("x", 100<<10)}})
	badForm, err := http.NewRequest(http.MethodPost, h.srv.URL, strings.NewReader("%zz"))
	require.NoError(t, err)
	badForm.Header.Set("Content-Type", "application/x-www-form-urlencoded")

	cases := []struct {
		name     string
		req      *http.Request
		wantCode int
		wantBody string
	}{
		{"form field", h.postForm(t, url.Values{marketplace.SignupTokenField: {good}}), 200, "welcome " + signupTestAccount},
		{"multipart form field", multipartReq(good), 200, "welcome " + signupTestAccount},
		{"header", headerReq(http.MethodPost, good), 200, "welcome " + signupTestAccount},
		{"form field wins over header", func() *http.Request {
			r := h.postForm(t, url.Values{marketplace.SignupTokenField: {good}})
			r.Header.Set(marketplace.SignupTokenField, expired)
			return r
		}(), 200, "welcome"},
		{"missing", h.postForm(t, url.Values{"other": {"x"}}), 400, "token missing"},
		{"query string is not read", queryReq, 400, "token missing"},
		{"malformed", h.postForm(t, url.Values{marketplace.SignupTokenField: {"not-a-jwt"}}), 400, "token malformed"},
		{"oversize token in the form", h.postForm(t, url.Values{marketplace.SignupTokenField: {oversize}}), 413, "too large"},
		{"oversize token in the header", headerReq(http.MethodPost, oversize), 400, "token too large"},
		{"expired", h.postForm(t, url.Values{marketplace.SignupTokenField: {expired}}), 401, "token expired"},
		{"forged", headerReq(http.MethodPost, forged), 401, "signature invalid"},
		{"body too large", bigBody, 413, "too large"},
		{"unparseable form", badForm, 400, "malformed sign-up request"},
		{"GET", headerReq(http.MethodGet, good), 405, "POST"},
	}
	for _, tc := range cases {
		code, body := h.do(t, tc.req)
		assert.Equal(t, tc.wantCode, code, "%s: %s", tc.name, body)
		assert.Contains(t, body, tc.wantBody, tc.name)
		assert.Less(t, len(body), 200, "%s: short body", tc.name)
	}
	h.mu.Lock()
	assert.Len(t, h.got, 4, "next runs only for verified tokens")
	assert.Equal(t, signupTestAccount, h.got[0].AccountID)
	assert.NotEmpty(t, h.got[0].UserIdentity)
	h.mu.Unlock()

	logs := h.logBuf.String()
	assert.Contains(t, logs, "reason=\"token expired\"")
	assert.Contains(t, logs, "reason=\"token signature invalid\"")
	for _, tok := range []string{good, expired, forged} {
		for _, part := range strings.Split(tok, ".") {
			assert.NotContains(t, logs, part, "a token segment leaked into the log")
		}
	}
}

func TestSignupHandlerKeysUnavailable(t *testing.T) {
	t.Parallel()
	h := newSignupHandlerEnv(t)
	h.log.setDown(true)
	req := h.postForm(t, url.Values{marketplace.SignupTokenField: {h.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})}})
	resp, err := h.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "30", resp.Header.Get("Retry-After"))
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
}

func TestSignupHandlerPanicsOnNil(t *testing.T) {
	t.Parallel()
	v, err := marketplace.NewSignupVerifier([]string{"a"})
	require.NoError(t, err)
	assert.Panics(t, func() {
		marketplace.SignupHandler(nil, func(http.ResponseWriter, *http.Request, marketplace.SignupClaims) {})
	})
	assert.Panics(t, func() { marketplace.SignupHandler(v, nil) })
}

func FuzzVerifySignupToken(f *testing.F) {
	s := marketplacetest.New(f)
	f.Add(s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience}))
	for _, kind := range marketplacetest.SignupAttackTokens() {
		if kind == marketplacetest.BadTokenOversize {
			continue
		}
		f.Add(s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience, Bad: kind}))
	}
	for _, seed := range []string{"", ".", "..", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30.", "eyJhbGciOiJub25lIn0.eyJpc3MiOjF9.", "e30.e30.e30"} {
		f.Add(seed)
	}
	v, err := marketplace.NewSignupVerifier([]string{signupTestAudience},
		marketplace.WithSignupCertsURL(s.CertsURL()), marketplace.WithSignupClock(s.Clock().Now))
	if err != nil {
		f.Fatal(err)
	}
	good := s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.VerifySignupToken(context.Background(), token)
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
	if _, err := v.VerifySignupToken(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.VerifySignupToken(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifySignupTokenBaselineJWT(b *testing.B) {
	s, _ := signupBenchSetup(b)
	tok := s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})
	key := signupBenchKey(b, s)
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(marketplace.SignupIssuer),
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

func signupBenchSetup(b *testing.B) (*marketplacetest.Server, *marketplace.SignupVerifier) {
	b.Helper()
	s := marketplacetest.New(b)
	v, err := marketplace.NewSignupVerifier([]string{signupTestAudience},
		marketplace.WithSignupCertsURL(s.CertsURL()), marketplace.WithSignupClock(s.Clock().Now))
	require.NoError(b, err)
	return s, v
}

// signupBenchKey fetches the emulator's current sign-up public key.
func signupBenchKey(b *testing.B, s *marketplacetest.Server) *rsa.PublicKey {
	b.Helper()
	s.SignupToken(marketplacetest.TokenParams{Subject: "warm-up", Audience: "x"}) // make sure a key exists
	resp, err := http.Get(s.CertsURL())
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
