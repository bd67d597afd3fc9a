package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/gcpmarketplace/gcpmarketplace/examples/internal/exampletest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

func noEnv(string) string { return "" }

func start(t *testing.T) *service {
	t.Helper()
	s, out := exampletest.Serve(t, "msg=stopped", func(ctx context.Context, out io.Writer, ready func(*service)) error {
		return serve(ctx, []string{"-emulator", "-listen", "127.0.0.1:0"}, noEnv, out, ready)
	})
	assert.Contains(t, out.String(), "STAND-IN")
	return s
}

// Against Google the example needs your identity provider: it refuses to
// start with the stand-in.
func TestRefusesWithoutIdentityProvider(t *testing.T) {
	t.Parallel()
	err := serve(context.Background(), []string{"-secret-key", randomHex(32)}, noEnv, &bytes.Buffer{}, nil)
	require.ErrorContains(t, err, "no identity provider")
}

// The card declares provider.url, the DCR extension and the oauth2 scheme.
func TestAgentCard(t *testing.T) {
	t.Parallel()
	s := start(t)
	resp, err := http.Get(s.url + "/.well-known/agent-card.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	var card struct {
		URL             string `json:"url"`
		ProtocolVersion string `json:"protocolVersion"`
		Provider        struct {
			URL string `json:"url"`
		} `json:"provider"`
		Capabilities struct {
			Extensions []struct {
				URI    string         `json:"uri"`
				Params map[string]any `json:"params"`
			} `json:"extensions"`
		} `json:"capabilities"`
		SecuritySchemes map[string]struct {
			Type  string `json:"type"`
			Flows struct {
				AuthorizationCode struct {
					TokenURL string `json:"tokenUrl"`
				} `json:"authorizationCode"`
			} `json:"flows"`
		} `json:"securitySchemes"`
		Security []map[string][]string `json:"security"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&card))
	assert.Equal(t, s.url+a2aPath, card.URL)
	assert.Equal(t, "0.3.0", card.ProtocolVersion)
	assert.Equal(t, s.cfg.ProviderURL, card.Provider.URL)
	require.Len(t, card.Capabilities.Extensions, 1)
	assert.Equal(t, DCRExtensionURI, card.Capabilities.Extensions[0].URI)
	assert.Equal(t, s.url+dcrPath, card.Capabilities.Extensions[0].Params["target_url"])
	require.Contains(t, card.SecuritySchemes, "vendor-oauth")
	assert.Equal(t, "oauth2", card.SecuritySchemes["vendor-oauth"].Type)
	assert.Equal(t, s.url+standinTokenPath, card.SecuritySchemes["vendor-oauth"].Flows.AuthorizationCode.TokenURL)
	assert.Equal(t, []map[string][]string{{"vendor-oauth": {"agent.use"}}}, card.Security)
}

// The whole story: a purchase, Gemini Enterprise registering twice (same
// credentials), A2A messages with a token of that client, the usage billed
// to the order's consumer, the cancellation revoking the client, and the
// next request refused.
func TestAgentStory(t *testing.T) {
	t.Parallel()
	s := start(t)
	ctx := t.Context()
	const orderID = "order-story-1" // distinct from the entitlement id, which Google does not promise
	id, err := s.emu.Purchase(ctx, marketplacetest.PurchaseParams{UsageBased: true, AutoApprove: true, OrderID: orderID})
	require.NoError(t, err)
	ent, _ := s.emu.Entitlement(id)
	require.Eventually(t, func() bool { // Pub/Sub told the processor
		e, err := s.proc.Entitlement(ctx, id)
		return err == nil && e.State == procurement.EntitlementActive
	}, 15*time.Second, 20*time.Millisecond)
	s.emu.Clock().Advance(time.Second) // usage starts after the registration of the consumer

	// Gemini Enterprise registers, and again: the same client.
	stmt := marketplacetest.StatementParams{AccountID: ent.AccountID, OrderID: orderID, Audience: s.cfg.ProviderURL}
	clientID, secret, err := s.emu.RegisterAgent(ctx, s.url+dcrPath, stmt)
	require.NoError(t, err)
	clientID2, secret2, err := s.emu.RegisterAgent(ctx, s.url+dcrPath, stmt)
	require.NoError(t, err)
	assert.Equal(t, clientID, clientID2)
	assert.Equal(t, secret, secret2)

	// The user consented; Gemini Enterprise holds a token of that client.
	cc := clientcredentials.Config{ClientID: clientID, ClientSecret: secret, TokenURL: s.url + standinTokenPath}
	tok, err := cc.Token(ctx)
	require.NoError(t, err)

	reply, err := s.emu.SendAgentMessage(ctx, s.url+a2aPath, tok.AccessToken, "hello")
	require.NoError(t, err)
	assert.Equal(t, "echo: hello", reply)
	reply, err = s.emu.SendAgentMessageMetadata(ctx, s.url+a2aPath, tok.AccessToken, "again",
		map[string]any{"software_statement": s.emu.StatementToken(stmt)})
	require.NoError(t, err)
	assert.Equal(t, "echo: again", reply)

	_, err = s.emu.SendAgentMessage(ctx, s.url+a2aPath, "not-a-token", "hello")
	assertRefused(t, err, http.StatusUnauthorized)
	// A statement of another order than the token's is refused (and not billed).
	other := stmt
	other.OrderID = "order-of-someone-else"
	_, err = s.emu.SendAgentMessageMetadata(ctx, s.url+a2aPath, tok.AccessToken, "spoof",
		map[string]any{"software_statement": s.emu.StatementToken(other)})
	var rpcErr *marketplacetest.AgentError
	require.ErrorAs(t, err, &rpcErr)
	assert.NotZero(t, rpcErr.RPCCode)
	order, err := s.registry.Order(ctx, orderID)
	require.NoError(t, err)
	assert.Equal(t, id, order.EntitlementID)

	// The hour ends: both messages are billed to the order's consumer.
	s.emu.Clock().Advance(2 * time.Hour)
	metric := s.emu.ServiceName() + "/" + metricMessages
	require.Eventually(t, func() bool { return s.emu.BilledTotal(ent.UsageReportingID, metric) == 2 },
		15*time.Second, 20*time.Millisecond)
	assert.Empty(t, s.emu.Violations())

	// The customer cancels: the client is revoked, its token refused, and
	// registering again is refused.
	require.NoError(t, s.emu.Cancel(ctx, id, true))
	require.Eventually(t, func() bool {
		o, err := s.registry.Order(ctx, orderID)
		return err == nil && o.Revoked()
	}, 15*time.Second, 20*time.Millisecond)
	_, err = s.emu.SendAgentMessage(ctx, s.url+a2aPath, tok.AccessToken, "still there?")
	assertRefused(t, err, http.StatusUnauthorized)
	_, _, err = s.emu.RegisterAgent(ctx, s.url+dcrPath, stmt)
	var ae *marketplacetest.AgentError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusBadRequest, ae.StatusCode)
	assert.Equal(t, "unapproved_software_statement", ae.OAuthError)
}

func assertRefused(t *testing.T, err error, status int) {
	t.Helper()
	var ae *marketplacetest.AgentError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, status, ae.StatusCode)
	assert.Equal(t, -32001, ae.RPCCode)
}
