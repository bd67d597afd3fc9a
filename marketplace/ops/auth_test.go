package ops_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/ops"
)

// Every route refuses a request without credentials or with bad ones, and
// every route refuses a cross-site POST, whatever credentials it carries.
func TestEveryRouteRefusesUnauthenticatedAndCrossSite(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	routes := append(append([]string{"POST /login"}, ops.APIRoutes...), ops.ConsoleRoutes...)
	badCookie := func(r *http.Request) {
		r.AddCookie(&http.Cookie{Name: ops.SessionCookie, Value: ops.SignSession([]byte("another key"), "mallory", time.Now().Add(time.Hour))})
	}
	for _, route := range routes {
		method, path, _ := strings.Cut(route, " ")
		path = "/ops" + strings.NewReplacer("{id}", "x", "{$}", "").Replace(path)
		t.Run(route, func(t *testing.T) {
			api := strings.HasPrefix(path, "/ops/api/")
			r := e.do(method, path, nil, nil)
			assert.Equal(t, http.StatusUnauthorized, r.code, r.body)
			assert.Empty(t, r.header.Get("Location"), "no redirect")
			consolePage := method == http.MethodGet && !api
			if api {
				assert.Contains(t, r.body, `"status": "UNAUTHENTICATED"`)
			}
			if consolePage {
				// A console page answers the login form as its 401 body.
				assert.Contains(t, r.body, `<form method="POST" action="/ops/login">`)
			}
			assert.Equal(t, http.StatusUnauthorized, e.do(method, path, nil, bearer("wrong")).code, "bad token")
			r = e.do(method, path, nil, badCookie)
			assert.Equal(t, http.StatusUnauthorized, r.code, "cookie signed by another key")
			if consolePage {
				assert.Contains(t, r.body, `name="token"`, "the login form")
				assert.Contains(t, r.header.Get("Set-Cookie"), ops.SessionCookie+"=; Path=/ops; Max-Age=0", "the bad cookie is cleared")
			}

			crossSite := func(r *http.Request) {
				r.Header.Set("Authorization", "Bearer "+token)
				r.Header.Set("Sec-Fetch-Site", "cross-site")
			}
			assert.Equal(t, http.StatusForbidden, e.do(http.MethodPost, path, strings.NewReader("confirm=yes"), crossSite).code, "cross-site POST")
			otherOrigin := func(r *http.Request) {
				r.Header.Set("Authorization", "Bearer "+token)
				r.Header.Set("Origin", "https://evil.example")
			}
			assert.Equal(t, http.StatusForbidden, e.do(http.MethodPost, path, strings.NewReader("confirm=yes"), otherOrigin).code, "POST from another origin")
		})
	}
	assert.Empty(t, e.logs.actions(), "no action ran")
	// The login form itself is the one page served to anyone.
	r := e.do(http.MethodGet, "/ops/login", nil, nil)
	assert.Equal(t, http.StatusOK, r.code)
	assert.Contains(t, r.body, `<form method="POST" action="/ops/login">`)
	assert.Contains(t, r.body, `name="token"`)
}

// Logging in with a token sets a signed session cookie that authenticates
// the console as the token's principal, who is logged with each action.
func TestLoginSession(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	r := e.do(http.MethodPost, "/ops/login", strings.NewReader(url.Values{"token": {"wrong"}}.Encode()), nil)
	assert.Equal(t, http.StatusUnauthorized, r.code)
	assert.Contains(t, r.body, "not accepted")
	assert.Empty(t, r.header.Values("Set-Cookie"))

	r = e.do(http.MethodPost, "/ops/login", strings.NewReader(url.Values{"token": {token}}.Encode()), nil)
	require.Equal(t, http.StatusSeeOther, r.code)
	assert.Equal(t, "/ops/", r.header.Get("Location"))
	cookies := (&http.Response{Header: r.header}).Cookies()
	require.Len(t, cookies, 1)
	c := cookies[0]
	assert.Equal(t, ops.SessionCookie, c.Name)
	assert.True(t, c.HttpOnly)
	assert.Equal(t, http.SameSiteStrictMode, c.SameSite)
	assert.Equal(t, "/ops", c.Path)
	assert.Equal(t, 12*3600, c.MaxAge, "MaxAge, not Expires: the Runtime's clock may be far from the browser's")

	withCookie := func(r *http.Request) { r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value}) }
	page := e.do(http.MethodGet, "/ops/", nil, withCookie)
	require.Equal(t, http.StatusOK, page.code)
	assert.Contains(t, page.body, "alice")
	assert.Equal(t, http.StatusOK, e.do(http.MethodGet, "/ops/api/v1/overview", nil, withCookie).code)

	tampered := func(r *http.Request) {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: "x" + c.Value})
	}
	r = e.do(http.MethodGet, "/ops/", nil, tampered)
	assert.Equal(t, http.StatusUnauthorized, r.code)
	assert.Contains(t, r.body, `name="token"`, "the login form")
	assert.Contains(t, r.header.Get("Set-Cookie"), "Max-Age=0", "the bad cookie is cleared")

	r = e.do(http.MethodPost, "/ops/reconcile", nil, withCookie)
	assert.Equal(t, http.StatusSeeOther, r.code)
	assert.Contains(t, e.logs.actions(), "alice reconcile ")
	assert.Contains(t, e.logs.actions(), "alice login ")

	r = e.do(http.MethodPost, "/ops/logout", nil, withCookie)
	assert.Equal(t, http.StatusSeeOther, r.code)
	assert.Contains(t, r.header.Get("Set-Cookie"), "Max-Age=0")

	e.Server.Clock().Advance(12 * time.Hour)
	r = e.do(http.MethodGet, "/ops/", nil, withCookie)
	assert.Equal(t, http.StatusUnauthorized, r.code, "an expired session")
	assert.Contains(t, r.body, `name="token"`, "the login form")
	assert.Contains(t, r.header.Get("Set-Cookie"), "Max-Age=0", "the stale cookie is cleared")
}

