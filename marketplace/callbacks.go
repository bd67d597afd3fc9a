package marketplace

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// runCallbacks runs the callbacks of steps, in order.
func (p *Processor) runCallbacks(ctx context.Context, id string, steps []step, info cbInfo, tr entTrigger, log *slog.Logger) error {
	for _, s := range steps {
		info.ent = s.ent
		ev := p.entitlementEvent(s.kind, tr.ev, id, s.ent, info.prev)
		log.LogAttrs(ctx, slog.LevelDebug, "marketplace: entitlement callback",
			slog.String("callback", string(s.kind)), slog.String("source", tr.source))
		if err := p.dispatch(withInfo(ctx, &info), ev, log); err != nil {
			return fmt.Errorf("marketplace: %s callback for entitlement %s: %w", s.kind, id, err)
		}
	}
	return nil
}

// entitlementEvent is the event handed to the callback of kind k: the
// message's own event when it is of that type, otherwise one built from
// the re-read resource (its EventID is the message's, or "" when no message
// triggered the change).
func (p *Processor) entitlementEvent(k events.Type, trigger events.Event, id string, e *procurement.Entitlement, prev *Entitlement) events.Event {
	if trigger != nil && trigger.Type() == k {
		return trigger
	}
	h := events.Header{EventType: k, ProviderID: p.client.ProviderID()}
	if trigger != nil {
		h.EventID = trigger.ID()
	}
	ent := events.Entitlement{ID: id}
	switch {
	case e != nil:
		ent = events.Entitlement{
			ID: e.ID, UpdateTime: e.UpdateTime, NewPlan: e.Plan, NewOffer: e.Offer,
			NewOfferDuration: e.OfferDuration, NewOfferStartTime: e.NewOfferStartTime,
			NewOfferEndTime: e.OfferEndTime, OrderID: e.OrderID, EntitlementBenefitIDs: e.EntitlementBenefitIDs,
		}
		if k == events.TypeEntitlementPlanChangeRequested {
			ent.NewPlan, ent.NewOffer = e.NewPendingPlan, e.NewPendingOffer
			ent.NewOfferDuration, ent.NewOfferEndTime = e.NewPendingOfferDuration, e.NewOfferEndTime
		}
	case prev != nil:
		ent.UpdateTime, ent.NewPlan = prev.UpdateTime, prev.Plan
	}
	switch k {
	case events.TypeEntitlementCreationRequested:
		return &events.EntitlementCreationRequested{Header: h, Entitlement: ent}
	case events.TypeEntitlementActive:
		return &events.EntitlementActive{Header: h, Entitlement: ent}
	case events.TypeEntitlementPlanChangeRequested:
		return &events.EntitlementPlanChangeRequested{Header: h, Entitlement: ent}
	case events.TypeEntitlementPlanChanged:
		return &events.EntitlementPlanChanged{Header: h, Entitlement: ent}
	case events.TypeEntitlementPlanChangeCancelled:
		return &events.EntitlementPlanChangeCancelled{Header: h, Entitlement: ent}
	case events.TypeEntitlementPendingCancellation:
		return &events.EntitlementPendingCancellation{Header: h, Entitlement: ent}
	case events.TypeEntitlementCancellationReverted:
		return &events.EntitlementCancellationReverted{Header: h, Entitlement: ent}
	case events.TypeEntitlementCancelling:
		return &events.EntitlementCancelling{Header: h, Entitlement: ent}
	case events.TypeEntitlementCancelled:
		return &events.EntitlementCancelled{Header: h, Entitlement: ent}
	case events.TypeEntitlementDeleted:
		return &events.EntitlementDeleted{Header: h, Entitlement: ent}
	case events.TypeEntitlementOfferAccepted:
		return &events.EntitlementOfferAccepted{Header: h, Entitlement: ent}
	case events.TypeEntitlementRenewed:
		return &events.EntitlementRenewed{Header: h, Entitlement: ent}
	case events.TypeEntitlementOfferEnded:
		return &events.EntitlementOfferEnded{Header: h, Entitlement: ent}
	}
	panic("marketplace: no entitlement event for " + string(k)) // transitions and informational produce only the above
}

// dispatch runs the handler's method for ev, turning a panic into an error.
func (p *Processor) dispatch(ctx context.Context, ev events.Event, log *slog.Logger) (err error) {
	defer func() {
		if v := recover(); v != nil {
			pe := &PanicError{Value: v, Stack: debug.Stack()}
			log.LogAttrs(ctx, slog.LevelError, "marketplace: callback panicked; message not acknowledged",
				slog.Any("panic", v), slog.String("stack", string(pe.Stack)))
			err = pe
		}
	}()
	return events.Dispatch(ctx, p.handler, ev)
}

type cbInfoKey struct{}

type cbInfo struct {
	ent     *procurement.Entitlement
	prev    *Entitlement
	acct    *procurement.Account
	link    *Account
	trigger events.Event
}

func withInfo(ctx context.Context, info *cbInfo) context.Context {
	c := *info // callbacks may keep ctx; later steps must not change what they see
	return context.WithValue(ctx, cbInfoKey{}, &c)
}

func infoFrom(ctx context.Context) *cbInfo {
	i, _ := ctx.Value(cbInfoKey{}).(*cbInfo)
	return i
}

// EntitlementFrom returns, inside a callback, the entitlement as the
// processor just read it from the Procurement API: the state to act on.
// It reports false outside an entitlement callback, and for
// OnEntitlementDeleted (and an OnEntitlementCancelled that reports a
// deletion) since the entitlement no longer exists.
func EntitlementFrom(ctx context.Context) (procurement.Entitlement, bool) {
	if i := infoFrom(ctx); i != nil && i.ent != nil {
		return *i.ent, true
	}
	return procurement.Entitlement{}, false
}

// PreviousEntitlementFrom returns, inside an entitlement callback, the
// entitlement as stored before this change (its previous plan and state),
// or false if the processor had not seen it before.
func PreviousEntitlementFrom(ctx context.Context) (Entitlement, bool) {
	if i := infoFrom(ctx); i != nil && i.prev != nil {
		return *i.prev, true
	}
	return Entitlement{}, false
}

// AccountFrom returns, inside a callback, the account as just read from the
// Procurement API, when the processor read it (OnAccountActive, and
// entitlement callbacks that follow an approval decision).
func AccountFrom(ctx context.Context) (procurement.Account, bool) {
	if i := infoFrom(ctx); i != nil && i.acct != nil {
		return *i.acct, true
	}
	return procurement.Account{}, false
}

// LinkedAccountFrom returns, inside a callback, the stored account of the
// customer concerned, with the VendorUserID linked at sign-up. In
// OnAccountDeleted it is the record about to be removed: the way to find
// the data to purge. It reports false if the account is not known locally.
func LinkedAccountFrom(ctx context.Context) (Account, bool) {
	if i := infoFrom(ctx); i != nil && i.link != nil {
		return *i.link, true
	}
	return Account{}, false
}

// TriggerFrom returns, inside a callback, the decoded message that led to
// it (which may be of another type than the callback: the callback follows
// the change observed, not the message). It reports false when no message
// did: CompleteSignup, Reconcile, Approve and Reject.
func TriggerFrom(ctx context.Context) (events.Event, bool) {
	if i := infoFrom(ctx); i != nil && i.trigger != nil {
		return i.trigger, true
	}
	return nil, false
}
