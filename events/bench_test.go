package events_test

import (
	"encoding/json"
	"testing"

	"github.com/gcpmarketplace/gcpmarketplace/events"
)

// naiveMessage is what an application would unmarshal the message into by
// hand: the same fields, times left as strings. BenchmarkDecodeBaseline
// measures it so BenchmarkDecode can be compared in the same run.
type naiveMessage struct {
	EventID    string `json:"eventId"`
	EventType  string `json:"eventType"`
	ProviderID string `json:"providerId"`
	Account    struct {
		ID         string `json:"id"`
		UpdateTime string `json:"updateTime"`
	} `json:"account"`
	Entitlement struct {
		ID                      string   `json:"id"`
		UpdateTime              string   `json:"updateTime"`
		NewPlan                 string   `json:"newPlan"`
		NewProduct              string   `json:"newProduct"`
		NewOffer                string   `json:"newOffer"`
		NewOfferDuration        string   `json:"newOfferDuration"`
		NewPendingOfferDuration string   `json:"newPendingOfferDuration"`
		NewOfferStartTime       string   `json:"newOfferStartTime"`
		NewOfferEndTime         string   `json:"newOfferEndTime"`
		OrderID                 string   `json:"orderId"`
		EntitlementBenefitIDs   []string `json:"entitlementBenefitIds"`
	} `json:"entitlement"`
}

// The typical message: the real ENTITLEMENT_OFFER_ACCEPTED capture.
const benchFile = "entitlement_offer_accepted_capture.json"

func BenchmarkDecode(b *testing.B) {
	data := readTestdata(b, benchFile)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		ev, err := events.Decode(data)
		if err != nil || ev.ID() == "" {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeBaseline(b *testing.B) {
	data := readTestdata(b, benchFile)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var m naiveMessage
		if err := json.Unmarshal(data, &m); err != nil || m.EventID == "" {
			b.Fatal(err)
		}
	}
}
