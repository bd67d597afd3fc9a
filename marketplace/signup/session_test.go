package signup_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/signup"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
)

var (
	sessionKeyA = sessionKey("a")
	sessionKeyB = sessionKey("b")
)

// sessionKey is a test key of MinKeySize bytes, not one byte
// repeated (ParseKeys refuses those).
func sessionKey(seed string) []byte {
	k := sha256.Sum256([]byte(seed))
	return bytes.Repeat(k[:], signup.MinKeySize/len(k)+1)[:signup.MinKeySize]
}

// sessionEnv is the sign-up flow as a vendor mounts it: Begin at /signup,
// Handler at /signup/form, recording the sessions the page received.
type sessionEnv struct {
	signupTestEnv
	rt       gcpmarketplace.Runtime
	store    *memstore.Store
	sessions *signup.Sessions
	srv      *httptest.Server
	mu       sync.Mutex
	got      []signup.Session
}

func newSessionEnv(t testing.TB, keys [][]byte, edits ...func(*signup.Config)) *sessionEnv {
	t.Helper()
	e := &sessionEnv{store: memstore.New()}
	e.s = marketplacetest.New(t)
	e.rt = gcpmarketplace.Runtime{Clock: e.s.Clock().Now}
	var err error
	e.v, err = verify.NewSignupVerifier([]string{signupTestAudience},
		&verify.Config{Runtime: e.rt, SignupCertsURL: e.s.CertsURL()})
	require.NoError(t, err)
	cfg := &signup.Config{Runtime: e.rt}
	for _, edit := range edits {
		edit(cfg)
	}
	e.sessions, err = signup.NewSessions(e.v, e.store, keys, cfg)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("POST /signup", e.sessions.Begin("/signup/form"))
	mux.Handle("/signup/form", e.sessions.Handler(func(w http.ResponseWriter, r *http.Request, s signup.Session) {
		e.mu.Lock()
		e.got = append(e.got, s)
		e.mu.Unlock()
		_, _ = io.WriteString(w, "form for "+s.AccountID)
	}))
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

// begin posts token to /signup as Google's redirect does, without
// following the redirect.
func (e *sessionEnv) begin(t testing.TB, token string, cookies ...*http.Cookie) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/signup",
		strings.NewReader(url.Values{verify.SignupTokenField: {token}}.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// startSession begins a sign-up with a fresh token for account and returns
// the session cookie.
func (e *sessionEnv) startSession(t *testing.T, account string) *http.Cookie {
	t.Helper()
	resp := e.begin(t, e.s.SignupToken(marketplacetest.TokenParams{Subject: account, Audience: signupTestAudience}))
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/signup/form", resp.Header.Get("Location"))
	return sessionCookie(t, resp)
}

func sessionCookie(t testing.TB, resp *http.Response) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == signup.DefaultCookie {
			return c
		}
	}
	t.Fatalf("no %s cookie in %v", signup.DefaultCookie, resp.Header.Values("Set-Cookie"))
	return nil
}

