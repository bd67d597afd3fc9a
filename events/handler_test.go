package events_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/events"
)

// recorder implements every Handler method by recording its name.
type recorder struct {
	called []string
	err    error
}

func (r *recorder) rec(name string) error { r.called = append(r.called, name); return r.err }

func (r *recorder) OnAccountMessage(context.Context, *events.AccountMessage) error {
	return r.rec("OnAccountMessage")
}
func (r *recorder) OnAccountCreationRequested(context.Context, *events.AccountCreationRequested) error {
	return r.rec("OnAccountCreationRequested")
}
func (r *recorder) OnAccountActive(context.Context, *events.AccountActive) error {
	return r.rec("OnAccountActive")
}
func (r *recorder) OnAccountDeleted(context.Context, *events.AccountDeleted) error {
	return r.rec("OnAccountDeleted")
}
func (r *recorder) OnEntitlementCreationRequested(context.Context, *events.EntitlementCreationRequested) error {
	return r.rec("OnEntitlementCreationRequested")
}
func (r *recorder) OnEntitlementActive(context.Context, *events.EntitlementActive) error {
	return r.rec("OnEntitlementActive")
}
func (r *recorder) OnEntitlementPlanChangeRequested(context.Context, *events.EntitlementPlanChangeRequested) error {
	return r.rec("OnEntitlementPlanChangeRequested")
}
func (r *recorder) OnEntitlementPlanChanged(context.Context, *events.EntitlementPlanChanged) error {
	return r.rec("OnEntitlementPlanChanged")
}
func (r *recorder) OnEntitlementPlanChangeCancelled(context.Context, *events.EntitlementPlanChangeCancelled) error {
	return r.rec("OnEntitlementPlanChangeCancelled")
}
func (r *recorder) OnEntitlementPendingCancellation(context.Context, *events.EntitlementPendingCancellation) error {
	return r.rec("OnEntitlementPendingCancellation")
}
func (r *recorder) OnEntitlementCancellationReverted(context.Context, *events.EntitlementCancellationReverted) error {
	return r.rec("OnEntitlementCancellationReverted")
}
func (r *recorder) OnEntitlementCancelling(context.Context, *events.EntitlementCancelling) error {
	return r.rec("OnEntitlementCancelling")
}
func (r *recorder) OnEntitlementCancelled(context.Context, *events.EntitlementCancelled) error {
	return r.rec("OnEntitlementCancelled")
}
func (r *recorder) OnEntitlementDeleted(context.Context, *events.EntitlementDeleted) error {
	return r.rec("OnEntitlementDeleted")
}
func (r *recorder) OnEntitlementOfferAccepted(context.Context, *events.EntitlementOfferAccepted) error {
	return r.rec("OnEntitlementOfferAccepted")
}
func (r *recorder) OnEntitlementRenewed(context.Context, *events.EntitlementRenewed) error {
	return r.rec("OnEntitlementRenewed")
}
func (r *recorder) OnEntitlementOfferEnded(context.Context, *events.EntitlementOfferEnded) error {
	return r.rec("OnEntitlementOfferEnded")
}
func (r *recorder) OnUnknown(context.Context, *events.Unknown) error { return r.rec("OnUnknown") }

// dispatchCases holds one message per callback, decoded from the wire so the
// test also proves Decode and Dispatch agree.
var dispatchCases = []struct {
	data   string
	method string
}{
	{`{"eventId":"e","account":{"id":"a"}}`, "OnAccountMessage"},
	{`{"eventId":"e","eventType":"ACCOUNT_CREATION_REQUESTED","account":{"id":"a"}}`, "OnAccountCreationRequested"},
	{`{"eventId":"e","eventType":"ACCOUNT_ACTIVE","account":{"id":"a"}}`, "OnAccountActive"},
	{`{"eventId":"e","eventType":"ACCOUNT_DELETED","account":{"id":"a"}}`, "OnAccountDeleted"},
	{`{"eventId":"e","eventType":"ENTITLEMENT_CREATION_REQUESTED","entitlement":{"id":"n"}}`, "OnEntitlementCreationRequested"},
	{`{"eventId":"e","eventType":"ENTITLEMENT_ACTIVE","entitlement":{"id":"n"}}`, "OnEntitlementActive"},
	{`{"eventId":"e","eventType":"ENTITLEMENT_PLAN_CHANGE_REQUESTED","entitlement":{"id":"n"}}`, "OnEntitlementPlanChangeRequested"},
	{`{"eventId":"e","eventType":"ENTITLEMENT_PLAN_CHANGED","entitlement":{"id":"n"}}`, "OnEntitlementPlanChanged"},
	{`{"eventId":"e","eventType":"ENTITLEMENT_PLAN_CHANGE_CANCELLED","entitlement":{"id":"n"}}`, "OnEntitlementPlanChangeCancelled"},
	{`{"eventId":"e","eventType":"ENTITLEMENT_PENDING_CANCELLATION","entitlement":{"id":"n"}}`, "OnEntitlementPendingCancellation"},
	{`{"eventId":"e","eventType":"ENTITLEMENT_CANCELLATION_REVERTED","entitlement":{"id":"n"}}`, "OnEntitlementCancellationReverted"},
	{`{"eventId":"e","eventType":"ENTITLEMENT_CANCELLING","entitlement":{"id":"n"}}`, "OnEntitlementCancelling"},
	{`{"eventId":"e","eventType":"ENTITLEMENT_CANCELLED","entitlement":{"id":"n"}}`, "OnEntitlementCancelled"},
	{`{"eventId":"e","eventType":"ENTITLEMENT_DELETED","entitlement":{"id":"n"}}`, "OnEntitlementDeleted"},
	{`{"eventId":"e","eventType":"ENTITLEMENT_OFFER_ACCEPTED","entitlement":{"id":"n"}}`, "OnEntitlementOfferAccepted"},
	{`{"eventId":"e","eventType":"ENTITLEMENT_RENEWED","entitlement":{"id":"n"}}`, "OnEntitlementRenewed"},
	{`{"eventId":"e","eventType":"ENTITLEMENT_OFFER_ENDED","entitlement":{"id":"n"}}`, "OnEntitlementOfferEnded"},
	{`{"eventId":"e","eventType":"ENTITLEMENT_SUSPENDED","entitlement":{"id":"n"}}`, "OnUnknown"},
}

