package events

import (
	"context"
	"errors"
	"fmt"
)

// Handler receives decoded events, one method per event type. Embed
// [HandlerDefaults] and write only the methods you need: the others return
// nil, and methods added for new event types will not break your type.
//
// The contract with the processor that calls it (package marketplace):
//
//   - Returning nil means the event's effects are done and durable. The
//     processor then commits its own state and acknowledges the message.
//   - Returning an error means "not now": the message is not acknowledged
//     and is redelivered later, so the callback runs again. Make callbacks
//     idempotent; they also run again after a crash between their return
//     and the acknowledgement.
//   - Returning an error wrapped by [Permanent] means retrying cannot help:
//     the processor records the message as poison and acknowledges it.
//   - A panic in a callback is recovered by the processor and treated as an
//     error (the message is redelivered).
//   - The processor never runs two callbacks for the same account or
//     entitlement at the same time; callbacks for different resources may
//     run concurrently.
//   - ctx is cancelled when the processor stops or the message's deadline
//     passes; return promptly with its error.
//
// An event's fields are hints (see the package documentation): by the time
// a callback runs, the processor has re-read the resource from the Partner
// Procurement API, and that state is the one to act on.
type Handler interface {
	OnAccountMessage(ctx context.Context, e *AccountMessage) error
	OnAccountCreationRequested(ctx context.Context, e *AccountCreationRequested) error
	OnAccountActive(ctx context.Context, e *AccountActive) error
	OnAccountDeleted(ctx context.Context, e *AccountDeleted) error

	OnEntitlementCreationRequested(ctx context.Context, e *EntitlementCreationRequested) error
	OnEntitlementActive(ctx context.Context, e *EntitlementActive) error
	OnEntitlementPlanChangeRequested(ctx context.Context, e *EntitlementPlanChangeRequested) error
	OnEntitlementPlanChanged(ctx context.Context, e *EntitlementPlanChanged) error
	OnEntitlementPlanChangeCancelled(ctx context.Context, e *EntitlementPlanChangeCancelled) error
	OnEntitlementPendingCancellation(ctx context.Context, e *EntitlementPendingCancellation) error
	OnEntitlementCancellationReverted(ctx context.Context, e *EntitlementCancellationReverted) error
	OnEntitlementCancelling(ctx context.Context, e *EntitlementCancelling) error
	OnEntitlementCancelled(ctx context.Context, e *EntitlementCancelled) error
	OnEntitlementDeleted(ctx context.Context, e *EntitlementDeleted) error
	OnEntitlementOfferAccepted(ctx context.Context, e *EntitlementOfferAccepted) error
	OnEntitlementRenewed(ctx context.Context, e *EntitlementRenewed) error
	OnEntitlementOfferEnded(ctx context.Context, e *EntitlementOfferEnded) error

	// OnUnknown receives messages whose eventType this package does not
	// know. Returning nil acknowledges them; returning an error would have
	// them redelivered until a new version of the SDK knows the type.
	OnUnknown(ctx context.Context, e *Unknown) error
}

// HandlerDefaults implements every [Handler] method by returning nil.
// Embed it in a handler to write only the methods it needs.
type HandlerDefaults struct{}

var _ Handler = HandlerDefaults{}

// OnAccountMessage returns nil.
func (HandlerDefaults) OnAccountMessage(context.Context, *AccountMessage) error { return nil }

// OnAccountCreationRequested returns nil.
func (HandlerDefaults) OnAccountCreationRequested(context.Context, *AccountCreationRequested) error {
	return nil
}

// OnAccountActive returns nil.
func (HandlerDefaults) OnAccountActive(context.Context, *AccountActive) error { return nil }

// OnAccountDeleted returns nil.
func (HandlerDefaults) OnAccountDeleted(context.Context, *AccountDeleted) error { return nil }

// OnEntitlementCreationRequested returns nil.
func (HandlerDefaults) OnEntitlementCreationRequested(context.Context, *EntitlementCreationRequested) error {
	return nil
}

// OnEntitlementActive returns nil.
func (HandlerDefaults) OnEntitlementActive(context.Context, *EntitlementActive) error { return nil }

// OnEntitlementPlanChangeRequested returns nil.
func (HandlerDefaults) OnEntitlementPlanChangeRequested(context.Context, *EntitlementPlanChangeRequested) error {
	return nil
}

// OnEntitlementPlanChanged returns nil.
func (HandlerDefaults) OnEntitlementPlanChanged(context.Context, *EntitlementPlanChanged) error {
	return nil
}

