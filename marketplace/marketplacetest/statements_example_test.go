package marketplacetest_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

// A DCR endpoint under test receives the software_statement Gemini
// Enterprise would send; it verifies it with the keys at
// s.StatementCertsURL() (verify.Config.StatementCertsURL).
func ExampleServer_StatementToken() {
	s := marketplacetest.New(nil)
	defer s.Close()

	tok := s.StatementToken(marketplacetest.StatementParams{
		AccountID: "acct-1", OrderID: "order-1", Audience: "https://acme.example",
	})
	body, _ := json.Marshal(map[string]string{"software_statement": tok})
	_ = body // POST it to the DCR endpoint

	// Here we only peek at the payload.
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	var claims struct {
		Iss, Aud, Sub string
		Iat, Exp      int64
		Google        struct{ Order string }
		Redirect      []string `json:"auth_app_redirect_uris"`
	}
	_ = json.Unmarshal(payload, &claims)
	fmt.Println("iss:", claims.Iss == marketplacetest.AgentspaceIssuer)
	fmt.Println("aud:", claims.Aud)
	fmt.Println("sub:", claims.Sub)
	fmt.Println("order:", claims.Google.Order)
	fmt.Println("lifetime:", claims.Exp-claims.Iat, "s")
	fmt.Println("redirect URIs:", claims.Redirect)
	// Output:
	// iss: true
	// aud: https://acme.example
	// sub: acct-1
	// order: order-1
	// lifetime: 300 s
	// redirect URIs: [https://vertexaisearch.cloud.google.com/oauth-redirect https://vertexaisearch.cloud.google.com/static/oauth/oauth.html]
}

// An attack suite: every statement in StatementAttackTokens must be
// refused by the DCR endpoint.
func ExampleStatementAttackTokens() {
	s := marketplacetest.New(nil)
	defer s.Close()

	minted := 0
	for _, kind := range marketplacetest.StatementAttackTokens() {
		tok := s.StatementToken(marketplacetest.StatementParams{
			AccountID: "acct-1", OrderID: "order-1", Audience: "https://acme.example", Bad: kind,
		})
		_ = tok // send it; expect a refusal
		minted++
	}
	fmt.Println("attack statements:", minted)
	// Output:
	// attack statements: 28
}
