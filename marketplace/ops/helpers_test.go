package ops_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gcpmarketplace/gcpmarketplace/internal/testlog"

	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/internal/testenv"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/ops"
)

const token = "s3cret-token"

// opsEnv is a Market with the ops Handler mounted at /ops on a test server.
type opsEnv struct {
	t testing.TB
	*testenv.Market
	h    *ops.Handler
	srv  *httptest.Server
	logs *logBuffer
}

func newOpsEnv(t testing.TB, policy marketplace.Policy) *opsEnv {
	t.Helper()
	m := testenv.NewMarket(t, policy)
	logs := &logBuffer{}
	h, err := ops.New(ops.Config{
		Runtime:   gcpmarketplace.Runtime{Clock: m.Server.Clock().Now, Logger: slog.New(slog.NewJSONHandler(logs, nil))},
		Processor: m.Proc, Reporter: m.Rep,
		Auth: ops.BearerTokens(map[string]string{token: "alice"}),
	})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/ops/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &opsEnv{t: t, Market: m, h: h, srv: srv, logs: logs}
}

// logBuffer collects JSON log lines.
type logBuffer struct{ testlog.Buffer }

// actions returns the logged operator actions, as "principal action id".
func (b *logBuffer) actions() []string {
	var out []string
	for line := range strings.SplitSeq(b.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "ops: operator action" {
			continue
		}
		out = append(out, rec["principal"].(string)+" "+rec["action"].(string)+" "+rec["id"].(string))
	}
	return out
}

// response is what a request got back.
type response struct {
	code   int
	header http.Header
	body   string
}

// json decodes the body into v.
func (r response) json(t testing.TB, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal([]byte(r.body), v), r.body)
}

// do sends a request to the test server, following no redirect. auth, if
// not nil, sets headers and cookies.
func (e *opsEnv) do(method, path string, body io.Reader, auth func(*http.Request)) response {
	e.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, e.srv.URL+path, body)
	require.NoError(e.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if auth != nil {
		auth(req)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return response{code: resp.StatusCode, header: resp.Header, body: string(b)}
}

func bearer(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

// get is an authenticated GET that must answer 200.
func (e *opsEnv) get(path string) response {
	e.t.Helper()
	r := e.do(http.MethodGet, path, nil, bearer(token))
	require.Equal(e.t, http.StatusOK, r.code, "GET %s: %s", path, r.body)
	return r
}

// getJSON is get, decoded into v.
func (e *opsEnv) getJSON(path string, v any) {
	e.t.Helper()
	e.get(path).json(e.t, v)
}

// post is an authenticated form POST.
func (e *opsEnv) post(path string, form url.Values) response {
	e.t.Helper()
	return e.do(http.MethodPost, path, strings.NewReader(form.Encode()), bearer(token))
}

func httptestRequest(t *testing.T, method, path string, headers map[string]string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	return r
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}
