package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/a2aproject/a2a-go/a2a"
	"github.com/a2aproject/a2a-go/a2asrv"
	"github.com/a2aproject/a2a-go/a2asrv/eventqueue"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/agent"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// DCRExtensionURI declares the DCR endpoint in the agent card. Gemini
// Enterprise reads it; treat it as an identifier, not a page to fetch.
const DCRExtensionURI = "https://cloud.google.com/marketplace/docs/partners/ai-agents/setup-dcr"

// Paths of the agent's endpoints.
const (
	a2aPath = "/a2a" // A2A JSON-RPC (the card's url)
	dcrPath = "/dcr" // Dynamic Client Registration (the DCR extension's target_url)
)

// metricMessages is the usage metric: one unit per message/send.
const metricMessages = "send_message_requests"

// agentCard is the A2A agent card: provider.url is the audience of the
// software statements Gemini Enterprise sends to the DCR endpoint; the
// oauth2 scheme points at the authorization server that issues the
// tokens the agent accepts.
func (s *service) agentCard() *a2a.AgentCard {
	const scheme = a2a.SecuritySchemeName("vendor-oauth")
	return &a2a.AgentCard{
		Name:               "Echo Agent (gcpmarketplace example)",
		Description:        "Repeats what you say, and meters every message to its Marketplace order.",
		URL:                s.url + a2aPath,
		PreferredTransport: a2a.TransportProtocolJSONRPC,
		ProtocolVersion:    string(a2a.Version),
		Version:            "1.0.0",
		Provider:           &a2a.AgentProvider{Org: "Example Vendor", URL: s.cfg.ProviderURL},
		Capabilities: a2a.AgentCapabilities{
			Streaming: true,
			Extensions: []a2a.AgentExtension{{
				URI:         DCRExtensionURI,
				Description: "Dynamic Client Registration for Gemini Enterprise",
				Params:      map[string]any{"target_url": s.url + dcrPath},
			}},
		},
		SecuritySchemes: a2a.NamedSecuritySchemes{scheme: a2a.OAuth2SecurityScheme{
			Flows: a2a.OAuthFlows{AuthorizationCode: &a2a.AuthorizationCodeOAuthFlow{
				AuthorizationURL: s.cfg.AuthorizationURL,
				TokenURL:         s.cfg.TokenURL,
				Scopes:           map[string]string{"agent.use": "Use the agent"},
			}},
		}},
		Security:           []a2a.SecurityRequirements{{scheme: a2a.SecuritySchemeScopes{"agent.use"}}},
		DefaultInputModes:  []string{"text/plain"},
		DefaultOutputModes: []string{"text/plain"},
		Skills: []a2a.AgentSkill{{ID: "echo", Name: "Echo", Description: "Repeats the message.",
			Tags: []string{"example"}}},
	}
}

// routes: the card and the DCR endpoint are public (Gemini Enterprise
// authenticates the DCR call with the signed statement); A2A requires a
// token of an active order.
func (s *service) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.Handle("GET "+a2asrv.WellKnownAgentCardPath, a2asrv.NewStaticAgentCardHandler(s.agentCard()))
	mux.Handle("POST "+dcrPath, s.registry.DCRHandler())
	a2aHandler := a2asrv.NewJSONRPCHandler(a2asrv.NewHandler(&executor{s: s}))
	mux.Handle("POST "+a2aPath, s.registry.Middleware(s.tokens)(a2aHandler))
	if s.idp != nil {
		mux.HandleFunc("POST "+standinTokenPath, s.idp.tokenHandler)
	}
	return mux
}

// executor is the agent: it echoes the user's text, after metering the
// message to the caller's order.
type executor struct{ s *service }

var _ a2asrv.AgentExecutor = (*executor)(nil)

// errNoCaller means the executor ran without the middleware: a wiring bug.
var errNoCaller = errors.New("no caller in the request context (is the A2A handler behind Registry.Middleware?)")

func (e *executor) Execute(ctx context.Context, reqCtx *a2asrv.RequestContext, q eventqueue.Queue) error {
	caller, ok := agent.CallerFrom(ctx)
	if !ok {
		return errNoCaller
	}
	if err := e.crossCheckStatement(ctx, caller, reqCtx.Metadata); err != nil {
		return err
	}
	// Metered per order: the entitlement the order bills, whose
	// usageReportingId is the Service Control consumer.
	err := e.s.reporter.Record(ctx, usage.Record{EntitlementID: caller.Entitlement.ID, Metric: metricMessages, Int64: 1})
	if err != nil {
		e.s.log.ErrorContext(ctx, "recording usage failed", "order", caller.Order.ID, "error", err)
		return fmt.Errorf("%w: usage not recorded", a2a.ErrInternalError)
	}
	var text strings.Builder
	if reqCtx.Message != nil {
		for _, p := range reqCtx.Message.Parts {
			if t, ok := p.(a2a.TextPart); ok {
				text.WriteString(t.Text)
			}
		}
	}
	reply := a2a.NewMessage(a2a.MessageRoleAgent, a2a.TextPart{Text: "echo: " + text.String()})
	return q.Write(ctx, reply)
}

func (e *executor) Cancel(ctx context.Context, reqCtx *a2asrv.RequestContext, q eventqueue.Queue) error {
	return nil
}

// crossCheckStatement: Gemini Enterprise is reported (not documented) to
// put a software_statement in the request metadata. When there is one, it
// must name the same order as the token; IdentifyStatement caches it, so
// this costs a lookup after the first request.
func (e *executor) crossCheckStatement(ctx context.Context, caller agent.Caller, metadata map[string]any) error {
	stmt, _ := metadata["software_statement"].(string)
	if stmt == "" {
		return nil
	}
	byStatement, err := e.s.registry.IdentifyStatement(ctx, stmt)
	if err != nil && !statementRefused(err) {
		// Google's keys, the store or Procurement failed: nothing is
		// known about the statement, and the client may retry.
		e.s.log.ErrorContext(ctx, "software_statement not checked", "order", caller.Order.ID, "error", err)
		return fmt.Errorf("%w: software_statement could not be checked, try again", a2a.ErrInternalError)
	}
	if err != nil || byStatement.Order.ID != caller.Order.ID {
		e.s.log.WarnContext(ctx, "software_statement refused", "order", caller.Order.ID, "error", err)
		return fmt.Errorf("%w: software_statement does not match the token's order", a2a.ErrInvalidRequest)
	}
	return nil
}

// statementRefused reports whether an IdentifyStatement error is about the
// statement (bad, of an unknown or inactive order, of another account),
// not a failure to check it (Google's signing keys unavailable, the store
// or Procurement down), which retrying may cure.
func statementRefused(err error) bool {
	if errors.Is(err, marketplace.ErrNotFound) || errors.Is(err, agent.ErrOrderInactive) ||
		errors.Is(err, agent.ErrStatementMismatch) {
		return true
	}
	var te *verify.TokenError
	return errors.As(err, &te) && !te.Retryable()
}
