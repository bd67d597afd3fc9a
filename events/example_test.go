package events_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/gcpmarketplace/gcpmarketplace/events"
)

func ExampleDecode() {
	data := []byte(`{
	  "eventId": "CREATE_ENTITLEMENT-0c0ad6e8",
	  "eventType": "ENTITLEMENT_OFFER_ACCEPTED",
	  "providerId": "acme-public",
	  "entitlement": {
	    "id": "0c0ad6e8",
	    "updateTime": "2026-01-21T00:06:19.754732Z",
	    "newPlan": "enterprise-P2Y",
	    "newOfferStartTime": "2026-02-01T00:00:00Z",
	    "newOfferEndTime": "not a time"
	  }
	}`)
	ev, err := events.Decode(data)
	if err != nil {
		// Malformed: retrying will not help; record it and acknowledge.
		fmt.Println("poison:", err, errors.Is(err, events.ErrMalformed))
		return
	}
	fmt.Println(ev.Type(), ev.ID(), ev.Resource().Kind, ev.Resource().ID)
	if e, ok := ev.(*events.EntitlementOfferAccepted); ok {
		fmt.Println(e.Entitlement.NewPlan, "starts", e.Entitlement.NewOfferStartTime.Format("2006-01-02"))
	}
	for _, p := range ev.Problems() {
		fmt.Println("problem:", p)
	}

	_, err = events.Decode([]byte(`{"eventId": 42, "entitlement": {"id": "0c0ad6e8"}}`))
	fmt.Println(err)
	// Output:
	// ENTITLEMENT_OFFER_ACCEPTED CREATE_ENTITLEMENT-0c0ad6e8 entitlement 0c0ad6e8
	// enterprise-P2Y starts 2026-02-01
	// problem: entitlement.newOfferEndTime: want an RFC 3339 time (value 12 bytes, sha256 058c5d2edf99d605)
	// events: malformed message: eventId: want a string, got a number (payload 50 bytes, sha256 744803e82bc440bf)
}

// provisioner handles the events it cares about and inherits no-op
// callbacks for the rest from HandlerDefaults.
type provisioner struct {
	events.HandlerDefaults
}

func (provisioner) OnEntitlementActive(ctx context.Context, e *events.EntitlementActive) error {
	fmt.Println("provision", e.Entitlement.ID)
	return nil
}

func (provisioner) OnEntitlementCancelled(ctx context.Context, e *events.EntitlementCancelled) error {
	fmt.Println("deprovision", e.Entitlement.ID)
	return nil
}

func (provisioner) OnUnknown(ctx context.Context, e *events.Unknown) error {
	fmt.Println("ignoring", e.Type(), "for", e.Resource().Kind, e.Resource().ID)
	return nil
}

func ExampleHandler() {
	messages := []string{
		`{"eventId":"1","eventType":"ENTITLEMENT_ACTIVE","entitlement":{"id":"ent-1"}}`,
		`{"eventId":"2","eventType":"ENTITLEMENT_PLAN_CHANGED","entitlement":{"id":"ent-1"}}`,
		`{"eventId":"3","eventType":"ENTITLEMENT_CANCELLED","entitlement":{"id":"ent-1"}}`,
		`{"eventId":"4","eventType":"ENTITLEMENT_SUSPENDED","entitlement":{"id":"ent-1"}}`,
	}
	ctx := context.Background()
	for _, m := range messages {
		ev, err := events.Decode([]byte(m))
		if err != nil {
			fmt.Println(err)
			continue
		}
		if err := events.Dispatch(ctx, provisioner{}, ev); err != nil {
			fmt.Println("retry later:", err)
		}
	}
	// Output:
	// provision ent-1
	// deprovision ent-1
	// ignoring ENTITLEMENT_SUSPENDED for entitlement ent-1
}

func ExamplePermanent() {
	h := events.HandlerFunc(func(ctx context.Context, e events.Event) error {
		return events.Permanent(fmt.Errorf("entitlement %s: plan %q is not sold", e.Resource().ID, "legacy"))
	})
	ev, _ := events.Decode([]byte(`{"eventId":"1","eventType":"ENTITLEMENT_CREATION_REQUESTED","entitlement":{"id":"ent-1","newPlan":"legacy"}}`))
	err := events.Dispatch(context.Background(), h, ev)
	fmt.Println(err, events.IsPermanent(err))
	// Output:
	// entitlement ent-1: plan "legacy" is not sold true
}