// form requests the form page with the cookie: GET, or POST naming account.
func (e *sessionEnv) form(t *testing.T, c *http.Cookie, method, account string) (int, string) {
	t.Helper()
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(url.Values{signup.AccountField: {account}, "email": {"a@example.com"}}.Encode())
	}
	req, err := http.NewRequest(method, e.srv.URL+"/signup/form", body)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c != nil {
		req.AddCookie(c)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// openWith opens cookie c with s, as a request carrying it.
func openWith(s *signup.Sessions, c *http.Cookie, account string) (signup.Session, error) {
	req := httptest.NewRequest(http.MethodGet, "/signup/form", nil)
	if c != nil {
		req.AddCookie(c)
	}
	return s.Open(req, account)
}

func requireSessionReason(t *testing.T, err error, want signup.SessionReason) {
	t.Helper()
	var se *signup.SessionError
	require.ErrorAs(t, err, &se, "not a *SessionError: %v", err)
	require.Equal(t, want, se.Reason, "error: %v", err)
	require.ErrorIs(t, err, want)
}

// The customer arrives with a token valid five minutes and submits the form
// ten minutes later: the session, not the token, carries the sign-up.
func TestSignupSessionOutlivesToken(t *testing.T) {
	t.Parallel()
	e := newSessionEnv(t, [][]byte{sessionKeyA})
	c := e.startSession(t, signupTestAccount)
	assert.True(t, c.HttpOnly, "HttpOnly")
	assert.Equal(t, http.SameSiteLaxMode, c.SameSite, "SameSite")
	assert.False(t, c.Secure, "not Secure over plain HTTP")
	assert.Equal(t, "/", c.Path)
	assert.Equal(t, int(signup.DefaultLifetime/time.Second), c.MaxAge)

	e.s.Clock().Advance(10 * time.Minute)
	status, body := e.form(t, c, http.MethodGet, "")
	require.Equal(t, http.StatusOK, status, body)
	status, body = e.form(t, c, http.MethodPost, signupTestAccount)
	require.Equal(t, http.StatusOK, status, body)
	require.Len(t, e.got, 2)
	got := e.got[1]
	assert.Equal(t, signupTestAccount, got.AccountID)
	assert.NotEmpty(t, got.UserIdentity)
	assert.Equal(t, signupTestAudience, got.Audience)
	assert.Equal(t, got.IssuedAt.Add(signup.DefaultLifetime), got.ExpiresAt)

	// An hour after arrival the session is over: a page, not a bare 401.
	e.s.Clock().Advance(50 * time.Minute)
	status, body = e.form(t, c, http.MethodPost, signupTestAccount)
	assert.Equal(t, http.StatusForbidden, status)
	assert.Contains(t, body, `data-reason="expired"`)
	assert.Contains(t, body, "Marketplace &gt; Your orders")
	assert.Contains(t, body, "https://console.cloud.google.com/marketplace/orders")
	_, err := openWith(e.sessions, c, "")
	requireSessionReason(t, err, signup.ErrSessionExpired)
	assert.Len(t, e.got, 2, "the page never ran without a session")
}

func TestSignupSessionCookieSecureBehindTLS(t *testing.T) {
	t.Parallel()
	e := newSessionEnv(t, [][]byte{sessionKeyA})
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/signup",
		strings.NewReader(url.Values{verify.SignupTokenField: {e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})}}.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err := http.DefaultTransport.RoundTrip(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.True(t, sessionCookie(t, resp).Secure)
}

// A token starts one sign-up: a copy presented later, even within the
// token's lifetime and spelled differently, is refused.
func TestSignupTokenReplayRefused(t *testing.T) {
	t.Parallel()
	e := newSessionEnv(t, [][]byte{sessionKeyA})
	token := e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})
	first := e.begin(t, token)
	require.Equal(t, http.StatusSeeOther, first.StatusCode)
	c := sessionCookie(t, first)

	e.s.Clock().Advance(90 * time.Second)
	replay := e.begin(t, token)
	assert.Equal(t, http.StatusForbidden, replay.StatusCode)
	assert.Empty(t, replay.Cookies(), "no session for the copy")
	body, err := io.ReadAll(replay.Body)
	require.NoError(t, err)
	assert.Contains(t, string(body), `data-reason="used"`)

	// Another spelling of the same signed token: a line break inside the
	// signature segment, which lenient base64 decoders skip.
	i := strings.LastIndexByte(token, '.') + 10
	respelled := e.begin(t, token[:i]+"\n"+token[i:])
	assert.NotEqual(t, http.StatusSeeOther, respelled.StatusCode, "a respelled copy must not start a sign-up")
	assert.Empty(t, respelled.Cookies())

	// The browser that started the sign-up, sending its token again (a
	// reload), is taken back to its form.
	again := e.begin(t, token, c)
	assert.Equal(t, http.StatusSeeOther, again.StatusCode)
}

func TestSignupTokenUsedOnceUnderConcurrency(t *testing.T) {
	t.Parallel()
	e := newSessionEnv(t, [][]byte{sessionKeyA})
	token := e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})
	const n = 8
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/signup",
				strings.NewReader(url.Values{verify.SignupTokenField: {token}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Error(err)
				return
			}
			_ = resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for s := range statuses {
		counts[s]++
	}
	assert.Equal(t, map[int]int{http.StatusSeeOther: 1, http.StatusForbidden: n - 1}, counts)
}

