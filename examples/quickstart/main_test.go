package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The quickstart plays the whole lifecycle and exits cleanly: this is the
// README's first command, run in-process so that it never rots.
func TestQuickstartLifecycle(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	began := time.Now()
	err := run(ctx, nil, &out)
	require.NoError(t, err, out.String())
	t.Logf("quickstart took %s", time.Since(began))
	got := out.String()
	for _, want := range []string{
		"PURCHASE", "parked until the account signs up",
		"SIGN-UP", "token verified", "approval \"signup\" is APPROVED",
		"ENTITLEMENT_ACTIVE received",
		"services.check passed, then services.report accepted 09:00-10:00: 245 requests",
		"services.check passed, then services.report accepted 11:00-12:00: 192 requests",
		"OnEntitlementPlanChangeRequested", "now on plan \"premium\"",
		"OnEntitlementPendingCancellation", "OnEntitlementCancelled",
		"usage after the cancellation is refused",
		"OnAccountDeleted", "customer data purged",
		"13/13 completed",
		"754 requests recorded = 754 reported in 3 hourly operations, 0 double-billed",
		"OK: every step happened.",
	} {
		assert.Contains(t, got, want)
	}
	assert.NotContains(t, got, "FAILED")
	// The step lines are numbered 1..13 in order.
	last := 0
	for _, line := range strings.Split(got, "\n") {
		if i := strings.Index(line, " ✓ "); i > 0 {
			var n int
			_, err := fmt.Sscan(strings.TrimSpace(line[10:i]), &n)
			require.NoError(t, err, line)
			require.Equal(t, last+1, n, line)
			last = n
		}
	}
	assert.Equal(t, 13, last)
}

// A step that cannot happen fails the run with an error that names it
// instead of hanging.
func TestQuickstartFailsOnTimeout(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, []string{"-step-timeout", "1ns"}, &out)
	require.Error(t, err)
	assert.Contains(t, out.String(), "FAILED after")
}

func TestQuickstartBadFlag(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.Error(t, run(context.Background(), []string{"-nope"}, &out))
}
