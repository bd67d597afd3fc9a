package usage_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/gcpmarketplace/gcpmarketplace/internal/testlog"
)

// Without WithLogger the reporter logs to slog.Default(), as the Go
// ecosystem does; it used to discard, so a consumer blocked from billing
// printed nothing (issue 19, item 6). Not parallel: it replaces the
// process's default logger.
func TestDefaultLoggerIsSlogDefault(t *testing.T) {
	logs := testlog.CaptureDefault(t)
	e := newEnv(t, nil)
	t0 := e.clock.Now()
	broke := e.consumer(t0, time.Time{})
	e.record(broke, "requests", 3, t0, nil)
	e.clock.Advance(time.Hour + 2*time.Minute)
	e.srv.SetCheckError(broke.UsageReportingID, "BILLING_DISABLED")
	e.flush()
	assert.Contains(t, logs.String(), "consumer blocked")
}