func TestSignupSessionRefusals(t *testing.T) {
	t.Parallel()
	e := newSessionEnv(t, [][]byte{sessionKeyA})
	c := e.startSession(t, signupTestAccount)
	_, err := openWith(e.sessions, c, signupTestAccount)
	require.NoError(t, err)

	payload, mac, ok := strings.Cut(c.Value, ".")
	require.True(t, ok)
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	require.NoError(t, err)
	forged := base64.RawURLEncoding.EncodeToString(bytes.Replace(raw, []byte(signupTestAccount), []byte("acct-2"), 1))
	flipped := []byte(mac) // another base64url character, mid-string
	flipped[3] = map[bool]byte{true: 'B', false: 'A'}[flipped[3] == 'A']
	for name, tc := range map[string]struct {
		value   string
		account string
		want    signup.SessionReason
	}{
		"other account in payload": {value: forged + "." + mac, want: signup.ErrSessionSignature},
		"mac altered":              {value: payload + "." + string(flipped), want: signup.ErrSessionSignature},
		"mac truncated":            {value: payload + "." + mac[:20], want: signup.ErrSessionMalformed},
		"no mac":                   {value: payload, want: signup.ErrSessionMalformed},
		"three parts":              {value: c.Value + ".x", want: signup.ErrSessionMalformed},
		"wrong account":            {value: c.Value, account: "acct-2", want: signup.ErrSessionAccount},
		"oversize":                 {value: strings.Repeat("a", 5000) + "." + mac, want: signup.ErrSessionMalformed},
	} {
		_, err := openWith(e.sessions, &http.Cookie{Name: c.Name, Value: tc.value}, tc.account)
		var se *signup.SessionError
		require.ErrorAs(t, err, &se, name)
		require.Equal(t, tc.want, se.Reason, "%s: %v", name, err)
	}
	_, err = openWith(e.sessions, nil, "")
	requireSessionReason(t, err, signup.ErrSessionMissing)

	// A session of another deployment: another key, or the same key and
	// another audience.
	foreignKey, err := signup.NewSessions(e.v, e.store, [][]byte{sessionKeyB}, &signup.Config{Runtime: e.rt})
	require.NoError(t, err)
	_, err = openWith(foreignKey, c, "")
	requireSessionReason(t, err, signup.ErrSessionSignature)
	other := newSignupTestEnv(t)
	otherV, err := verify.NewSignupVerifier([]string{"other.example.com"}, &verify.Config{SignupCertsURL: other.s.CertsURL()})
	require.NoError(t, err)
	foreignAud, err := signup.NewSessions(otherV, e.store, [][]byte{sessionKeyA}, &signup.Config{Runtime: e.rt})
	require.NoError(t, err)
	_, err = openWith(foreignAud, c, "")
	requireSessionReason(t, err, signup.ErrSessionAudience)
}

// The form's POST must name the session's account: a form shown for
// account 1 does not complete account 2's newer session in the same browser.
func TestSignupSessionFormBoundToAccount(t *testing.T) {
	t.Parallel()
	e := newSessionEnv(t, [][]byte{sessionKeyA})
	c := e.startSession(t, "acct-2")
	status, body := e.form(t, c, http.MethodPost, signupTestAccount)
	assert.Equal(t, http.StatusForbidden, status)
	assert.Contains(t, body, `data-reason="account"`)
	status, body = e.form(t, c, http.MethodPost, "")
	assert.Equal(t, http.StatusForbidden, status)
	assert.Contains(t, body, `data-reason="account"`)
	status, _ = e.form(t, c, http.MethodPost, "acct-2")
	assert.Equal(t, http.StatusOK, status)
	status, body = e.form(t, nil, http.MethodGet, "")
	assert.Equal(t, http.StatusForbidden, status)
	assert.Contains(t, body, `data-reason="missing"`)
}

func TestSignupSessionKeyRotation(t *testing.T) {
	t.Parallel()
	e := newSessionEnv(t, [][]byte{sessionKeyA})
	old := e.startSession(t, signupTestAccount)

	// B is added first: it signs, A still verifies.
	rotated, err := signup.NewSessions(e.v, e.store, [][]byte{sessionKeyB, sessionKeyA}, &signup.Config{Runtime: e.rt})
	require.NoError(t, err)
	_, err = openWith(rotated, old, "")
	require.NoError(t, err, "a session signed with the previous key")
	e2 := newSessionEnv(t, [][]byte{sessionKeyB, sessionKeyA})
	fresh := e2.startSession(t, signupTestAccount)
	onlyB, err := signup.NewSessions(e2.v, e2.store, [][]byte{sessionKeyB}, &signup.Config{Runtime: e2.rt})
	require.NoError(t, err)
	_, err = openWith(onlyB, fresh, "")
	require.NoError(t, err, "new sessions are signed with the first key")

	// A dropped: its sessions are refused.
	_, err = openWith(onlyB, old, "")
	requireSessionReason(t, err, signup.ErrSessionSignature)
}