// Cookies are Secure unless the console is browsed on a loopback host:
// behind a TLS-terminating proxy the request itself is plain HTTP.
func TestCookiesSecureUnlessLoopback(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	for host, secure := range map[string]bool{
		"ops.example.com": true, "ops.example.com:443": true, "10.0.0.1:8080": true, "localhost.example.com": true,
		"localhost": false, "localhost:8080": false, "LOCALHOST": false, "127.0.0.1:8080": false, "127.1.2.3": false,
		"[::1]:8080": false, "[::1]": false,
	} {
		req := httptest.NewRequest(http.MethodPost, "/ops/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Host = host
		w := serve(e.h, req)
		require.Equal(t, http.StatusSeeOther, w.Code, host)
		cookies := w.Result().Cookies()
		require.Len(t, cookies, 1, host)
		assert.Equal(t, secure, cookies[0].Secure, host)
	}
}

func TestSessionExpires(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	v := ops.SignSession(key, "bob", now.Add(time.Hour))
	name, err := ops.ParseSession(key, v, now)
	require.NoError(t, err)
	assert.Equal(t, "bob", name)
	_, err = ops.ParseSession(key, v, now.Add(time.Hour))
	assert.ErrorIs(t, err, ops.ErrUnauthenticated)
	_, err = ops.ParseSession([]byte("other"), v, now)
	assert.ErrorIs(t, err, ops.ErrUnauthenticated)
}

func TestBearerTokens(t *testing.T) {
	t.Parallel()
	auth := ops.BearerTokens(map[string]string{"t1": "alice", "t2": "bob", "": "nobody"})
	for hdr, want := range map[string]string{"Bearer t1": "alice", "bearer t2": "bob", "Bearer t3": "", "Bearer ": "", "Basic t1": "", "": ""} {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		if hdr != "" {
			r.Header.Set("Authorization", hdr)
		}
		p, err := auth.Authenticate(r)
		if want == "" {
			assert.ErrorIs(t, err, ops.ErrUnauthenticated, hdr)
			continue
		}
		require.NoError(t, err, hdr)
		assert.Equal(t, want, p.Name)
	}
}

// A vendor's own Authenticator (here an IAP-like header check) is used as
// is; its refusals answer 401.
func TestCustomAuthenticator(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	h, err := ops.New(ops.Config{Processor: e.Proc, Auth: ops.AuthenticatorFunc(func(r *http.Request) (ops.Principal, error) {
		if u := r.Header.Get("X-Goog-Authenticated-User-Email"); u != "" {
			return ops.Principal{Name: u}, nil
		}
		return ops.Principal{}, errors.New("no IAP header") // not ErrUnauthenticated: still refused
	})})
	require.NoError(t, err)
	req := httptestRequest(t, http.MethodGet, "/ops/api/v1/parked", map[string]string{"X-Goog-Authenticated-User-Email": "ops@example.com"})
	assert.Equal(t, http.StatusOK, serve(h, req).Code)
	req = httptestRequest(t, http.MethodGet, "/ops/api/v1/parked", nil)
	assert.Equal(t, http.StatusUnauthorized, serve(h, req).Code)
}

func TestNewRequiresProcessorAndAuth(t *testing.T) {
	t.Parallel()
	_, err := ops.New(ops.Config{})
	assert.Error(t, err)
}

func TestNewRefusesShortSessionKey(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	cfg := ops.Config{Processor: e.Proc, Auth: ops.BearerTokens(nil)}
	cfg.SessionKey = make([]byte, ops.MinSessionKeyBytes-1)
	_, err := ops.New(cfg)
	assert.ErrorContains(t, err, "SessionKey")
	cfg.SessionKey = make([]byte, ops.MinSessionKeyBytes)
	_, err = ops.New(cfg)
	assert.NoError(t, err)
}

// Mounted elsewhere, the Handler serves its routes, links and cookies
// under that path.
func TestBasePath(t *testing.T) {
	t.Parallel()
	e := newOpsEnv(t, nil)
	h, err := ops.New(ops.Config{Processor: e.Proc, BasePath: "/admin/", Auth: ops.BearerTokens(map[string]string{token: "alice"})})
	require.NoError(t, err)
	req := httptestRequest(t, http.MethodGet, "/admin/api/v1/health", map[string]string{"Authorization": "Bearer " + token})
	assert.Equal(t, http.StatusOK, serve(h, req).Code)
	w := serve(h, httptestRequest(t, http.MethodGet, "/admin/", nil))
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Contains(t, w.Body.String(), `action="/admin/login"`)
	assert.Contains(t, serve(h, httptestRequest(t, http.MethodGet, "/admin/login", nil)).Body.String(), `action="/admin/login"`)
	_, err = ops.New(ops.Config{Processor: e.Proc, BasePath: "admin", Auth: ops.BearerTokens(nil)})
	assert.Error(t, err)
}