func TestDispatchReachesEachCallback(t *testing.T) {
	t.Parallel()
	require.Len(t, dispatchCases, 18)
	seen := map[string]bool{}
	for _, tc := range dispatchCases {
		t.Run(tc.method, func(t *testing.T) {
			ev, err := events.Decode([]byte(tc.data))
			require.NoError(t, err)

			r := &recorder{}
			require.NoError(t, events.Dispatch(context.Background(), r, ev))
			assert.Equal(t, []string{tc.method}, r.called)
			seen[tc.method] = true

			// The handler's error comes back unchanged.
			boom := events.Permanent(errors.New("boom"))
			r = &recorder{err: boom}
			assert.Same(t, boom, events.Dispatch(context.Background(), r, ev))

			// The defaults accept everything.
			assert.NoError(t, events.Dispatch(context.Background(), events.HandlerDefaults{}, ev))

			// HandlerFunc sees the same event.
			var got events.Event
			hf := events.HandlerFunc(func(_ context.Context, e events.Event) error { got = e; return nil })
			require.NoError(t, events.Dispatch(context.Background(), hf, ev))
			assert.Same(t, ev, got)
		})
	}
	assert.Len(t, seen, 18, "each case reaches a different callback")
}

// onlyCancelled overrides one callback and inherits the rest.
type onlyCancelled struct {
	events.HandlerDefaults
	ids []string
}

func (h *onlyCancelled) OnEntitlementCancelled(_ context.Context, e *events.EntitlementCancelled) error {
	h.ids = append(h.ids, e.Entitlement.ID)
	return nil
}

func TestHandlerDefaultsEmbedding(t *testing.T) {
	t.Parallel()
	h := &onlyCancelled{}
	for _, tc := range dispatchCases {
		ev, err := events.Decode([]byte(tc.data))
		require.NoError(t, err)
		require.NoError(t, events.Dispatch(context.Background(), h, ev))
	}
	assert.Equal(t, []string{"n"}, h.ids)
}

func TestDispatchPassesContext(t *testing.T) {
	t.Parallel()
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "v")
	var got any
	hf := events.HandlerFunc(func(ctx context.Context, _ events.Event) error { got = ctx.Value(key{}); return nil })
	ev, err := events.Decode([]byte(dispatchCases[0].data))
	require.NoError(t, err)
	require.NoError(t, events.Dispatch(ctx, hf, ev))
	assert.Equal(t, "v", got)
}

// embedded satisfies Event only by embedding one of the package's types.
type embedded struct{ *events.EntitlementActive }

func TestDispatchInvalid(t *testing.T) {
	t.Parallel()
	ev := &events.EntitlementActive{Entitlement: events.Entitlement{ID: "n"}}
	tests := []struct {
		name string
		h    events.Handler
		ev   events.Event
	}{
		{"nil handler", nil, ev},
		{"nil event", &recorder{}, nil},
		{"typed nil entitlement event", &recorder{}, (*events.EntitlementActive)(nil)},
		{"typed nil account event", &recorder{}, (*events.AccountMessage)(nil)},
		{"typed nil unknown", &recorder{}, (*events.Unknown)(nil)},
		{"foreign type", &recorder{}, embedded{ev}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var err error
			require.NotPanics(t, func() { err = events.Dispatch(context.Background(), tt.h, tt.ev) })
			assert.ErrorIs(t, err, events.ErrInvalidDispatch)
			assert.False(t, events.IsPermanent(err))
			if r, ok := tt.h.(*recorder); ok {
				assert.Empty(t, r.called)
			}
		})
	}
}
