package signup_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/signup"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
)

// The sign-up URL of a SaaS listing: Google posts the buyer's browser there
// with the sign-up JWT, and the handler verifies it before the app sees it.
func ExampleHandler() {
	s := marketplacetest.New(nil) // plays Google in this example
	defer s.Close()

	const domain = "example-service.endpoints.acme-provider.cloud.goog"
	rt := gcpmarketplace.Runtime{Clock: s.Clock().Now} // the emulator's clock
	// In production: verify.NewSignupVerifier([]string{domain}, &verify.Config{Runtime: rt}).
	v, err := verify.NewSignupVerifier([]string{domain}, &verify.Config{
		Runtime:        rt,
		SignupCertsURL: s.CertsURL(), // tests only: the emulator's keys
	})
	if err != nil {
		panic(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/marketplace/signup", signup.Handler(v, &signup.Config{Runtime: rt},
		func(w http.ResponseWriter, r *http.Request, c verify.SignupClaims) {
			// Show the sign-up form, or link c.AccountID and c.UserIdentity
			// to the signed-in user and approve the account.
			fmt.Fprintf(w, "welcome, account %s", c.AccountID)
		}))
	app := httptest.NewServer(mux)
	defer app.Close()

	post := func(token string) {
		resp, err := http.PostForm(app.URL+"/marketplace/signup", url.Values{verify.SignupTokenField: {token}})
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Println(resp.StatusCode, strings.TrimSpace(string(body)))
	}

	post(s.SignupToken(marketplacetest.TokenParams{Subject: "acct-1", Audience: domain}))
	forged, err := s.SignupToken(marketplacetest.TokenParams{Subject: "acct-1", Audience: domain, Bad: marketplacetest.BadTokenAttackerIssuer}), error(nil)
	if err != nil {
		panic(err)
	}
	post(forged)
	post("")
	// Output:
	// 200 welcome, account acct-1
	// 401 sign-up token refused: token issuer not allowed
	// 400 sign-up token refused: token missing
}