// OnEntitlementPlanChangeCancelled returns nil.
func (HandlerDefaults) OnEntitlementPlanChangeCancelled(context.Context, *EntitlementPlanChangeCancelled) error {
	return nil
}

// OnEntitlementPendingCancellation returns nil.
func (HandlerDefaults) OnEntitlementPendingCancellation(context.Context, *EntitlementPendingCancellation) error {
	return nil
}

// OnEntitlementCancellationReverted returns nil.
func (HandlerDefaults) OnEntitlementCancellationReverted(context.Context, *EntitlementCancellationReverted) error {
	return nil
}

// OnEntitlementCancelling returns nil.
func (HandlerDefaults) OnEntitlementCancelling(context.Context, *EntitlementCancelling) error {
	return nil
}

// OnEntitlementCancelled returns nil.
func (HandlerDefaults) OnEntitlementCancelled(context.Context, *EntitlementCancelled) error {
	return nil
}

// OnEntitlementDeleted returns nil.
func (HandlerDefaults) OnEntitlementDeleted(context.Context, *EntitlementDeleted) error { return nil }

// OnEntitlementOfferAccepted returns nil.
func (HandlerDefaults) OnEntitlementOfferAccepted(context.Context, *EntitlementOfferAccepted) error {
	return nil
}

// OnEntitlementRenewed returns nil.
func (HandlerDefaults) OnEntitlementRenewed(context.Context, *EntitlementRenewed) error { return nil }

// OnEntitlementOfferEnded returns nil.
func (HandlerDefaults) OnEntitlementOfferEnded(context.Context, *EntitlementOfferEnded) error {
	return nil
}

// OnUnknown returns nil: unknown events are acknowledged.
func (HandlerDefaults) OnUnknown(context.Context, *Unknown) error { return nil }

// HandlerFunc adapts one function to a [Handler]: every method calls it with
// the event. Use it to log or count every event, or to write the routing as
// a type switch.
type HandlerFunc func(ctx context.Context, e Event) error

var _ Handler = HandlerFunc(nil)

// OnAccountMessage calls f(ctx, e).
func (f HandlerFunc) OnAccountMessage(ctx context.Context, e *AccountMessage) error {
	return f(ctx, e)
}

// OnAccountCreationRequested calls f(ctx, e).
func (f HandlerFunc) OnAccountCreationRequested(ctx context.Context, e *AccountCreationRequested) error {
	return f(ctx, e)
}

// OnAccountActive calls f(ctx, e).
func (f HandlerFunc) OnAccountActive(ctx context.Context, e *AccountActive) error { return f(ctx, e) }

// OnAccountDeleted calls f(ctx, e).
func (f HandlerFunc) OnAccountDeleted(ctx context.Context, e *AccountDeleted) error {
	return f(ctx, e)
}

// OnEntitlementCreationRequested calls f(ctx, e).
func (f HandlerFunc) OnEntitlementCreationRequested(ctx context.Context, e *EntitlementCreationRequested) error {
	return f(ctx, e)
}

// OnEntitlementActive calls f(ctx, e).
func (f HandlerFunc) OnEntitlementActive(ctx context.Context, e *EntitlementActive) error {
	return f(ctx, e)
}

// OnEntitlementPlanChangeRequested calls f(ctx, e).
func (f HandlerFunc) OnEntitlementPlanChangeRequested(ctx context.Context, e *EntitlementPlanChangeRequested) error {
	return f(ctx, e)
}

// OnEntitlementPlanChanged calls f(ctx, e).
func (f HandlerFunc) OnEntitlementPlanChanged(ctx context.Context, e *EntitlementPlanChanged) error {
	return f(ctx, e)
}

// OnEntitlementPlanChangeCancelled calls f(ctx, e).
func (f HandlerFunc) OnEntitlementPlanChangeCancelled(ctx context.Context, e *EntitlementPlanChangeCancelled) error {
	return f(ctx, e)
}

// OnEntitlementPendingCancellation calls f(ctx, e).
func (f HandlerFunc) OnEntitlementPendingCancellation(ctx context.Context, e *EntitlementPendingCancellation) error {
	return f(ctx, e)
}

// OnEntitlementCancellationReverted calls f(ctx, e).
func (f HandlerFunc) OnEntitlementCancellationReverted(ctx context.Context, e *EntitlementCancellationReverted) error {
	return f(ctx, e)
}

