package events_test

import (
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

// A callback that cannot succeed however often it is retried marks its
// error with Permanent: the processor records the message as poison and
// acknowledges it instead of having it redelivered.
func ExamplePermanent() {
	provision := func(entitlementID, plan string) error {
		if plan == "legacy" {
			return events.Permanent(fmt.Errorf("entitlement %s: plan %q is not sold", entitlementID, plan))
		}
		return nil
	}
	err := provision("ent-1", "legacy")
	fmt.Println(err, events.IsPermanent(err))
	// Output:
	// entitlement ent-1: plan "legacy" is not sold true
}
