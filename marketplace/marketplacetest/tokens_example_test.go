package marketplacetest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

// A sign-up handler under test receives the JWT Marketplace would post, and
// verifies it against the emulator's certificate URL.
func ExampleServer_SignupToken() {
	s := marketplacetest.New(nil)
	defer s.Close()

	signup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.PostFormValue("x-gcp-marketplace-token")
		// A real handler verifies tok with the keys at s.CertsURL(); here
		// we only peek at the payload.
		payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
		var claims struct {
			Iss, Aud, Sub string
			Iat, Exp      int64
			Google        struct{ Roles []string }
		}
		_ = json.Unmarshal(payload, &claims)
		fmt.Println("iss:", claims.Iss == marketplacetest.SignupIssuer)
		fmt.Println("aud:", claims.Aud)
		fmt.Println("sub:", claims.Sub)
		fmt.Println("lifetime:", claims.Exp-claims.Iat, "s")
		fmt.Println("roles:", claims.Google.Roles)
	}))
	defer signup.Close()

	tok := s.SignupToken(marketplacetest.TokenParams{Subject: "acct-1", Audience: "example-service.endpoints.acme-provider.cloud.goog"})
	resp, err := http.PostForm(signup.URL, url.Values{"x-gcp-marketplace-token": {tok}})
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	// Output:
	// iss: true
	// aud: example-service.endpoints.acme-provider.cloud.goog
	// sub: acct-1
	// lifetime: 300 s
	// roles: [account_admin]
}

// An attack suite: every token in SignupAttackTokens must be refused.
func ExampleSignupAttackTokens() {
	s := marketplacetest.New(nil)
	defer s.Close()

	for _, kind := range marketplacetest.SignupAttackTokens()[:4] {
		tok := s.SignupToken(marketplacetest.TokenParams{
			Subject:  "acct-1",
			Audience: "example-service.endpoints.acme-provider.cloud.goog",
			Bad:      kind,
		})
		// verifySignupToken(tok) must fail here.
		fmt.Println(kind, len(tok) > 0)
	}
	// Output:
	// alg-none true
	// hs256-public-key true
	// wrong-issuer true
	// attacker-issuer true
}

// Push delivers a message to a push endpoint the way Pub/Sub does.
func ExampleServer_Push() {
	s := marketplacetest.New(nil)
	defer s.Close()

	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A real endpoint verifies the bearer token against s.PushJWKSURL().
		fmt.Println("bearer:", strings.HasPrefix(r.Header.Get("Authorization"), "Bearer "))
		body, _ := io.ReadAll(r.Body)
		var env struct {
			Message struct {
				Data       []byte // base64 in JSON
				Attributes map[string]string
			}
			Subscription string
		}
		_ = json.Unmarshal(body, &env)
		fmt.Println("data:", string(env.Message.Data))
		fmt.Println("subscription:", env.Subscription)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer endpoint.Close()

	resp, err := s.Push(context.Background(), endpoint.URL, marketplacetest.PushParams{
		Audience: endpoint.URL, // Pub/Sub's default audience: the endpoint URL
		Data:     []byte(`{"eventId":"e-1"}`),
	})
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println("status:", resp.StatusCode)
	// Output:
	// bearer: true
	// data: {"eventId":"e-1"}
	// subscription: projects/vendor-project/subscriptions/marketplace-push
	// status: 204
}
