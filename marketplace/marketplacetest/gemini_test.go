package marketplacetest

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeAgent answers as an agent would: DCR at /dcr (a client for a
// statement, an RFC 7591 error without one), A2A at /a2a (a message for
// "hi", a task for "task", 401 without the token).
func fakeAgent(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /dcr", func(w http.ResponseWriter, r *http.Request) {
		var in map[string]string
		require.NoError(t, json.NewDecoder(r.Body).Decode(&in))
		w.Header().Set("Content-Type", "application/json")
		if _, ok := in["software_statement"]; !ok || r.URL.Query().Get("refuse") != "" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_software_statement","error_description":"bad"}`)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"client_id":"c-1","client_secret":"s-1","client_secret_expires_at":0}`)
	})
	mux.HandleFunc("POST /a2a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"invalid access token"}}`)
			return
		}
		var req struct {
			ID     string `json:"id"`
			Method string `json:"method"`
			Params struct {
				Message struct {
					Role  string    `json:"role"`
					Parts []a2aPart `json:"parts"`
				} `json:"message"`
				Metadata map[string]any `json:"metadata"`
			} `json:"params"`
		}
		require.NoError(t, json.NewDecoder(r.Body).Decode(&req))
		assert.Equal(t, "message/send", req.Method)
		assert.Equal(t, "user", req.Params.Message.Role)
		switch req.Params.Message.Parts[0].Text {
		case "task":
			_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":"`+req.ID+`","result":{"kind":"task","id":"t","artifacts":[{"parts":[{"kind":"text","text":"from "}]}],"status":{"state":"completed","message":{"kind":"message","parts":[{"kind":"text","text":"a task"}]}}}}`)
		default:
			_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":"`+req.ID+`","result":{"kind":"message","role":"agent","parts":[{"kind":"text","text":"hello `+
				req.Params.Message.Parts[0].Text+`"}]}}`)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestRegisterAgentAndSendMessage(t *testing.T) {
	t.Parallel()
	s := New(t)
	agent := fakeAgent(t)
	ctx := t.Context()

	id, secret, err := s.RegisterAgent(ctx, agent.URL+"/dcr", StatementParams{AccountID: "a", OrderID: "o", Audience: "https://x"})
	require.NoError(t, err)
	assert.Equal(t, "c-1", id)
	assert.Equal(t, "s-1", secret)

	_, _, err = s.RegisterAgent(ctx, agent.URL+"/dcr", StatementParams{})
	require.ErrorIs(t, err, ErrInvalidParams)
	_, _, err = s.RegisterAgent(ctx, agent.URL+"/dcr?refuse=1", StatementParams{AccountID: "a", OrderID: "o"})
	var ae *AgentError
	require.ErrorAs(t, err, &ae)
	assert.True(t, errors.Is(err, ErrAgentCall))
	assert.Equal(t, http.StatusBadRequest, ae.StatusCode)
	assert.Equal(t, "invalid_software_statement", ae.OAuthError)

	reply, err := s.SendAgentMessage(ctx, agent.URL+"/a2a", "tok", "hi")
	require.NoError(t, err)
	assert.Equal(t, "hello hi", reply)
	reply, err = s.SendAgentMessageMetadata(ctx, agent.URL+"/a2a", "tok", "task", map[string]any{"software_statement": "x"})
	require.NoError(t, err)
	assert.Equal(t, "from a task", reply)

	_, err = s.SendAgentMessage(ctx, agent.URL+"/a2a", "wrong", "hi")
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusUnauthorized, ae.StatusCode)
	assert.Equal(t, -32001, ae.RPCCode)

	_, err = s.SendAgentMessage(ctx, agent.URL+"/missing", "tok", "hi")
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusNotFound, ae.StatusCode)
}

// An order id distinct from the entitlement id reaches the entitlement.
func TestPurchaseOrderID(t *testing.T) {
	t.Parallel()
	s := New(t)
	id, err := s.Purchase(t.Context(), PurchaseParams{OrderID: "order-7", AutoApprove: true})
	require.NoError(t, err)
	e, _ := s.Entitlement(id)
	assert.Equal(t, "order-7", e.OrderID)
	id, err = s.Purchase(t.Context(), PurchaseParams{AutoApprove: true})
	require.NoError(t, err)
	e, _ = s.Entitlement(id)
	assert.Equal(t, id, e.OrderID)
}

// Whatever an agent answers, the emulator returns a reply or an
// *AgentError, never panics.
func FuzzParseSendReply(f *testing.F) {
	f.Add(200, []byte(`{"jsonrpc":"2.0","id":"1","result":{"kind":"message","parts":[{"kind":"text","text":"hi"}]}}`))
	f.Add(200, []byte(`{"jsonrpc":"2.0","id":"1","result":{"kind":"task","artifacts":[{"parts":[{"kind":"text","text":"a"}]}],"status":{"message":{"parts":[]}}}}`))
	f.Add(401, []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"no"}}`))
	f.Add(500, []byte(`<html>`))
	f.Fuzz(func(t *testing.T, status int, raw []byte) {
		reply, err := parseSendReply(status, raw)
		if err != nil {
			var ae *AgentError
			if !errors.As(err, &ae) || reply != "" {
				t.Fatalf("reply %q, error %v", reply, err)
			}
		}
	})
}

// The control API plays Gemini Enterprise for agents tested from other
// languages.
func TestGeminiControl(t *testing.T) {
	t.Parallel()
	s := New(t)
	agent := fakeAgent(t)
	post := func(path, body string) (int, map[string]any) {
		resp, err := http.Post(s.URL()+path, "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}
	status, out := post("/control/gemini:register", `{"dcrUrl":"`+agent.URL+`/dcr","accountId":"a","orderId":"o","audience":"https://x"}`)
	require.Equal(t, http.StatusOK, status, out)
	assert.Equal(t, "c-1", out["clientId"])
	assert.Equal(t, "s-1", out["clientSecret"])
	status, _ = post("/control/gemini:register", `{"dcrUrl":"`+agent.URL+`/dcr"}`)
	assert.Equal(t, http.StatusBadRequest, status)

	status, out = post("/control/gemini:send", `{"agentUrl":"`+agent.URL+`/a2a","accessToken":"tok","text":"hi","statement":{"accountId":"a","orderId":"o"}}`)
	require.Equal(t, http.StatusOK, status, out)
	assert.Equal(t, "hello hi", out["reply"])
	status, out = post("/control/gemini:send", `{"agentUrl":"`+agent.URL+`/a2a","accessToken":"bad","text":"hi"}`)
	assert.Equal(t, http.StatusBadGateway, status)
	assert.Contains(t, out["error"].(map[string]any)["message"], "-32001")

	status, out = post("/control/statementToken", `{"accountId":"a","orderId":"o","audience":"https://x"}`)
	require.Equal(t, http.StatusOK, status, out)
	assert.Equal(t, 3, strings.Count(out["token"].(string), ".")+1, "a JWT")
	status, out = post("/control/statementToken", `{"accountId":"a","orderId":"o","audience":"https://x","bad":"expired"}`)
	require.Equal(t, http.StatusOK, status, out)
	assert.NotEmpty(t, out["token"])
	status, _ = post("/control/statementToken", `{"accountId":"a","audience":"https://x"}`)
	assert.Equal(t, http.StatusBadRequest, status, "no order")
	status, _ = post("/control/statementToken", `{"accountId":"a","orderId":"o","audience":"https://x","bad":"no-such-kind"}`)
	assert.Equal(t, http.StatusBadRequest, status, "unknown kind")
}
