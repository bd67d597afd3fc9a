package marketplace

import (
	"context"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// Handler is your application's side of the Processor: one method per
// change the processor reports. Each method gets a [*Change] holding the
// state to act on: the entitlement or account as just re-read from the
// Procurement API, the state stored before, your linked account and the
// message that led there. Embed [HandlerDefaults] and write only the
// methods you need; [HandlerFunc] adapts one function to every method.
//
// A callback follows a change the processor observed, not a message (see
// the package documentation's table): OnEntitlementActive runs once when an
// entitlement becomes usable, whichever message revealed it, and never for
// a late ENTITLEMENT_ACTIVE after a cancellation.
//
// The contract:
//
//   - Returning nil means the change's effects are done and durable. The
//     processor then commits its own state and acknowledges the message.
//   - Returning an error means "not now": the message is not acknowledged
//     and is redelivered later, so the callback runs again. Make callbacks
//     idempotent (key them on the entitlement id and the state reached);
//     they also run again after a crash between their return and the
//     commit, and when a later callback for the same message fails.
//   - Returning an error wrapped by events.Permanent means retrying cannot
//     help: the processor records the message as poison and acknowledges it.
//   - A panic in a callback is recovered by the processor as a
//     [*PanicError], and the message is redelivered.
//   - The processor never runs two callbacks for the same account or
//     entitlement at the same time; callbacks for different resources may
//     run concurrently.
//   - ctx is cancelled when the processor stops or the message's deadline
//     passes; return promptly with its error. Work whose callbacks all
//     returned before a shutdown is still committed.
type Handler interface {
	// OnAccountActive: an account seen for the first time, whichever way
	// (an account message, an entitlement of it, CompleteSignup, Reconcile).
	OnAccountActive(ctx context.Context, c *Change) error
	// OnAccountDeleted: an account the Procurement API no longer has, after
	// its entitlements' turn-off callbacks. Delete the customer's data
	// (c.Linked.VendorUserID). Exactly once.
	OnAccountDeleted(ctx context.Context, c *Change) error

	// OnEntitlementCreationRequested: an entitlement first seen waiting for
	// approval. Informational: the Policy decides.
	OnEntitlementCreationRequested(ctx context.Context, c *Change) error
	// OnEntitlementActive: the entitlement became usable. Provision it.
	OnEntitlementActive(ctx context.Context, c *Change) error
	// OnEntitlementPlanChangeRequested: the customer asks for plan
	// c.Entitlement.NewPendingPlan. Informational: the Policy decides.
	OnEntitlementPlanChangeRequested(ctx context.Context, c *Change) error
	// OnEntitlementPlanChanged: the usable entitlement is now on plan
	// c.Entitlement.Plan (c.Previous.Plan before).
	OnEntitlementPlanChanged(ctx context.Context, c *Change) error
	// OnEntitlementPlanChangeCancelled: a pending plan change was rejected
	// or withdrawn; the plan stays.
	OnEntitlementPlanChangeCancelled(ctx context.Context, c *Change) error
	// OnEntitlementPendingCancellation: the entitlement ends at the end of
	// its term (c.Entitlement.OfferEndTime); keep serving until then.
	OnEntitlementPendingCancellation(ctx context.Context, c *Change) error
	// OnEntitlementCancellationReverted: a pending cancellation was taken
	// back.
	OnEntitlementCancellationReverted(ctx context.Context, c *Change) error
	// OnEntitlementCancelling: Google is cancelling the entitlement
	// (informational, once per eventId while it is not yet cancelled).
	OnEntitlementCancelling(ctx context.Context, c *Change) error
	// OnEntitlementCancelled: the entitlement ended. Turn the service off.
	OnEntitlementCancelled(ctx context.Context, c *Change) error
	// OnEntitlementDeleted: the entitlement no longer exists at Google
	// (after OnEntitlementCancelled).
	OnEntitlementDeleted(ctx context.Context, c *Change) error
	// OnEntitlementOfferAccepted: an approved entitlement waits for its
	// offer's start (c.Entitlement.NewOfferStartTime); OnEntitlementActive
	// follows then.
	OnEntitlementOfferAccepted(ctx context.Context, c *Change) error
	// OnEntitlementRenewed: the usable entitlement renewed for a new term
	// (informational, once per eventId).
	OnEntitlementRenewed(ctx context.Context, c *Change) error
	// OnEntitlementOfferEnded: the usable entitlement's offer ended; it goes
	// on at list price (informational, once per eventId).
	OnEntitlementOfferEnded(ctx context.Context, c *Change) error

	// OnUnknown receives messages whose eventType this SDK does not know
	// (c.Trigger is the *events.Unknown, c.Type its eventType). Returning
	// nil acknowledges them; returning an error would have them
	// redelivered until a new version of the SDK knows the type.
	OnUnknown(ctx context.Context, c *Change) error
}

// Change is the truth a callback acts on. The processor hands every
// callback its own Change: modifying it changes nothing the processor
// stores or shows the next callback.
type Change struct {
	// Type is the callback: events.TypeEntitlementActive for
	// OnEntitlementActive, and so on (for OnUnknown, the unknown eventType).
	Type events.Type

	// Entitlement is, in entitlement callbacks, the entitlement as just
	// re-read from the Procurement API: the state to act on. It is never nil
	// there. When the entitlement no longer exists (OnEntitlementDeleted, and
	// OnEntitlementCancelled for an entitlement found deleted), it is the
	// last state read: the one read earlier in this settlement, or else the
	// stored one (then only the fields the Store keeps are set: ID,
	// AccountID, ProductExternalName, Plan, NewPendingPlan, Offer, State,
	// UsageReportingID, UpdateTime). Nil in account callbacks and OnUnknown.
	Entitlement *procurement.Entitlement

	// Previous is, in entitlement callbacks, the entitlement as stored
	// before this change (its previous plan and state); nil when the
	// processor had not seen it before.
	Previous *Entitlement

	// Account is the account as just re-read from the Procurement API, when
	// the processor read it: in OnAccountActive, and in the entitlement
	// callbacks of a settlement that had to know whether the account signed
	// up (an entitlement waiting for approval). Nil otherwise, and in
	// OnAccountDeleted.
	Account *procurement.Account

	// Linked is the stored account of the customer concerned, with the
	// VendorUserID linked at sign-up; nil when the account is not known
	// locally. In OnAccountDeleted it is never nil: it is the record about
	// to be removed, the customer to purge (only its ID is set when the
	// account itself was never stored, only entitlements of it).
	Linked *Account

	// Trigger is the decoded message that led here. It may be of another
	// type than the callback: the callback follows the change observed, not
	// the message. Nil when no message did: CompleteSignup, Reconcile,
	// Approve, Reject, and the settlements an account's deletion or sign-up
	// starts for its entitlements.
	Trigger events.Event
}

// HandlerDefaults implements every [Handler] method by returning nil.
// Embed it in a handler to write only the methods it needs; methods added
// for new event types will not break your type.
type HandlerDefaults struct{}

var _ Handler = HandlerDefaults{}

// OnAccountActive returns nil.
func (HandlerDefaults) OnAccountActive(context.Context, *Change) error { return nil }

// OnAccountDeleted returns nil.
func (HandlerDefaults) OnAccountDeleted(context.Context, *Change) error { return nil }

// OnEntitlementCreationRequested returns nil.
func (HandlerDefaults) OnEntitlementCreationRequested(context.Context, *Change) error { return nil }

// OnEntitlementActive returns nil.
func (HandlerDefaults) OnEntitlementActive(context.Context, *Change) error { return nil }

// OnEntitlementPlanChangeRequested returns nil.
func (HandlerDefaults) OnEntitlementPlanChangeRequested(context.Context, *Change) error { return nil }

// OnEntitlementPlanChanged returns nil.
func (HandlerDefaults) OnEntitlementPlanChanged(context.Context, *Change) error { return nil }

// OnEntitlementPlanChangeCancelled returns nil.
func (HandlerDefaults) OnEntitlementPlanChangeCancelled(context.Context, *Change) error { return nil }

// OnEntitlementPendingCancellation returns nil.
func (HandlerDefaults) OnEntitlementPendingCancellation(context.Context, *Change) error { return nil }

// OnEntitlementCancellationReverted returns nil.
func (HandlerDefaults) OnEntitlementCancellationReverted(context.Context, *Change) error { return nil }

// OnEntitlementCancelling returns nil.
func (HandlerDefaults) OnEntitlementCancelling(context.Context, *Change) error { return nil }

// OnEntitlementCancelled returns nil.
func (HandlerDefaults) OnEntitlementCancelled(context.Context, *Change) error { return nil }

// OnEntitlementDeleted returns nil.
func (HandlerDefaults) OnEntitlementDeleted(context.Context, *Change) error { return nil }

// OnEntitlementOfferAccepted returns nil.
func (HandlerDefaults) OnEntitlementOfferAccepted(context.Context, *Change) error { return nil }

// OnEntitlementRenewed returns nil.
func (HandlerDefaults) OnEntitlementRenewed(context.Context, *Change) error { return nil }

// OnEntitlementOfferEnded returns nil.
func (HandlerDefaults) OnEntitlementOfferEnded(context.Context, *Change) error { return nil }

// OnUnknown returns nil: unknown events are acknowledged.
func (HandlerDefaults) OnUnknown(context.Context, *Change) error { return nil }

// HandlerFunc returns a [Handler] whose every method calls f. Use it to log
// or count every change, or to write the routing as a switch on c.Type.
func HandlerFunc(f func(ctx context.Context, c *Change) error) Handler {
	return handlerFunc(f)
}

type handlerFunc func(ctx context.Context, c *Change) error

func (f handlerFunc) OnAccountActive(ctx context.Context, c *Change) error  { return f(ctx, c) }
func (f handlerFunc) OnAccountDeleted(ctx context.Context, c *Change) error { return f(ctx, c) }
func (f handlerFunc) OnEntitlementCreationRequested(ctx context.Context, c *Change) error {
	return f(ctx, c)
}
func (f handlerFunc) OnEntitlementActive(ctx context.Context, c *Change) error { return f(ctx, c) }
func (f handlerFunc) OnEntitlementPlanChangeRequested(ctx context.Context, c *Change) error {
	return f(ctx, c)
}
func (f handlerFunc) OnEntitlementPlanChanged(ctx context.Context, c *Change) error {
	return f(ctx, c)
}
func (f handlerFunc) OnEntitlementPlanChangeCancelled(ctx context.Context, c *Change) error {
	return f(ctx, c)
}
func (f handlerFunc) OnEntitlementPendingCancellation(ctx context.Context, c *Change) error {
	return f(ctx, c)
}
func (f handlerFunc) OnEntitlementCancellationReverted(ctx context.Context, c *Change) error {
	return f(ctx, c)
}
func (f handlerFunc) OnEntitlementCancelling(ctx context.Context, c *Change) error {
	return f(ctx, c)
}
func (f handlerFunc) OnEntitlementCancelled(ctx context.Context, c *Change) error {
	return f(ctx, c)
}
func (f handlerFunc) OnEntitlementDeleted(ctx context.Context, c *Change) error { return f(ctx, c) }
func (f handlerFunc) OnEntitlementOfferAccepted(ctx context.Context, c *Change) error {
	return f(ctx, c)
}
func (f handlerFunc) OnEntitlementRenewed(ctx context.Context, c *Change) error { return f(ctx, c) }
func (f handlerFunc) OnEntitlementOfferEnded(ctx context.Context, c *Change) error {
	return f(ctx, c)
}
func (f handlerFunc) OnUnknown(ctx context.Context, c *Change) error { return f(ctx, c) }

// call runs the method of h that c.Type names; a type without a method
// goes to OnUnknown.
func call(ctx context.Context, h Handler, c *Change) error {
	switch c.Type {
	case events.TypeAccountActive:
		return h.OnAccountActive(ctx, c)
	case events.TypeAccountDeleted:
		return h.OnAccountDeleted(ctx, c)
	case events.TypeEntitlementCreationRequested:
		return h.OnEntitlementCreationRequested(ctx, c)
	case events.TypeEntitlementActive:
		return h.OnEntitlementActive(ctx, c)
	case events.TypeEntitlementPlanChangeRequested:
		return h.OnEntitlementPlanChangeRequested(ctx, c)
	case events.TypeEntitlementPlanChanged:
		return h.OnEntitlementPlanChanged(ctx, c)
	case events.TypeEntitlementPlanChangeCancelled:
		return h.OnEntitlementPlanChangeCancelled(ctx, c)
	case events.TypeEntitlementPendingCancellation:
		return h.OnEntitlementPendingCancellation(ctx, c)
	case events.TypeEntitlementCancellationReverted:
		return h.OnEntitlementCancellationReverted(ctx, c)
	case events.TypeEntitlementCancelling:
		return h.OnEntitlementCancelling(ctx, c)
	case events.TypeEntitlementCancelled:
		return h.OnEntitlementCancelled(ctx, c)
	case events.TypeEntitlementDeleted:
		return h.OnEntitlementDeleted(ctx, c)
	case events.TypeEntitlementOfferAccepted:
		return h.OnEntitlementOfferAccepted(ctx, c)
	case events.TypeEntitlementRenewed:
		return h.OnEntitlementRenewed(ctx, c)
	case events.TypeEntitlementOfferEnded:
		return h.OnEntitlementOfferEnded(ctx, c)
	}
	return h.OnUnknown(ctx, c)
}
