package procurement

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Outcome says what an idempotent change did.
type Outcome string

const (
	// OutcomeApplied: this call sent the write that made the change (or
	// sent one whose response was lost, and a re-read showed the change in
	// place).
	OutcomeApplied Outcome = "applied"
	// OutcomeAlreadyDone: the first read showed the change already in place
	// (approved earlier, by another caller, or moved past the state the
	// change applies to); no write was sent.
	OutcomeAlreadyDone Outcome = "already done"
)

// change describes one idempotent change of a resource of type T.
type change[T any] struct {
	method Method
	// get reads the resource under the call's retry budget.
	get func(ctx context.Context, r *retrier) (T, error)
	// decide reports whether the change is in place (done) in cur, or an
	// error if it can neither be made nor counted as made. sent says
	// whether a write of this call may have been applied.
	decide func(cur *T, sent bool) (done bool, err error)
	// act sends the write, once, and returns the generated client's error.
	act func(ctx context.Context, cur *T) error
	// updateTime identifies a version of the resource, to tell whether it
	// changed between two reads.
	updateTime func(cur *T) int64
	// goneMeansDone: a 404 on re-read after a write means the write
	// applied (rejected entitlements are removed).
	goneMeansDone bool
	// explain may replace the error of a write refused with
	// FAILED_PRECONDITION when the resource did not change (e.g. to say the
	// account's sign-up is not approved).
	explain func(ctx context.Context, r *retrier, cur *T, err *APIError) error
}

// runChange reads the resource, writes only if the change is not yet in
// place, and after any doubtful write failure reads again to decide. It
// returns the latest state read and the outcome.
func runChange[T any](ctx context.Context, c *Client, name string, ch change[T]) (T, Outcome, error) {
	r := c.newRetrier(ch.method, name)
	var (
		cur     T
		have    bool // cur is fresh: no need to read before deciding
		sent    bool // a write may have been applied
		lastErr error
	)
	outcome := func() Outcome {
		if sent {
			return OutcomeApplied
		}
		return OutcomeAlreadyDone
	}
	for {
		if !have {
			v, err := ch.get(ctx, r)
			if err != nil {
				o, err := ch.readFailed(err, sent, lastErr)
				return cur, o, err
			}
			cur = v
		}
		have = false
		done, err := ch.decide(&cur, sent)
		if err != nil {
			return cur, "", err
		}
		if done {
			return cur, outcome(), nil
		}
		if lastErr != nil && !r.budgetLeft() {
			return cur, "", lastErr
		}
		before := ch.updateTime(&cur)
		werr := ch.write(ctx, c, r, name, &cur)
		if werr == nil {
			return ch.readBack(ctx, c, r, name, cur), OutcomeApplied, nil
		}
		lastErr = werr
		var apiErr *APIError
		isAPI := errors.As(werr, &apiErr)
		switch {
		case IsRetryable(werr):
			// 429 means the server did not act; a 5xx or a broken
			// connection may hide a write that happened.
			sent = sent || mayHaveActed(werr)
			if err := r.wait(ctx, werr); err != nil {
				return cur, "", err
			}
		case errors.Is(werr, ErrFailedPrecondition), errors.Is(werr, ErrConflict), errors.Is(werr, ErrInvalidArgument) && sent:
			// The state may have moved on (approved by an earlier attempt
			// whose response was lost, or by someone else): re-read, and
			// decide again if the resource changed.
			v, err := ch.get(ctx, r)
			if err != nil {
				if sent && ch.goneMeansDone && errors.Is(err, ErrNotFound) {
					return cur, OutcomeApplied, nil
				}
				return cur, "", werr
			}
			changed := ch.updateTime(&v) != before
			cur, have = v, true
			if done, derr := ch.decide(&cur, sent); derr != nil || done {
				continue // decide again at the top of the loop
			}
			if !changed {
				if ch.explain != nil && isAPI {
					return cur, "", ch.explain(ctx, r, &cur, apiErr)
				}
				return cur, "", werr
			}
			// Changed but the change is still needed (e.g. a new pending
			// plan): act again if the budget allows.
		default:
			return cur, "", werr
		}
	}
}

// readFailed is what runChange returns when reading the resource failed:
// applied if the write removed it, else the read's error, or the earlier
// write's failure when it says more.
func (ch *change[T]) readFailed(err error, sent bool, lastErr error) (Outcome, error) {
	if sent && ch.goneMeansDone && errors.Is(err, ErrNotFound) {
		return OutcomeApplied, nil
	}
	if lastErr != nil && !errors.Is(err, ErrNotFound) {
		// The write's failure explains more than the re-read's.
		return "", fmt.Errorf("%w (re-reading state after it failed: %v)", lastErr, err)
	}
	return "", err
}

// write sends the change's write once, counting the attempt against the
// retry budget and in the metrics, and returns its error as an API error.
func (ch *change[T]) write(ctx context.Context, c *Client, r *retrier, name string, cur *T) error {
	r.attempt()
	start := time.Now()
	werr := ch.act(ctx, cur)
	if werr != nil {
		werr = c.apiErr(ch.method, name, werr)
	}
	c.metrics.attempt(ctx, ch.method, start, werr)
	return werr
}

// readBack reads the resource after a write that succeeded, so the caller
// sees the state the change produced. It returns cur if the resource is gone
// (and gone means done) or the read fails: the change is applied either way,
// so a failed read is only logged.
func (ch *change[T]) readBack(ctx context.Context, c *Client, r *retrier, name string, cur T) T {
	v, err := ch.get(ctx, r)
	switch {
	case err == nil:
		return v
	case errors.Is(err, ErrNotFound) && ch.goneMeansDone:
	default:
		c.logger.LogAttrs(ctx, slog.LevelWarn, "procurement: change applied but reading it back failed",
			slog.String("method", string(ch.method)), slog.String("resource", name),
			slog.String("error", err.Error()))
	}
	return cur
}