// Shortening the lifetime applies to sessions already issued.
func TestSignupSessionLifetime(t *testing.T) {
	t.Parallel()
	e := newSessionEnv(t, [][]byte{sessionKeyA}, func(c *signup.Config) { c.Lifetime = 2 * time.Hour })
	c := e.startSession(t, signupTestAccount)
	assert.Equal(t, 7200, c.MaxAge)
	shorter, err := signup.NewSessions(e.v, e.store, [][]byte{sessionKeyA},
		&signup.Config{Runtime: e.rt, Lifetime: 30 * time.Minute})
	require.NoError(t, err)
	e.s.Clock().Advance(45 * time.Minute)
	_, err = openWith(e.sessions, c, "")
	require.NoError(t, err)
	_, err = openWith(shorter, c, "")
	requireSessionReason(t, err, signup.ErrSessionExpired)
}

func TestNewSignupSessionsRefusesBadConfig(t *testing.T) {
	t.Parallel()
	env := newSignupTestEnv(t)
	store := memstore.New()
	for name, tc := range map[string]struct {
		keys [][]byte
		cfg  *signup.Config
	}{
		"no key":          {},
		"short key":       {keys: [][]byte{sessionKeyA[:31]}},
		"short old key":   {keys: [][]byte{sessionKeyA, []byte("short")}},
		"lifetime 30s":    {keys: [][]byte{sessionKeyA}, cfg: &signup.Config{Lifetime: 30 * time.Second}},
		"lifetime 25h":    {keys: [][]byte{sessionKeyA}, cfg: &signup.Config{Lifetime: 25 * time.Hour}},
		"relative path":   {keys: [][]byte{sessionKeyA}, cfg: &signup.Config{CookieName: "s", CookiePath: "signup"}},
		"bad cookie name": {keys: [][]byte{sessionKeyA}, cfg: &signup.Config{CookieName: "a b"}},
	} {
		_, err := signup.NewSessions(env.v, store, tc.keys, tc.cfg)
		assert.Error(t, err, name)
	}
	_, err := signup.NewSessions(env.v, nil, [][]byte{sessionKeyA}, nil)
	assert.Error(t, err, "nil UsedTokens")
}

func TestParseKeys(t *testing.T) {
	t.Parallel()
	a, b := base64.StdEncoding.EncodeToString(sessionKeyA), base64.RawURLEncoding.EncodeToString(sessionKeyB)
	keys, err := signup.ParseKeys(" " + a + ", " + b + " ")
	require.NoError(t, err)
	assert.Equal(t, [][]byte{sessionKeyA, sessionKeyB}, keys)
	weak := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("a"), signup.MinKeySize))
	for _, bad := range []string{"", " , ", "not base64!", base64.StdEncoding.EncodeToString(sessionKeyA[:16]),
		weak, a + "," + a} {
		_, err := signup.ParseKeys(bad)
		assert.Error(t, err, "%q", bad)
	}
}

