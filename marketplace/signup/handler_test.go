package signup_test

import (
	"bytes"
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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/signup"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
)

const (
	signupTestAudience = "example-service.endpoints.acme-provider.cloud.goog"
	signupTestAccount  = "acct-1"
)

// keyOutage is an http.RoundTripper that can make the key endpoint fail.
type keyOutage struct {
	mu   sync.Mutex
	down bool // answer 503 without forwarding
}

func (l *keyOutage) RoundTrip(r *http.Request) (*http.Response, error) {
	l.mu.Lock()
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

func (l *keyOutage) setDown(down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = down
}

// signupTestEnv is an emulator plus a verifier that fetches keys from it
// and reads the emulator's clock.
type signupTestEnv struct {
	s   *marketplacetest.Server
	log *keyOutage
	v   *verify.SignupVerifier
}

func newSignupTestEnv(t *testing.T) signupTestEnv {
	t.Helper()
	s := marketplacetest.New(t)
	rl := &keyOutage{}
	v, err := verify.NewSignupVerifier([]string{signupTestAudience}, &verify.Config{
		Runtime:        gcpmarketplace.Runtime{Clock: s.Clock().Now},
		SignupCertsURL: s.CertsURL(),
		HTTPClient:     &http.Client{Transport: rl},
	})
	require.NoError(t, err)
	return signupTestEnv{s: s, log: rl, v: v}
}

// signupHandlerEnv serves Handler with a next that records claims, and
// captures the handler's log.
type signupHandlerEnv struct {
	signupTestEnv
	srv    *httptest.Server
	logBuf *signupLogBuffer
	mu     sync.Mutex
	got    []verify.SignupClaims
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
	h.signupTestEnv = newSignupTestEnv(t)
	cfg := &signup.Config{Runtime: gcpmarketplace.Runtime{Logger: slog.New(slog.NewTextHandler(buf, nil))}}
	h.srv = httptest.NewServer(signup.Handler(h.v, cfg, func(w http.ResponseWriter, r *http.Request, c verify.SignupClaims) {
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

func TestHandler(t *testing.T) {
	t.Parallel()
	h := newSignupHandlerEnv(t)
	good := h.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})
	expired := h.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience, Bad: marketplacetest.BadTokenExpired})
	forged := h.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience, Bad: marketplacetest.BadTokenForeignKey})
	oversize := h.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience, Bad: marketplacetest.BadTokenOversize})

	multipartReq := func(tok string) *http.Request {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		require.NoError(t, mw.WriteField(verify.SignupTokenField, tok))
		require.NoError(t, mw.Close())
		req, err := http.NewRequest(http.MethodPost, h.srv.URL, &b)
		require.NoError(t, err)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		return req
	}
	headerReq := func(method, tok string) *http.Request {
		req, err := http.NewRequest(method, h.srv.URL, nil)
		require.NoError(t, err)
		req.Header.Set(verify.SignupTokenField, tok)
		return req
	}
	queryReq, err := http.NewRequest(http.MethodPost, h.srv.URL+"?"+url.Values{verify.SignupTokenField: {good}}.Encode(), nil)
	require.NoError(t, err)
	bigBody := h.postForm(t, url.Values{verify.SignupTokenField: {good}, "padding": {strings.Repeat("x", 100<<10)}})
	badForm, err := http.NewRequest(http.MethodPost, h.srv.URL, strings.NewReader("%zz"))
	require.NoError(t, err)
	badForm.Header.Set("Content-Type", "application/x-www-form-urlencoded")

	cases := []struct {
		name     string
		req      *http.Request
		wantCode int
		wantBody string
	}{
		{"form field", h.postForm(t, url.Values{verify.SignupTokenField: {good}}), 200, "welcome " + signupTestAccount},
		{"multipart form field", multipartReq(good), 200, "welcome " + signupTestAccount},
		{"header", headerReq(http.MethodPost, good), 200, "welcome " + signupTestAccount},
		{"form field wins over header", func() *http.Request {
			r := h.postForm(t, url.Values{verify.SignupTokenField: {good}})
			r.Header.Set(verify.SignupTokenField, expired)
			return r
		}(), 200, "welcome"},
		{"missing", h.postForm(t, url.Values{"other": {"x"}}), 400, "token missing"},
		{"query string is not read", queryReq, 400, "token missing"},
		{"malformed", h.postForm(t, url.Values{verify.SignupTokenField: {"not-a-jwt"}}), 400, "token malformed"},
		{"oversize token in the form", h.postForm(t, url.Values{verify.SignupTokenField: {oversize}}), 413, "too large"},
		{"oversize token in the header", headerReq(http.MethodPost, oversize), 400, "token too large"},
		{"expired", h.postForm(t, url.Values{verify.SignupTokenField: {expired}}), 401, "token expired"},
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

func TestHandlerKeysUnavailable(t *testing.T) {
	t.Parallel()
	h := newSignupHandlerEnv(t)
	h.log.setDown(true)
	req := h.postForm(t, url.Values{verify.SignupTokenField: {h.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})}})
	resp, err := h.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "30", resp.Header.Get("Retry-After"))
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
}

func TestHandlerPanicsOnNil(t *testing.T) {
	t.Parallel()
	v, err := verify.NewSignupVerifier([]string{"a"}, nil)
	require.NoError(t, err)
	assert.Panics(t, func() {
		signup.Handler(nil, nil, func(http.ResponseWriter, *http.Request, verify.SignupClaims) {})
	})
	assert.Panics(t, func() { signup.Handler(v, nil, nil) })
}
