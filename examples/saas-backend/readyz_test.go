package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

// /readyz is unready while Run is not running; a failed message alone does
// not make it unready.
func TestReceivingProblem(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	for name, c := range map[string]struct {
		h       marketplace.Health
		unready bool
	}{
		"not running":            {marketplace.Health{}, true},
		"running, nothing yet":   {marketplace.Health{Running: true, Since: t0}, false},
		"error, nothing since":   {marketplace.Health{Running: true, LastError: "callback failed", LastErrorAt: t0}, false},
		"error, then a message":  {marketplace.Health{Running: true, LastError: "x", LastErrorAt: t0, LastMessage: t0.Add(time.Second)}, false},
		"message, then an error": {marketplace.Health{Running: true, LastError: "x", LastErrorAt: t0.Add(time.Second), LastMessage: t0}, false},
		"stopped after an error": {marketplace.Health{LastError: "pull failed", LastErrorAt: t0}, true},
	} {
		assert.Equal(t, c.unready, receivingProblem(c.h) != "", name)
	}
}
