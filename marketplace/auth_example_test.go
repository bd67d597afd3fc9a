package marketplace_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

// The sign-up URL of a SaaS listing: Google posts the buyer's browser there
// with the sign-up JWT, and the handler verifies it before the app sees it.
func ExampleSignupHandler() {
	s := marketplacetest.New(nil) // plays Google in this example
	defer s.Close()

	const domain = "example-service.endpoints.acme-provider.cloud.goog"
	// In production: marketplace.NewSignupVerifier([]string{domain}).
	v, err := marketplace.NewSignupVerifier([]string{domain},
		marketplace.WithSignupCertsURL(s.CertsURL()), // tests only: the emulator's keys
		marketplace.WithSignupClock(s.Clock().Now))
	if err != nil {
		panic(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/marketplace/signup", marketplace.SignupHandler(v,
		func(w http.ResponseWriter, r *http.Request, c marketplace.SignupClaims) {
			// Show the sign-up form, or link c.AccountID and c.UserIdentity
			// to the signed-in user and approve the account.
			fmt.Fprintf(w, "welcome, account %s", c.AccountID)
		}))
	app := httptest.NewServer(mux)
	defer app.Close()

	post := func(token string) {
		resp, err := http.PostForm(app.URL+"/marketplace/signup", url.Values{marketplace.SignupTokenField: {token}})
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Println(resp.StatusCode, strings.TrimSpace(string(body)))
	}

	post(s.SignupToken(marketplacetest.TokenParams{Subject: "acct-1", Audience: domain}))
	forged := s.SignupToken(marketplacetest.TokenParams{Subject: "acct-1", Audience: domain, Bad: marketplacetest.BadTokenAttackerIssuer})
	post(forged)
	post("")
	// Output:
	// 200 welcome, account acct-1
	// 401 sign-up token refused: token issuer not allowed
	// 400 sign-up token refused: token missing
}

func ExampleSignupVerifier_VerifySignupToken() {
	s := marketplacetest.New(nil)
	defer s.Close()

	const domain = "example-service.endpoints.acme-provider.cloud.goog"
	v, err := marketplace.NewSignupVerifier([]string{domain},
		marketplace.WithSignupCertsURL(s.CertsURL()), // tests only
		marketplace.WithSignupClock(s.Clock().Now))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	token := s.SignupToken(marketplacetest.TokenParams{Subject: "acct-1", Audience: domain})

	claims, err := v.VerifySignupToken(ctx, token)
	if err != nil {
		panic(err)
	}
	fmt.Println("account:", claims.AccountID)
	fmt.Println("roles:", claims.Roles)
	fmt.Println("valid for:", claims.ExpiresAt.Sub(claims.IssuedAt))

	// Sign-up tokens live five minutes.
	s.Clock().Advance(10 * time.Minute)
	_, err = v.VerifySignupToken(ctx, token)
	fmt.Println("later:", errors.Is(err, marketplace.ErrTokenExpired))
	var te *marketplace.TokenError
	if errors.As(err, &te) {
		fmt.Println("reason:", te.Reason, "retryable:", te.Retryable())
	}
	// Output:
	// account: acct-1
	// roles: [account_admin]
	// valid for: 5m0s
	// later: true
	// reason: token expired retryable: false
}

// A Pub/Sub push endpoint checks the delivery's OIDC token before it reads
// the body.
func ExamplePushVerifier_VerifyPushRequest() {
	s := marketplacetest.New(nil)
	defer s.Close()
	var err error

	var v *marketplace.PushVerifier
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := v.VerifyPushRequest(r.Context(), r)
		if err != nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Println("push from", c.Email)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer endpoint.Close()

	// The audience is the one configured on the push subscription (by
	// default the endpoint URL). In production leave the JWKS URL unset.
	v, err = marketplace.NewPushVerifier(endpoint.URL,
		marketplace.WithPushServiceAccount(s.PushServiceAccount()),
		marketplace.WithPushJWKSURL(s.PushJWKSURL()), // tests only
		marketplace.WithPushClock(s.Clock().Now))
	if err != nil {
		panic(err)
	}

	resp, err := s.Push(context.Background(), endpoint.URL, marketplacetest.PushParams{Audience: endpoint.URL, Data: []byte(`{"eventId":"e-1"}`)})
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println("status:", resp.StatusCode)
	// Output:
	// push from marketplace-push@vendor-project.iam.gserviceaccount.com
	// status: 204
}
