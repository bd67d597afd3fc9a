package procurement

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/internal/testhook"
)

// RetryPolicy bounds the retries of one Client call. The zero value is the
// default policy; set MaxAttempts to 1 to turn retries off.
//
// Retried: 429 (waiting at least as long as its Retry-After header asks),
// 500, 502, 503, 504 and transport errors, for reads and for idempotent
// writes (SetMessageToUser). Approvals and rejections are never blindly
// repeated: their helpers re-read the resource and act again only if the
// change is still needed, under the same budget.
type RetryPolicy struct {
	// MaxAttempts is the number of attempts, the first included, that one
	// call may make (reads and writes of a helper count together). 0 means 5.
	MaxAttempts int
	// MaxElapsed bounds the time a call spends, sleeps included; a retry
	// whose delay would end after it is not made. 0 means 30 s. The
	// context's deadline also applies.
	MaxElapsed time.Duration
	// InitialBackoff is the delay before the first retry. 0 means 200 ms.
	InitialBackoff time.Duration
	// MaxBackoff caps the growing delay (not a Retry-After). 0 means 10 s.
	MaxBackoff time.Duration
	// Multiplier is the growth factor of the delay. 0 means 2.
	Multiplier float64
}

// withDefaults fills the zero fields.
func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 5
	}
	if p.MaxElapsed <= 0 {
		p.MaxElapsed = 30 * time.Second
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = 200 * time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 10 * time.Second
	}
	if p.MaxBackoff < p.InitialBackoff {
		p.MaxBackoff = p.InitialBackoff
	}
	if p.Multiplier < 1 {
		p.Multiplier = 2
	}
	return p
}

// backoff is the delay before retry number n (1-based), with "equal
// jitter": half fixed, half random, so that retries of many clients spread
// out but never collapse to zero.
func (p RetryPolicy) backoff(n int, rnd func() float64) time.Duration {
	d := float64(p.InitialBackoff)
	for i := 1; i < n && d < float64(p.MaxBackoff); i++ {
		d *= p.Multiplier
	}
	d = min(d, float64(p.MaxBackoff))
	return time.Duration(d/2 + rnd()*d/2)
}

// retrier is the retry state of one Client call.
type retrier struct {
	c        *Client
	method   Method
	resource string
	start    time.Time
	attempts int // attempts made so far
}

func (c *Client) newRetrier(method Method, resource string) *retrier {
	return &retrier{c: c, method: method, resource: resource, start: c.now()}
}

// attempt records the start of an attempt.
func (r *retrier) attempt() { r.attempts++ }

// wait decides whether err deserves another attempt and sleeps before it.
// It returns nil when the caller should try again, or the error to return.
func (r *retrier) wait(ctx context.Context, err error) error {
	if !IsRetryable(err) || ctx.Err() != nil {
		return err
	}
	p := r.c.retry
	if r.attempts >= p.MaxAttempts {
		return err
	}
	delay := p.backoff(r.attempts, rand.Float64)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.RetryAfter > delay {
		delay = apiErr.RetryAfter
	}
	if r.c.now().Add(delay).Sub(r.start) > p.MaxElapsed {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && r.c.now().Add(delay).After(dl) {
		return err
	}
	r.c.logger.LogAttrs(ctx, slog.LevelInfo, "procurement: retrying",
		slog.String("method", string(r.method)),
		slog.String("resource", r.resource),
		slog.Int("attempt", r.attempts),
		slog.Duration("delay", delay),
		slog.String("error", err.Error()))
	if serr := r.c.sleep(ctx, delay); serr != nil {
		// The context ended while waiting: the last API error says more
		// than "context canceled", so keep both.
		return &gaveUpError{err: err, ctxErr: serr}
	}
	method := r.method
	if apiErr != nil && apiErr.Method != "" {
		method = apiErr.Method // the call retried, e.g. a read within an approval
	}
	r.c.metrics.retry(ctx, method)
	return nil
}

// gaveUpError is a retryable failure whose retry was abandoned because the
// context ended while waiting. It matches both errors and is not retryable.
type gaveUpError struct {
	err, ctxErr error
}

func (e *gaveUpError) Error() string {
	return fmt.Sprintf("%v (gave up waiting to retry: %v)", e.err, e.ctxErr)
}

func (e *gaveUpError) Unwrap() []error { return []error{e.err, e.ctxErr} }

// SafeToRetry is false: the caller's context has ended.
func (e *gaveUpError) SafeToRetry() bool { return false }

// budgetLeft reports whether another attempt may be made.
func (r *retrier) budgetLeft() bool {
	return r.attempts < r.c.retry.MaxAttempts && r.c.now().Sub(r.start) < r.c.retry.MaxElapsed
}

// sleepContext waits for d or until ctx ends.
func sleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func init() {
	testhook.SetProcurementSleep = func(client any, sleep func(context.Context, time.Duration) error) {
		client.(*Client).sleep = sleep
	}
}
