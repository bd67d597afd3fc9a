package ops

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// sessionCookie is the console's session cookie name.
const sessionCookie = "ops_session"

// session is what the session cookie carries, signed.
type session struct {
	Name    string `json:"n"`
	Expires int64  `json:"e"` // Unix seconds
}

// errBadSession is wrapped by parseSession's refusals.
var errBadSession = fmt.Errorf("bad session cookie: %w", ErrUnauthenticated)

// signSession encodes s as base64url(JSON) "." base64url(HMAC-SHA256).
func signSession(key []byte, s session) string {
	payload, _ := json.Marshal(s) // a struct of a string and an int always encodes
	enc := base64.RawURLEncoding.EncodeToString(payload)
	return enc + "." + base64.RawURLEncoding.EncodeToString(mac(key, enc))
}

func mac(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// parseSession verifies a session cookie's value and returns its session
// if it is signed with key and not expired at now.
func parseSession(key []byte, value string, now time.Time) (session, error) {
	enc, sig, ok := strings.Cut(value, ".")
	if !ok {
		return session{}, errBadSession
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, mac(key, enc)) {
		return session{}, errBadSession
	}
	payload, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return session{}, errBadSession
	}
	var s session
	if err := json.Unmarshal(payload, &s); err != nil || s.Name == "" {
		return session{}, errBadSession
	}
	if !now.Before(time.Unix(s.Expires, 0)) {
		return session{}, fmt.Errorf("session expired: %w", ErrUnauthenticated)
	}
	return s, nil
}

type principalKey struct{}

// PrincipalFrom returns the principal the Handler authenticated for the
// request whose context is ctx, for a vendor's own handlers wrapped
// around it.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// authenticate establishes who made r: the session cookie if it is valid,
// else Config.Auth.
func (h *Handler) authenticate(r *http.Request) (p Principal, err error) {
	_, hasAuth := r.Header["Authorization"]
	c, cerr := r.Cookie(sessionCookie)
	hasCookie := cerr == nil && c.Value != ""
	if hasCookie {
		s, serr := parseSession(h.key, c.Value, h.cfg.Now())
		if serr == nil {
			return Principal{Name: s.Name}, nil
		}
		err = serr
	}
	p, aerr := h.cfg.Auth.Authenticate(r)
	if aerr == nil {
		if p.Name == "" {
			p.Name = "unnamed"
		}
		return p, nil
	}
	if err == nil || hasAuth {
		err = aerr
	}
	return Principal{}, err
}

// authenticated wraps fn: it answers 401 unless the request is
// authenticated. A console page (a GET outside the API) without an
// Authorization header gets the login form as its 401 body, not a
// redirect (every route answers 401 without credentials); a bad or
// expired session cookie it carried is cleared.
func (h *Handler) authenticated(fn func(w http.ResponseWriter, r *http.Request, p Principal)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := h.authenticate(r)
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) {
				// An Authenticator's own failure (its key server is down):
				// still a refusal, but worth an error log.
				h.log.LogAttrs(r.Context(), slog.LevelError, "ops: authenticator failed", slog.String("error", err.Error()))
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="ops"`)
			if _, hasAuth := r.Header["Authorization"]; !hasAuth && r.Method == http.MethodGet && !h.isAPI(r) {
				if c, cerr := r.Cookie(sessionCookie); cerr == nil && c.Value != "" {
					h.clearSession(w, r)
				}
				h.render(w, r, http.StatusUnauthorized, "login", pageData{Title: "Sign in"})
				return
			}
			h.deny(w, r, http.StatusUnauthorized, "unauthenticated")
			return
		}
		fn(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)), p)
	})
}

// routeAuth registers the login form and logout: the only routes that
// answer without credentials (login checks the token it is given).
func (h *Handler) routeAuth() {
	h.mux.HandleFunc("GET "+h.base+"/login", func(w http.ResponseWriter, r *http.Request) {
		h.render(w, r, http.StatusOK, "login", pageData{Title: "Sign in"})
	})
	h.mux.HandleFunc("POST "+h.base+"/login", h.login)
	h.handle("POST /logout", func(w http.ResponseWriter, r *http.Request, p Principal) {
		h.clearSession(w, r)
		h.action(r, p, "logout", "", nil)
		http.Redirect(w, r, h.base+"/login", http.StatusSeeOther)
	})
}

// login checks the form's token through Config.Auth, as a bearer token,
// and sets the session cookie.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	token := strings.TrimSpace(r.PostFormValue("token"))
	probe := r.Clone(r.Context())
	probe.Header = http.Header{"Authorization": {"Bearer " + token}}
	p, err := h.cfg.Auth.Authenticate(probe)
	if token == "" || err != nil {
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "ops: login refused", slog.String("remote", r.RemoteAddr))
		h.render(w, r, http.StatusUnauthorized, "login", pageData{Title: "Sign in", Error: "That token was not accepted."})
		return
	}
	if p.Name == "" {
		p.Name = "unnamed"
	}
	exp := h.cfg.Now().Add(h.ttl)
	// MaxAge, not Expires: exp is on the Runtime's clock (an emulator's
	// may be months from the browser's), which only the signed value needs.
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: signSession(h.key, session{Name: p.Name, Expires: exp.Unix()}),
		Path: h.cookiePath(), MaxAge: int(h.ttl / time.Second), HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secureCookies(r),
	})
	h.action(r, p, "login", "", nil)
	http.Redirect(w, r, h.base+"/", http.StatusSeeOther)
}

// clearSession deletes the session cookie.
func (h *Handler) clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: h.cookiePath(), MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secureCookies(r)})
}

// secureCookies reports whether the console's cookies are marked Secure:
// always, unless the request's host is a loopback one (localhost,
// 127.0.0.0/8, ::1), where a developer browses over plain HTTP. r.TLS
// cannot decide it: behind a TLS-terminating proxy (Cloud Run, a load
// balancer) every request arrives over plain HTTP.
func secureCookies(r *http.Request) bool {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err != nil || !ip.IsLoopback()
}

// cookiePath is the cookies' Path: BasePath, or "/" at the root.
func (h *Handler) cookiePath() string {
	if h.base == "" {
		return "/"
	}
	return h.base
}
