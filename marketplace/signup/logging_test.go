package signup_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/internal/testlog"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/signup"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
)

// Without a logger in Config, Handler logs its refusals to slog.Default()
// (issue 19, item 6). Not parallel: it replaces the process's default
// logger.
func TestSignupDefaultLoggerIsSlogDefault(t *testing.T) {
	logs := testlog.CaptureDefault(t)
	srv := marketplacetest.New(t)
	v, err := verify.NewSignupVerifier([]string{srv.ServiceName()},
		&verify.Config{Runtime: gcpmarketplace.Runtime{Clock: srv.Clock().Now}, SignupCertsURL: srv.CertsURL()})
	require.NoError(t, err)
	h := signup.Handler(v, nil, func(http.ResponseWriter, *http.Request, verify.SignupClaims) {
		t.Error("a forged token reached the page")
	})
	req := httptest.NewRequest(http.MethodPost, "/signup", strings.NewReader(url.Values{verify.SignupTokenField: {"not.a.token"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.True(t, rec.Code >= 400 && rec.Code < 500, "status %d", rec.Code)
	assert.Contains(t, logs.String(), "sign-up refused")
	assert.NotContains(t, logs.String(), "not.a.token", "tokens are never logged")
}
