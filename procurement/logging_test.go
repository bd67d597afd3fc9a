package procurement_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/internal/testlog"
	mt "github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

// Without Config.Logger the client logs to slog.Default(), as the Go ecosystem
// does; it used to discard (issue 19, item 6). Not parallel: it replaces
// the process's default logger.
func TestDefaultLoggerIsSlogDefault(t *testing.T) {
	logs := testlog.CaptureDefault(t)
	b := setup(t)
	id := b.purchase(t, mt.PurchaseParams{})
	b.srv.InjectFault(mt.Fault{Method: mt.MethodEntitlementsGet, Kind: mt.FaultStatus, Status: 503})
	_, err := b.client.GetEntitlement(t.Context(), id)
	require.NoError(t, err)
	assert.Contains(t, logs.String(), "procurement: retrying")
}
