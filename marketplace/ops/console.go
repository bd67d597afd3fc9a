package ops

import (
	"bytes"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

// pageNames are the console's page templates, each rendered inside
// templates/layout.html.
var pageNames = []string{"login", "overview", "customers", "customer", "approvals", "poison", "consumers", "usage", "confirm", "error"}

var templateFuncs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	// pe escapes an id for a path segment: a Pub/Sub message id may hold
	// a "/", which the routes' {id} would not match unescaped.
	"pe":      url.PathEscape,
	"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"seconds": func(s int64) string { return (time.Duration(s) * time.Second).String() },
	"title": func(s string) string {
		if s == "" {
			return s
		}
		return strings.ToUpper(s[:1]) + s[1:]
	},
	"billedValue": func(b billedJSON) string {
		if b.Kind == "double" {
			return strconv.FormatFloat(b.Double, 'g', -1, 64)
		}
		return strconv.FormatInt(b.Int64, 10)
	},
}

func parsePages() (map[string]*template.Template, error) {
	pages := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(templateFuncs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("ops: parse console template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// pageData is what every page template gets.
type pageData struct {
	Title      string
	Base       string
	Principal  string
	Flash      string
	FlashError bool
	Error      string
	Data       any
}

// flashCookie carries a message from a POST action to the page it
// redirects to. It is not signed: the page escapes it, and it only ever
// shows the operator what their own browser holds.
const flashCookie = "ops_flash"

// render writes a page, consuming the flash message.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, code int, page string, d pageData) {
	d.Base = h.base
	if p, ok := PrincipalFrom(r.Context()); ok {
		d.Principal = p.Name
	}
	if c, err := r.Cookie(flashCookie); err == nil {
		if b, err := base64.RawURLEncoding.DecodeString(c.Value); err == nil {
			msg := string(b)
			d.FlashError = strings.HasPrefix(msg, "!")
			d.Flash = strings.TrimPrefix(msg, "!")
		}
		http.SetCookie(w, &http.Cookie{Name: flashCookie, Path: h.cookiePath(), MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secureCookies(r)})
	}
	var buf bytes.Buffer
	if err := h.pages[page].ExecuteTemplate(&buf, "layout", d); err != nil {
		h.log.LogAttrs(r.Context(), slog.LevelError, "ops: render console page", slog.String("page", page), slog.String("error", err.Error()))
		http.Error(w, "ops: could not render the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// No script, style or frame from anywhere else: the console has none.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// fail renders an error page for a read that failed.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := errorCode(err)
	h.render(w, r, code, "error", pageData{Title: http.StatusText(code), Error: err.Error()})
}

// redirectFlash ends a POST action: back to the page at path (under
// BasePath), with the outcome as a flash message: msg, or what failed.
func (h *Handler) redirectFlash(w http.ResponseWriter, r *http.Request, path, msg, what string, err error) {
	if err != nil {
		msg = "!" + what + " failed: " + err.Error()
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: base64.RawURLEncoding.EncodeToString([]byte(msg)),
		Path: h.cookiePath(), HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secureCookies(r)})
	http.Redirect(w, r, h.base+path, http.StatusSeeOther)
}