// The cookie decoder takes any bytes a browser (or an attacker) sends. It
// must never panic, must refuse with a *SessionError, and must accept
// only values in the one spelling it issues: the payload and its MAC under
// the configured key, both canonical unpadded base64url. (The check
// recomputes the MAC rather than remembering issued values: fuzz workers
// are separate processes, each with its own emulator keys.)
func FuzzSignupSessionCookie(f *testing.F) {
	e := newSessionEnv(f, [][]byte{sessionKeyA})
	for _, acct := range []string{signupTestAccount, "acct-2"} {
		c := sessionCookie(f, e.begin(f, e.s.SignupToken(marketplacetest.TokenParams{Subject: acct, Audience: signupTestAudience})))
		f.Add(c.Value)
		f.Add(c.Value + "=")
		f.Add(strings.ToUpper(c.Value))
	}
	f.Add("")
	f.Add(".")
	f.Add("e30.AAAA")
	f.Fuzz(func(t *testing.T, value string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Cookie", signup.DefaultCookie+"="+value)
		sess, err := e.sessions.Open(req, "")
		if err != nil {
			var se *signup.SessionError
			if !errors.As(err, &se) {
				t.Fatalf("not a *SessionError: %v", err)
			}
			return
		}
		c, _ := req.Cookie(signup.DefaultCookie)
		payload, mac, _ := strings.Cut(c.Value, ".")
		m := hmac.New(sha256.New, sessionKeyA)
		m.Write([]byte("gcpmarketplace sign-up session v1\x00" + payload))
		raw, perr := base64.RawURLEncoding.DecodeString(payload)
		if mac != base64.RawURLEncoding.EncodeToString(m.Sum(nil)) || perr != nil ||
			base64.RawURLEncoding.EncodeToString(raw) != payload {
			t.Fatalf("accepted a value not issued in canonical form: %q (session %+v)", c.Value, sess)
		}
	})
}

// BenchmarkSignupSessionOpen is what every request to the form pays for
// its session: the cookie's MAC and decoding.
func BenchmarkSignupSessionOpen(b *testing.B) {
	e := newSessionEnv(b, [][]byte{sessionKeyB, sessionKeyA})
	c := sessionCookie(b, e.begin(b, e.s.SignupToken(marketplacetest.TokenParams{Subject: signupTestAccount, Audience: signupTestAudience})))
	req := httptest.NewRequest(http.MethodGet, "/signup/form", nil)
	req.AddCookie(c)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.sessions.Open(req, signupTestAccount); err != nil {
			b.Fatal(err)
		}
	}
}

// Review findings on the session flow, each refused now.
func TestSignupSessionReviewFindings(t *testing.T) {
	t.Parallel()
	t.Run("a second cookie of the session's name is refused, not guessed", func(t *testing.T) {
		t.Parallel()
		env := newSessionEnv(t, [][]byte{sessionKeyA})
		mine := env.startSession(t, "acct-victim")
		planted := env.startSession(t, "acct-attacker")
		req, err := http.NewRequest(http.MethodGet, env.srv.URL+"/signup/form", nil)
		require.NoError(t, err)
		req.AddCookie(planted)
		req.AddCookie(mine)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	})
	t.Run("a token whose session cannot be made is not used up", func(t *testing.T) {
		t.Parallel()
		env := newSessionEnv(t, [][]byte{sessionKeyA})
		orders := make([]string, 110) // a token under MaxTokenSize, a session over the cookie limit
		for i := range orders {
			orders[i] = fmt.Sprintf("order-%04d-%s", i, strings.Repeat("x", 20))
		}
		tok := env.s.SignupToken(marketplacetest.TokenParams{Subject: "acct-orders", Audience: signupTestAudience,
			Google: map[string]any{"roles": []string{"account_admin"}, "user_identity": "u-1", "orders": orders}})
		resp := env.begin(t, tok)
		require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
		first, err := env.store.UseToken(t.Context(), "probe", time.Now().Add(time.Hour))
		require.NoError(t, err)
		require.True(t, first)
		resp = env.begin(t, tok)
		assert.Equal(t, http.StatusInternalServerError, resp.StatusCode, "the same answer again, not \"already used\"")
	})
	t.Run("Secure behind a proxy that lists several protocols", func(t *testing.T) {
		t.Parallel()
		env := newSessionEnv(t, [][]byte{sessionKeyA})
		for _, h := range [][2]string{{"X-Forwarded-Proto", "https, http"}, {"Forwarded", "for=1.2.3.4;proto=https"}} {
			req, err := http.NewRequest(http.MethodPost, env.srv.URL+"/signup",
				strings.NewReader(url.Values{verify.SignupTokenField: {env.s.SignupToken(marketplacetest.TokenParams{Subject: "acct-" + h[0], Audience: signupTestAudience})}}.Encode()))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set(h[0], h[1])
			resp, err := http.DefaultTransport.RoundTrip(req)
			require.NoError(t, err)
			_ = resp.Body.Close()
			assert.True(t, sessionCookie(t, resp).Secure, h[0])
		}
	})
}
