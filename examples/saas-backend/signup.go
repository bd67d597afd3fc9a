package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/mail"
	"strings"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/signup"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
)

// The sign-up page. Google sends the buyer's browser to POST /signup with a
// signed JWT (valid 5 minutes) in the form field x-gcp-marketplace-token.
// signup.Sessions verifies it there, once, records it as used,
// keeps the verified claims in a signed session cookie (1 hour) and
// redirects to /signup/form, where signupPage runs with the session:
//
//  1. GET (after the redirect): show the form.
//  2. POST (the form): create the tenant, link it to the Procurement account
//     and approve the account with CompleteSignup, which also approves (or
//     queues, with -approval manual) the entitlements waiting for the
//     sign-up.
//
// If your users already have accounts, put your login between the two and
// call CompleteSignup with the signed-in user's id. Never link by an email
// address typed into the form: it proves nothing.

var signupTemplates = template.Must(template.New("").Parse(`
{{define "head"}}<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{.Title}}</title>
<style>body{font:16px system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}
label{display:block;margin:1rem 0 .25rem}input{font:inherit;padding:.4rem;width:100%}
button{font:inherit;margin-top:1.5rem;padding:.5rem 1.5rem}.err{color:#b00}</style></head><body>{{end}}

{{define "form"}}{{template "head" .}}
<h1>Finish setting up your account</h1>
<p>Thanks for subscribing through Google Cloud Marketplace. Create your account to start.</p>
{{if .Error}}<p class="err" id="error">{{.Error}}</p>{{end}}
<form method="POST" action="/signup/form" id="signup">
<input type="hidden" name="{{.AccountField}}" value="{{.AccountID}}">
<label for="email">Work email</label><input id="email" name="email" type="email" required value="{{.Email}}">
<label for="company">Company</label><input id="company" name="company" required value="{{.Company}}">
<button type="submit">Create account</button>
</form>
<p><small>Marketplace account {{.AccountID}}</small></p></body></html>{{end}}

{{define "done"}}{{template "head" .}}
<h1>You're all set, {{.Tenant.Company}}</h1>
<p id="status" data-tenant="{{.Tenant.ID}}" data-account="{{.Tenant.AccountID}}">signed-up</p>
<ul>{{range .Results}}{{$o := ""}}{{range .Outcomes}}{{$o = .}}{{end}}<li class="entitlement" data-id="{{.Resource.ID}}" data-action="{{$o}}">
Subscription {{.Resource.ID}}: {{if eq $o "approved"}}active{{else if eq $o "queued"}}being reviewed, we will email you
{{- else if eq $o "rejected"}}declined{{else}}{{.State}}{{end}}{{if .Err}} (we will retry){{end}}</li>{{end}}</ul>
</body></html>{{end}}

{{define "info"}}{{template "head" .}}
<h1>Subscribe through Google Cloud Marketplace</h1>
<p>This page is where Google Cloud Marketplace sends you after you subscribe. Start from the product's listing.</p>
</body></html>{{end}}
`))

type signupView struct {
	Title, AccountField, AccountID, Email, Company, Error string
	Tenant                                                tenant
	Results                                               []marketplace.Result
}

// signupSessions is the sign-up flow, its cookie signed with -session-key.
// -emulator makes a key when none is given: its sessions end with the
// process, like everything else the emulator holds.
func (b *backend) signupSessions(v *verify.SignupVerifier) (*signup.Sessions, error) {
	var keys [][]byte
	if b.cfg.SessionKeys == "" && b.cfg.Emulator {
		key := make([]byte, signup.MinKeySize)
		_, _ = rand.Read(key) // never fails (crypto/rand)
		keys = [][]byte{key}
	} else {
		var err error
		if keys, err = signup.ParseKeys(b.cfg.SessionKeys); err != nil {
			return nil, err
		}
	}
	b.opsSessionKey = opsSessionKeyFrom(keys[0], b.cfg.OpsToken)
	s, err := signup.NewSessions(v, b.store, keys, &signup.Config{Runtime: b.runtime()})
	if err != nil {
		return nil, fmt.Errorf("sign-up sessions: %w", err)
	}
	return s, nil
}

func (b *backend) signupPage(w http.ResponseWriter, r *http.Request, s signup.Session) {
	v := signupView{Title: "Sign up", AccountField: signup.AccountField, AccountID: s.AccountID,
		Email: strings.TrimSpace(r.PostFormValue("email")), Company: strings.TrimSpace(r.PostFormValue("company"))}
	if t, ok := b.tenants.byAccountID(s.AccountID); ok {
		// Signed up already (a second click, a reload): finish what is left.
		b.completeSignup(w, r, s, t)
		return
	}
	if r.Method == http.MethodGet {
		b.render(w, http.StatusOK, "form", v) // after Google's redirect
		return
	}
	if _, err := mail.ParseAddress(v.Email); err != nil || v.Company == "" {
		v.Error = "Please enter a valid email address and your company name."
		b.render(w, http.StatusUnprocessableEntity, "form", v)
		return
	}
	t := b.tenants.signUp(s.AccountID, v.Email, v.Company, s.UserIdentity)
	b.completeSignup(w, r, s, t)
}

func (b *backend) completeSignup(w http.ResponseWriter, r *http.Request, c signup.Session, t tenant) {
	res, err := b.proc.CompleteSignup(r.Context(), marketplace.SignupParams{
		AccountID: c.AccountID, VendorUserID: t.ID, UserIdentity: c.UserIdentity})
	if err != nil {
		// The sign-up failed (the Procurement API is unreachable, or the
		// account is linked to another tenant): the user can retry from
		// the Marketplace, CompleteSignup is idempotent. Entitlements that
		// could not be settled are not an error: their Result.Err says why,
		// and Reconcile (or the next notification) settles them.
		b.log.ErrorContext(r.Context(), "sign-up failed", "account_id", c.AccountID, "tenant_id", t.ID, "error", err)
		status := http.StatusServiceUnavailable
		msg := "We could not finish your sign-up. Please try again in a minute from the Google Cloud console."
		if errors.Is(err, marketplace.ErrAccountLinked) {
			status, msg = http.StatusConflict, "This Marketplace account is already linked to another account. Please contact support."
		}
		http.Error(w, msg, status)
		return
	}
	b.log.InfoContext(r.Context(), "signed up", "account_id", c.AccountID, "tenant_id", t.ID, "entitlements", len(res.Entitlements))
	b.render(w, http.StatusOK, "done", signupView{Title: "Welcome", Tenant: t, Results: res.Entitlements})
}

func (b *backend) signupInfo(w http.ResponseWriter, _ *http.Request) {
	b.render(w, http.StatusOK, "info", signupView{Title: "Sign up"})
}

func (b *backend) render(w http.ResponseWriter, status int, name string, v signupView) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := signupTemplates.ExecuteTemplate(w, name, v); err != nil {
		b.log.Error("render sign-up page", "template", name, "error", err)
	}
}
