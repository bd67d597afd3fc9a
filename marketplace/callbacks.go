package marketplace

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
)

// runCallbacks runs the callbacks of steps, in order. Each gets its own
// Change: base (what the settlement knows besides the entitlement) with
// the step's type and entitlement.
func (p *Processor) runCallbacks(ctx context.Context, id string, steps []step, base Change, source string, log *slog.Logger) error {
	for _, s := range steps {
		c := base
		c.Type, c.Entitlement = s.kind, s.ent
		log.LogAttrs(ctx, slog.LevelDebug, "marketplace: entitlement callback",
			slog.String("callback", string(s.kind)), slog.String("source", source))
		if err := p.dispatch(ctx, &c, log); err != nil {
			return fmt.Errorf("marketplace: %s callback for entitlement %s: %w", s.kind, id, err)
		}
	}
	return nil
}

// dispatch runs the handler's method for c.Type with a copy of what c
// points to, so that a callback that changes its argument (or keeps it)
// changes nothing the processor stores or later callbacks see. A panic is
// turned into a *PanicError.
func (p *Processor) dispatch(ctx context.Context, c *Change, log *slog.Logger) (err error) {
	defer func() {
		if v := recover(); v != nil {
			pe := &PanicError{Value: v, Stack: debug.Stack()}
			log.LogAttrs(ctx, slog.LevelError, "marketplace: callback panicked; message not acknowledged",
				slog.Any("panic", v), slog.String("stack", string(pe.Stack)))
			err = pe
		}
	}()
	own := Change{Type: c.Type, Entitlement: clone(c.Entitlement), Previous: clone(c.Previous),
		Account: clone(c.Account), Linked: clone(c.Linked), Trigger: c.Trigger}
	return call(ctx, p.handler, &own)
}

// clone returns a pointer to a copy of *v, or nil.
func clone[T any](v *T) *T {
	if v == nil {
		return nil
	}
	c := *v
	return &c
}
