package verify_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
)

// A sign-up token is verified once, then its claims are used; package
// signup serves the sign-up URL with it.
func ExampleSignupVerifier_Verify() {
	s := marketplacetest.New(nil)
	defer s.Close()

	const domain = "example-service.endpoints.acme-provider.cloud.goog"
	// In production: verify.NewSignupVerifier([]string{domain}, &verify.Config{Runtime: rt}).
	v, err := verify.NewSignupVerifier([]string{domain}, &verify.Config{
		Runtime:        gcpmarketplace.Runtime{Clock: s.Clock().Now}, // the emulator's clock
		SignupCertsURL: s.CertsURL(),                                 // tests only: the emulator's keys
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	token := s.SignupToken(marketplacetest.TokenParams{Subject: "acct-1", Audience: domain})

	claims, err := v.Verify(ctx, token)
	if err != nil {
		panic(err)
	}
	fmt.Println("account:", claims.AccountID)
	fmt.Println("roles:", claims.Roles)
	fmt.Println("valid for:", claims.ExpiresAt.Sub(claims.IssuedAt))

	// Sign-up tokens live five minutes.
	s.Clock().Advance(10 * time.Minute)
	_, err = v.Verify(ctx, token)
	fmt.Println("later:", errors.Is(err, verify.ErrTokenExpired))
	var te *verify.TokenError
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
func ExamplePushVerifier_VerifyRequest() {
	s := marketplacetest.New(nil)
	defer s.Close()

	var v *verify.PushVerifier
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := v.VerifyRequest(r.Context(), r)
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
	v, err := verify.NewPushVerifier(endpoint.URL, &verify.Config{
		Runtime:            gcpmarketplace.Runtime{Clock: s.Clock().Now},
		PushServiceAccount: s.PushServiceAccount(),
		PushJWKSURL:        s.PushJWKSURL(), // tests only
	})
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

// A DCR endpoint verifies the software_statement Gemini Enterprise sends
// before it reads the order from it; package agent does this for you.
func ExampleStatementVerifier_Verify() {
	s := marketplacetest.New(nil)
	defer s.Close()

	const providerURL = "https://acme.example" // the agent card's provider.url
	// In production: verify.NewStatementVerifier(providerURL, &verify.Config{Runtime: rt}).
	v, err := verify.NewStatementVerifier(providerURL, &verify.Config{
		Runtime:           gcpmarketplace.Runtime{Clock: s.Clock().Now}, // the emulator's clock
		StatementCertsURL: s.StatementCertsURL(),                        // tests only: the emulator's keys
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	statement := s.StatementToken(marketplacetest.StatementParams{AccountID: "acct-1", OrderID: "order-1", Audience: providerURL})

	claims, err := v.Verify(ctx, statement)
	if err != nil {
		panic(err)
	}
	fmt.Println("account:", claims.AccountID)
	fmt.Println("order:", claims.OrderID)
	fmt.Println("redirect URIs:", len(claims.RedirectURIs))

	// A statement without an order is refused with its own reason.
	_, err = v.Verify(ctx, s.StatementToken(marketplacetest.StatementParams{
		AccountID: "acct-1", OrderID: "order-1", Audience: providerURL, Bad: marketplacetest.BadTokenNoOrder}))
	fmt.Println("no order:", errors.Is(err, verify.ErrTokenOrder))
	// Output:
	// account: acct-1
	// order: order-1
	// redirect URIs: 2
	// no order: true
}
