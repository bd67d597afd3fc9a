package marketplace

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// methodRecorder records the name of every Handler method called.
type methodRecorder struct{ called []string }

func (r *methodRecorder) rec(name string) error { r.called = append(r.called, name); return nil }

func (r *methodRecorder) OnAccountActive(context.Context, *Change) error {
	return r.rec("OnAccountActive")
}
func (r *methodRecorder) OnAccountDeleted(context.Context, *Change) error {
	return r.rec("OnAccountDeleted")
}
func (r *methodRecorder) OnEntitlementCreationRequested(context.Context, *Change) error {
	return r.rec("OnEntitlementCreationRequested")
}
func (r *methodRecorder) OnEntitlementActive(context.Context, *Change) error {
	return r.rec("OnEntitlementActive")
}
func (r *methodRecorder) OnEntitlementPlanChangeRequested(context.Context, *Change) error {
	return r.rec("OnEntitlementPlanChangeRequested")
}
func (r *methodRecorder) OnEntitlementPlanChanged(context.Context, *Change) error {
	return r.rec("OnEntitlementPlanChanged")
}
func (r *methodRecorder) OnEntitlementPlanChangeCancelled(context.Context, *Change) error {
	return r.rec("OnEntitlementPlanChangeCancelled")
}
func (r *methodRecorder) OnEntitlementPendingCancellation(context.Context, *Change) error {
	return r.rec("OnEntitlementPendingCancellation")
}
func (r *methodRecorder) OnEntitlementCancellationReverted(context.Context, *Change) error {
	return r.rec("OnEntitlementCancellationReverted")
}
func (r *methodRecorder) OnEntitlementCancelling(context.Context, *Change) error {
	return r.rec("OnEntitlementCancelling")
}
func (r *methodRecorder) OnEntitlementCancelled(context.Context, *Change) error {
	return r.rec("OnEntitlementCancelled")
}
func (r *methodRecorder) OnEntitlementDeleted(context.Context, *Change) error {
	return r.rec("OnEntitlementDeleted")
}
func (r *methodRecorder) OnEntitlementOfferAccepted(context.Context, *Change) error {
	return r.rec("OnEntitlementOfferAccepted")
}
func (r *methodRecorder) OnEntitlementRenewed(context.Context, *Change) error {
	return r.rec("OnEntitlementRenewed")
}
func (r *methodRecorder) OnEntitlementOfferEnded(context.Context, *Change) error {
	return r.rec("OnEntitlementOfferEnded")
}
func (r *methodRecorder) OnUnknown(context.Context, *Change) error { return r.rec("OnUnknown") }

// Every Handler method is reached by exactly one Change.Type, the one its
// name spells; any other type goes to OnUnknown. HandlerDefaults returns
// nil from each and HandlerFunc calls its function from each.
func TestCallReachesEachMethod(t *testing.T) {
	t.Parallel()
	routes := map[events.Type]string{
		events.TypeAccountActive:                   "OnAccountActive",
		events.TypeAccountDeleted:                  "OnAccountDeleted",
		events.TypeEntitlementCreationRequested:    "OnEntitlementCreationRequested",
		events.TypeEntitlementActive:               "OnEntitlementActive",
		events.TypeEntitlementPlanChangeRequested:  "OnEntitlementPlanChangeRequested",
		events.TypeEntitlementPlanChanged:          "OnEntitlementPlanChanged",
		events.TypeEntitlementPlanChangeCancelled:  "OnEntitlementPlanChangeCancelled",
		events.TypeEntitlementPendingCancellation:  "OnEntitlementPendingCancellation",
		events.TypeEntitlementCancellationReverted: "OnEntitlementCancellationReverted",
		events.TypeEntitlementCancelling:           "OnEntitlementCancelling",
		events.TypeEntitlementCancelled:            "OnEntitlementCancelled",
		events.TypeEntitlementDeleted:              "OnEntitlementDeleted",
		events.TypeEntitlementOfferAccepted:        "OnEntitlementOfferAccepted",
		events.TypeEntitlementRenewed:              "OnEntitlementRenewed",
		events.TypeEntitlementOfferEnded:           "OnEntitlementOfferEnded",
		"ENTITLEMENT_SUSPENDED":                    "OnUnknown",
		"":                                         "OnUnknown",
		events.TypeAccountCreationRequested:        "OnUnknown", // never called by the processor
	}
	ht := reflect.TypeFor[Handler]()
	reached := map[string]bool{}
	for typ, method := range routes {
		_, ok := ht.MethodByName(method)
		require.True(t, ok, method)
		r := &methodRecorder{}
		require.NoError(t, call(context.Background(), r, &Change{Type: typ}))
		assert.Equal(t, []string{method}, r.called, "type %q", typ)
		reached[method] = true

		assert.NoError(t, call(context.Background(), HandlerDefaults{}, &Change{Type: typ}))

		var got *Change
		boom := errors.New("boom")
		c := &Change{Type: typ}
		err := call(context.Background(), HandlerFunc(func(_ context.Context, c *Change) error { got = c; return boom }), c)
		assert.Same(t, boom, err, "the callback's error comes back unchanged")
		assert.Same(t, c, got)
	}
	assert.Len(t, reached, ht.NumMethod(), "every method is reached")
}

// A callback that changes its argument changes nothing the processor keeps
// or the next callback sees; a panicking one is a *PanicError.
func TestDispatchIsolatesAndRecovers(t *testing.T) {
	t.Parallel()
	ent := &procurement.Entitlement{ID: "e", Plan: "p"}
	prev := &Entitlement{ID: "e", Plan: "o"}
	acct := &procurement.Account{ID: "a"}
	link := &Account{ID: "a", VendorUserID: "u"}
	var seen []string
	p := &Processor{handler: HandlerFunc(func(_ context.Context, c *Change) error {
		seen = append(seen, c.Entitlement.Plan+c.Previous.Plan+c.Account.ID+c.Linked.VendorUserID)
		c.Entitlement.Plan, c.Previous.Plan, c.Account.ID, c.Linked.VendorUserID = "x", "x", "x", "x"
		return nil
	})}
	steps := []step{{events.TypeEntitlementActive, ent}, {events.TypeEntitlementPendingCancellation, ent}}
	base := Change{Previous: prev, Account: acct, Linked: link}
	require.NoError(t, p.runCallbacks(context.Background(), "e", steps, base, sourceMessage, slog.New(slog.DiscardHandler)))
	assert.Equal(t, []string{"poau", "poau"}, seen)
	assert.Equal(t, "p", ent.Plan)
	assert.Equal(t, "o", prev.Plan)
	assert.Equal(t, "a", acct.ID)
	assert.Equal(t, "u", link.VendorUserID)

	p.handler = HandlerFunc(func(context.Context, *Change) error { panic("app bug") })
	err := p.dispatch(context.Background(), &Change{Type: events.TypeEntitlementActive}, slog.New(slog.DiscardHandler))
	var pe *PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "app bug", pe.Value)
	assert.NotEmpty(t, pe.Stack)
}
