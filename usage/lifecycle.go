package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Run flushes now and then every Config.FlushInterval until ctx is done or
// Close is called; it then returns nil. Flush errors are logged and
// retried at the next tick: nothing is lost, since the ledger keeps every
// window until it is confirmed. Run after Close returns nil at once.
func (r *Reporter) Run(ctx context.Context) error {
	r.lifeMu.Lock()
	if r.closed {
		r.lifeMu.Unlock()
		return nil
	}
	r.runs.Add(1)
	r.lifeMu.Unlock()
	defer r.runs.Done()

	t := time.NewTicker(r.cfg.interval)
	defer t.Stop()
	for {
		if err := r.Flush(ctx); err != nil && ctx.Err() == nil {
			r.log.ErrorContext(ctx, "usage flush failed; retrying at the next tick", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.closing:
			return nil
		case <-t.C:
		}
	}
}

// Close stops Run (waiting, within ctx, for the flush it is in to finish),
// then flushes one last time, so that the windows closed by now are
// sealed, checked and sent, and unregisters the Reporter's metric
// callbacks from the MeterProvider (after which another Reporter may
// observe the same gauges). It returns the error of the final flush, or
// ctx's if ctx ends first. Closing again does nothing and returns nil.
//
// Record and Register still work after Close: they only write the ledger,
// and the usage is reported by the next Reporter that runs over it.
func (r *Reporter) Close(ctx context.Context) error {
	r.lifeMu.Lock()
	if r.closed {
		r.lifeMu.Unlock()
		return nil
	}
	r.closed = true
	close(r.closing)
	r.lifeMu.Unlock()

	var errs []error
	stopped := make(chan struct{})
	go func() { r.runs.Wait(); close(stopped) }()
	select {
	case <-stopped:
		if err := r.Flush(ctx); err != nil {
			errs = append(errs, fmt.Errorf("usage: close: final flush: %w", err))
		}
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("usage: close: waiting for Run: %w", ctx.Err()))
	}
	if r.gauges != nil {
		if err := r.gauges.Unregister(); err != nil {
			errs = append(errs, fmt.Errorf("usage: close: unregister metrics: %w", err))
		}
	}
	return errors.Join(errs...)
}
