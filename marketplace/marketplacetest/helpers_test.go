package marketplacetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	ccp "google.golang.org/api/cloudcommerceprocurement/v1"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	sc "google.golang.org/api/servicecontrol/v1"
)

func procurementClient(t *testing.T, s *Server, opts ...option.ClientOption) *ccp.Service {
	t.Helper()
	svc, err := ccp.NewService(context.Background(), append(s.ClientOptions(), opts...)...)
	require.NoError(t, err)
	return svc
}

func serviceControlClient(t *testing.T, s *Server, opts ...option.ClientOption) *sc.Service {
	t.Helper()
	svc, err := sc.NewService(context.Background(), append(s.ClientOptions(), opts...)...)
	require.NoError(t, err)
	return svc
}

// requireAPIError asserts err is a *googleapi.Error with this HTTP code and
// google.rpc status name, and returns it.
func requireAPIError(t *testing.T, err error, code int, status string) *googleapi.Error {
	t.Helper()
	var gerr *googleapi.Error
	require.True(t, errors.As(err, &gerr), "want *googleapi.Error, got %T: %v", err, err)
	require.Equal(t, code, gerr.Code, "HTTP code; body %s", gerr.Body)
	var body struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Status  string `json:"status"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(gerr.Body), &body), "error body %q", gerr.Body)
	require.Equal(t, status, body.Error.Status, "status; message %q", body.Error.Message)
	require.Equal(t, code, body.Error.Code)
	require.NotEmpty(t, gerr.Message)
	return gerr
}

// bodyRewriter is an http.RoundTripper that edits JSON request bodies, to
// send what a typed client cannot (unknown fields).
type bodyRewriter struct {
	base    http.RoundTripper
	rewrite func(map[string]any)
}

func (b bodyRewriter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		m := map[string]any{}
		if len(bytes.TrimSpace(raw)) > 0 {
			if err := json.Unmarshal(raw, &m); err != nil {
				return nil, err
			}
		}
		b.rewrite(m)
		raw, _ = json.Marshal(m)
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(raw))
		r.ContentLength = int64(len(raw))
	}
	return b.base.RoundTrip(r)
}

// withExtraField makes a client add an unknown field to every body.
func withExtraField(s *Server, name string) option.ClientOption {
	return option.WithHTTPClient(&http.Client{Transport: bodyRewriter{
		base:    s.client.Transport,
		rewrite: func(m map[string]any) { m[name] = 1 },
	}})
}

// eventTypesFor lists the event types published for one entitlement.
func eventTypesFor(s *Server, entitlementID string) []string {
	var out []string
	for _, e := range s.Published() {
		if e.EntitlementID == entitlementID && !e.Duplicate {
			out = append(out, e.EventType)
		}
	}
	return out
}

// approvedAccount creates an account and approves its signup through the API.
func approvedAccount(t *testing.T, s *Server, svc *ccp.Service) string {
	t.Helper()
	ctx := context.Background()
	id, err := s.CreateAccount(ctx)
	require.NoError(t, err)
	_, err = svc.Providers.Accounts.Approve(s.accountName(id), &ccp.ApproveAccountRequest{ApprovalName: "signup"}).Context(ctx).Do()
	require.NoError(t, err)
	return id
}
