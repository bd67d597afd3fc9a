package marketplace

import (
	"sync"
	"time"
)

// failedHoldLimit bounds how long a failed message holds its entitlement's
// usage windows: Pub/Sub redelivers within its maximum retry backoff (600
// s), and a redelivery that goes to another replica settles the message
// without this process hearing of it. Past the limit, the Procurement
// confirmation (usage.EndConfirmer) still protects the window.
const failedHoldLimit = 15 * time.Minute

// unsettled tracks, per process, the entitlements about which a message is
// in flight or failed and awaits redelivery, so that the usage reporter
// does not seal their windows meanwhile (usage.SealHolder): the message may
// be a cancellation the reporter has not been told about. Replicas do not
// share it; across them the reporter's confirmation with Procurement is
// what protects.
type unsettled struct {
	now func() time.Time

	mu       sync.Mutex
	inFlight map[string]int       // entitlement id → messages being processed
	failed   map[string]time.Time // entitlement id → when a message about it last failed
}

func newUnsettled(now func() time.Time) *unsettled {
	return &unsettled{now: now, inFlight: map[string]int{}, failed: map[string]time.Time{}}
}

// begin marks a message about id in flight; the returned function ends it:
// a success releases a failed hold on id, a failure starts one.
func (u *unsettled) begin(id string) func(ok bool) {
	u.mu.Lock()
	u.inFlight[id]++
	u.mu.Unlock()
	return func(ok bool) {
		u.mu.Lock()
		defer u.mu.Unlock()
		if u.inFlight[id]--; u.inFlight[id] <= 0 {
			delete(u.inFlight, id)
		}
		if ok {
			delete(u.failed, id)
		} else {
			u.failed[id] = u.now()
		}
	}
}

// HoldSeal implements usage.SealHolder.
func (u *unsettled) HoldSeal(entitlementID string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.inFlight[entitlementID] > 0 {
		return true
	}
	at, ok := u.failed[entitlementID]
	if ok && u.now().Sub(at) >= failedHoldLimit {
		delete(u.failed, entitlementID)
		return false
	}
	return ok
}

// wireUsage makes the usage reporter confirm entitlement ends with the
// processor's Procurement client (unless it has its own EndConfirmer) and
// hold the windows of entitlements with unsettled messages.
func (p *Processor) wireUsage() {
	r, ok := p.cfg.usage.(reporterRegistrar)
	if !ok {
		return
	}
	r.r.ConfirmEndsWith(p.client)
	r.r.HoldSealsWith(p.unsettled)
}
