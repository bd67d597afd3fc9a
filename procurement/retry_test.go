package procurement

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRetryPolicyDefaults(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{}.withDefaults()
	assert.Equal(t, RetryPolicy{MaxAttempts: 5, MaxElapsed: 30 * time.Second, InitialBackoff: 200 * time.Millisecond,
		MaxBackoff: 10 * time.Second, Multiplier: 2}, p)
	assert.Equal(t, 1, RetryPolicy{MaxAttempts: 1}.withDefaults().MaxAttempts)
}

func TestBackoffGrowsWithJitter(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, Multiplier: 2}.withDefaults()
	lo := func() float64 { return 0 }
	hi := func() float64 { return 1 }
	wantFull := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, full := range wantFull {
		full *= time.Millisecond
		assert.Equal(t, full/2, p.backoff(i+1, lo), "retry %d, least jitter", i+1)
		assert.Equal(t, full, p.backoff(i+1, hi), "retry %d, most jitter", i+1)
	}
	// Many retries do not overflow.
	assert.Equal(t, time.Second, p.backoff(1000, hi))
}