// OnEntitlementCancelling calls f(ctx, e).
func (f HandlerFunc) OnEntitlementCancelling(ctx context.Context, e *EntitlementCancelling) error {
	return f(ctx, e)
}

// OnEntitlementCancelled calls f(ctx, e).
func (f HandlerFunc) OnEntitlementCancelled(ctx context.Context, e *EntitlementCancelled) error {
	return f(ctx, e)
}

// OnEntitlementDeleted calls f(ctx, e).
func (f HandlerFunc) OnEntitlementDeleted(ctx context.Context, e *EntitlementDeleted) error {
	return f(ctx, e)
}

// OnEntitlementOfferAccepted calls f(ctx, e).
func (f HandlerFunc) OnEntitlementOfferAccepted(ctx context.Context, e *EntitlementOfferAccepted) error {
	return f(ctx, e)
}

// OnEntitlementRenewed calls f(ctx, e).
func (f HandlerFunc) OnEntitlementRenewed(ctx context.Context, e *EntitlementRenewed) error {
	return f(ctx, e)
}

// OnEntitlementOfferEnded calls f(ctx, e).
func (f HandlerFunc) OnEntitlementOfferEnded(ctx context.Context, e *EntitlementOfferEnded) error {
	return f(ctx, e)
}

// OnUnknown calls f(ctx, e).
func (f HandlerFunc) OnUnknown(ctx context.Context, e *Unknown) error { return f(ctx, e) }

// ErrInvalidDispatch is matched by the errors Dispatch returns for a nil
// Handler or a nil Event. It marks a programming error, not a bad message.
var ErrInvalidDispatch = errors.New("events: invalid Dispatch")

// Dispatch calls the method of h that matches ev's concrete type and
// returns its error unchanged. A nil h or a nil ev (also a typed nil
// pointer) is reported as an error matching [ErrInvalidDispatch]; no
// callback runs. Dispatch does not recover panics: that is the processor's
// job (see [Handler]).
func Dispatch(ctx context.Context, h Handler, ev Event) error {
	if h == nil {
		return fmt.Errorf("%w: nil Handler", ErrInvalidDispatch)
	}
	switch e := ev.(type) {
	case *AccountMessage:
		return call(ctx, h.OnAccountMessage, e)
	case *AccountCreationRequested:
		return call(ctx, h.OnAccountCreationRequested, e)
	case *AccountActive:
		return call(ctx, h.OnAccountActive, e)
	case *AccountDeleted:
		return call(ctx, h.OnAccountDeleted, e)
	case *EntitlementCreationRequested:
		return call(ctx, h.OnEntitlementCreationRequested, e)
	case *EntitlementActive:
		return call(ctx, h.OnEntitlementActive, e)
	case *EntitlementPlanChangeRequested:
		return call(ctx, h.OnEntitlementPlanChangeRequested, e)
	case *EntitlementPlanChanged:
		return call(ctx, h.OnEntitlementPlanChanged, e)
	case *EntitlementPlanChangeCancelled:
		return call(ctx, h.OnEntitlementPlanChangeCancelled, e)
	case *EntitlementPendingCancellation:
		return call(ctx, h.OnEntitlementPendingCancellation, e)
	case *EntitlementCancellationReverted:
		return call(ctx, h.OnEntitlementCancellationReverted, e)
	case *EntitlementCancelling:
		return call(ctx, h.OnEntitlementCancelling, e)
	case *EntitlementCancelled:
		return call(ctx, h.OnEntitlementCancelled, e)
	case *EntitlementDeleted:
		return call(ctx, h.OnEntitlementDeleted, e)
	case *EntitlementOfferAccepted:
		return call(ctx, h.OnEntitlementOfferAccepted, e)
	case *EntitlementRenewed:
		return call(ctx, h.OnEntitlementRenewed, e)
	case *EntitlementOfferEnded:
		return call(ctx, h.OnEntitlementOfferEnded, e)
	case *Unknown:
		return call(ctx, h.OnUnknown, e)
	case nil:
		return fmt.Errorf("%w: nil Event", ErrInvalidDispatch)
	}
	// Unreachable: Event's unexported method admits only the types above.
	return fmt.Errorf("%w: unsupported Event type %T", ErrInvalidDispatch, ev)
}

// call guards against a typed nil event, which would otherwise reach the
// callback and panic there.
func call[T any](ctx context.Context, f func(context.Context, *T) error, e *T) error {
	if e == nil {
		return fmt.Errorf("%w: nil %T", ErrInvalidDispatch, e)
	}
	return f(ctx, e)
}
