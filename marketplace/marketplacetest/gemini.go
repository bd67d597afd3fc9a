package marketplacetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// This file plays Gemini Enterprise, the caller of an AI agent sold on
// Marketplace: it registers at the agent's Dynamic Client Registration
// endpoint with a software_statement, and calls the agent over A2A v0.3
// JSON-RPC with an access token. It speaks the wire (net/http and JSON),
// not an A2A SDK, so that it tests the agent's SDK rather than sharing its
// mistakes.

// ErrAgentCall is matched by every *AgentError.
var ErrAgentCall = errors.New("marketplacetest: agent call failed")

// AgentError is a refusal by an agent's DCR endpoint or A2A endpoint: the
// HTTP status and, when the body carried one, the RFC 7591 error
// (OAuthError, Description) or the JSON-RPC error (RPCCode, Message).
type AgentError struct {
	Op          string // "register" or the JSON-RPC method
	StatusCode  int    // HTTP status
	OAuthError  string // RFC 7591 error code, e.g. "invalid_software_statement"
	Description string // RFC 7591 error_description
	RPCCode     int    // JSON-RPC error code; 0 if none
	Message     string // JSON-RPC error message, or the body when unparsed
}

func (e *AgentError) Error() string {
	switch {
	case e.RPCCode != 0:
		return fmt.Sprintf("marketplacetest: agent %s: HTTP %d, JSON-RPC error %d: %s", e.Op, e.StatusCode, e.RPCCode, e.Message)
	case e.OAuthError != "":
		return fmt.Sprintf("marketplacetest: agent %s: HTTP %d, %s: %s", e.Op, e.StatusCode, e.OAuthError, e.Description)
	}
	return fmt.Sprintf("marketplacetest: agent %s: HTTP %d: %s", e.Op, e.StatusCode, e.Message)
}

// Is makes every AgentError match ErrAgentCall.
func (e *AgentError) Is(target error) bool { return target == ErrAgentCall }

// maxAgentBody bounds what the emulator reads of an agent's answer.
const maxAgentBody = 1 << 20

// RegisterAgent registers Gemini Enterprise at an agent's DCR endpoint
// (the agent card's DCR extension target_url): it POSTs
// {"software_statement": <a statement minted from p>} and returns the
// client the agent issued. Any answer but 200 or 201 with a client id is an
// *AgentError.
func (s *Server) RegisterAgent(ctx context.Context, dcrURL string, p StatementParams) (clientID, clientSecret string, err error) {
	if p.AccountID == "" || p.OrderID == "" {
		return "", "", fmt.Errorf("%w: RegisterAgent needs the statement's AccountID and OrderID", ErrInvalidParams)
	}
	body, _ := json.Marshal(map[string]string{"software_statement": s.StatementToken(p)})
	status, raw, err := postJSON(ctx, dcrURL, "", body)
	if err != nil {
		return "", "", fmt.Errorf("register at %s: %w", dcrURL, err)
	}
	var out struct {
		ClientID         string `json:"client_id"`
		ClientSecret     string `json:"client_secret"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	jsonErr := json.Unmarshal(raw, &out)
	if (status == http.StatusOK || status == http.StatusCreated) && jsonErr == nil && out.ClientID != "" {
		return out.ClientID, out.ClientSecret, nil
	}
	e := &AgentError{Op: "register", StatusCode: status, OAuthError: out.Error, Description: out.ErrorDescription}
	if out.Error == "" {
		e.Message = snippet(raw)
	}
	return "", "", e
}

// SendAgentMessage sends text to the agent at agentURL (its A2A JSON-RPC
// endpoint) as Gemini Enterprise does after the user consented: an A2A
// v0.3 message/send with Authorization: Bearer accessToken. It returns the
// text of the agent's reply (a message, or a task's artifacts and status
// message). An HTTP or JSON-RPC error is an *AgentError.
func (s *Server) SendAgentMessage(ctx context.Context, agentURL, accessToken, text string) (reply string, err error) {
	return s.SendAgentMessageMetadata(ctx, agentURL, accessToken, text, nil)
}

// SendAgentMessageMetadata is SendAgentMessage with params.metadata set,
// e.g. {"software_statement": s.StatementToken(p)}, as a vendor knowledge
// base reports Gemini Enterprise sends (Google does not document it).
func (s *Server) SendAgentMessageMetadata(ctx context.Context, agentURL, accessToken, text string, metadata map[string]any) (reply string, err error) {
	params := map[string]any{"message": map[string]any{
		"kind": "message", "messageId": randomID(), "role": "user",
		"parts": []any{map[string]any{"kind": "text", "text": text}},
	}}
	if metadata != nil {
		params["metadata"] = metadata
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": randomID(), "method": "message/send", "params": params})
	status, raw, err := postJSON(ctx, agentURL, accessToken, body)
	if err != nil {
		return "", fmt.Errorf("message/send to %s: %w", agentURL, err)
	}
	return parseSendReply(status, raw)
}

// parseSendReply reads a message/send answer: the reply's text, or an
// *AgentError.
func parseSendReply(status int, raw []byte) (string, error) {
	var out struct {
		Result *a2aResult `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	jsonErr := json.Unmarshal(raw, &out)
	switch {
	case jsonErr == nil && out.Error != nil:
		return "", &AgentError{Op: "message/send", StatusCode: status, RPCCode: out.Error.Code, Message: out.Error.Message}
	case status != http.StatusOK || jsonErr != nil || out.Result == nil:
		return "", &AgentError{Op: "message/send", StatusCode: status, Message: snippet(raw)}
	}
	return out.Result.text(), nil
}

// a2aResult is what message/send returns: a Message (kind "message") or a
// Task (kind "task"), of which the emulator reads only the text.
type a2aResult struct {
	Kind      string    `json:"kind"`
	Parts     []a2aPart `json:"parts"`
	Artifacts []struct {
		Parts []a2aPart `json:"parts"`
	} `json:"artifacts"`
	Status struct {
		Message *struct {
			Parts []a2aPart `json:"parts"`
		} `json:"message"`
	} `json:"status"`
}

type a2aPart struct {
	Kind string `json:"kind"`
	Text string `json:"text"`
}

func (r *a2aResult) text() string {
	var b strings.Builder
	add := func(ps []a2aPart) {
		for _, p := range ps {
			if p.Kind == "text" {
				b.WriteString(p.Text)
			}
		}
	}
	add(r.Parts)
	for _, a := range r.Artifacts {
		add(a.Parts)
	}
	if r.Status.Message != nil {
		add(r.Status.Message.Parts)
	}
	return b.String()
}

// postJSON POSTs body and returns the status and (bounded) body of the
// answer.
func postJSON(ctx context.Context, url, bearer string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAgentBody))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("read the answer: %w", err)
	}
	return resp.StatusCode, raw, nil
}

func snippet(b []byte) string {
	const n = 200
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Control routes playing Gemini Enterprise, for agents tested from other
// languages or by hand (see control.go):
//
//	POST /control/gemini:register {dcrUrl, accountId, orderId, audience, redirectUris?}
//	     → {"clientId", "clientSecret"}
//	POST /control/gemini:send {agentUrl, accessToken, text, statement?: {accountId, orderId, audience}}
//	     → {"reply"}
//	POST /control/statementToken {accountId, orderId, audience, redirectUris?, bad?}
//	     → {"token"} (a software_statement, good or of a StatementAttackTokens kind)
//
// The agent's refusal is a 502 whose message is the *AgentError's.
func (s *Server) geminiControlRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /control/gemini:register", s.controlGeminiRegister)
	mux.HandleFunc("POST /control/gemini:send", s.controlGeminiSend)
	mux.HandleFunc("POST /control/statementToken", s.controlStatementToken)
}

func (s *Server) controlStatementToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		controlStatement
		Bad BadToken `json:"bad"`
	}
	if err := decodeControlBody(w, r, &req); err != nil {
		writeControlResult(w, nil, err)
		return
	}
	if req.AccountID == "" || req.OrderID == "" || req.Audience == "" {
		writeControlResult(w, nil, badControlRequest("statementToken needs accountId, orderId and audience"))
		return
	}
	p := req.params()
	p.Bad = req.Bad
	tok, err := s.statement.mintStatement(p)
	if err != nil {
		err = badControlRequest("%v", err)
	}
	writeControlResult(w, map[string]string{"token": tok}, err)
}

type controlStatement struct {
	AccountID    string   `json:"accountId"`
	OrderID      string   `json:"orderId"`
	Audience     string   `json:"audience"`
	RedirectURIs []string `json:"redirectUris"`
}

func (c controlStatement) params() StatementParams {
	return StatementParams{AccountID: c.AccountID, OrderID: c.OrderID, Audience: c.Audience, RedirectURIs: c.RedirectURIs}
}

func (s *Server) controlGeminiRegister(w http.ResponseWriter, r *http.Request) {
	var req struct {
		DCRURL string `json:"dcrUrl"`
		controlStatement
	}
	if err := decodeControlBody(w, r, &req); err != nil {
		writeControlResult(w, nil, err)
		return
	}
	if req.DCRURL == "" {
		writeControlResult(w, nil, badControlRequest("dcrUrl is required"))
		return
	}
	id, secret, err := s.RegisterAgent(r.Context(), req.DCRURL, req.params())
	writeControlResult(w, map[string]string{"clientId": id, "clientSecret": secret}, agentControlError(err))
}

func (s *Server) controlGeminiSend(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AgentURL    string            `json:"agentUrl"`
		AccessToken string            `json:"accessToken"`
		Text        string            `json:"text"`
		Statement   *controlStatement `json:"statement"`
	}
	if err := decodeControlBody(w, r, &req); err != nil {
		writeControlResult(w, nil, err)
		return
	}
	if req.AgentURL == "" {
		writeControlResult(w, nil, badControlRequest("agentUrl is required"))
		return
	}
	var metadata map[string]any
	if req.Statement != nil {
		if req.Statement.AccountID == "" || req.Statement.OrderID == "" {
			writeControlResult(w, nil, badControlRequest("statement needs accountId and orderId"))
			return
		}
		metadata = map[string]any{"software_statement": s.StatementToken(req.Statement.params())}
	}
	reply, err := s.SendAgentMessageMetadata(r.Context(), req.AgentURL, req.AccessToken, req.Text, metadata)
	writeControlResult(w, map[string]string{"reply": reply}, agentControlError(err))
}

// agentControlError makes the agent's refusal or unreachability a 502.
func agentControlError(err error) error {
	if err == nil || errors.Is(err, ErrInvalidParams) {
		return err
	}
	return &controlError{code: http.StatusBadGateway, status: "UNAVAILABLE", msg: err.Error()}
}
