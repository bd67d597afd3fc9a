package procurement

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// liveStates are the states of an entitlement whose usage is billable.
var liveStates = []EntitlementState{
	EntitlementActive, EntitlementPendingCancellation,
	EntitlementPendingPlanChange, EntitlementPendingPlanChangeApproval,
}

// confirmPageSize is the page size of ConfirmEnds' listing: the API's
// maximum, so that 10,000 live entitlements take 50 calls.
const confirmPageSize = 200

// confirmGetConcurrency bounds the GETs ConfirmEnds makes for the ids its
// listing does not name.
const confirmGetConcurrency = 8

// ConfirmEnds reports which of entitlementIDs have ended, from Procurement
// itself: it lists the provider's entitlements in a billable state
// (ACTIVE, PENDING_CANCELLATION, PENDING_PLAN_CHANGE,
// PENDING_PLAN_CHANGE_APPROVAL; one entitlements.list call per 200) and
// reads each id the listing does not name with a GET (those cancelled,
// suspended or deleted since; a handful per flush). It returns, for each
// ended id, when it ended:
//   - CANCELLED: the earlier of updateTime and offerEndTime, the end the
//     marketplace Processor registers;
//   - SUSPENDED: updateTime (Google documents the state as not yet
//     supported; usage while suspended is not billed);
//   - PENDING_CANCELLATION whose offerEndTime has passed: offerEndTime;
//   - deleted (404): the zero time, as the end is no longer readable.
//
// An id that is live has no entry. Any other failure is returned and
// confirms nothing. It satisfies usage.EndConfirmer.
func (c *Client) ConfirmEnds(ctx context.Context, entitlementIDs []string) (map[string]time.Time, error) {
	want := make(map[string]bool, len(entitlementIDs))
	for _, id := range entitlementIDs {
		want[id] = true
	}
	ends := map[string]time.Time{}
	if len(want) == 0 {
		return ends, nil
	}
	filters := make([]Filter, len(liveStates))
	for i, s := range liveStates {
		filters[i] = FilterState(s)
	}
	now := c.now()
	seen := map[string]bool{}
	for e, err := range c.ListEntitlements(ctx, &ListEntitlementsParams{Filter: Or(filters...), PageSize: confirmPageSize}) {
		if err != nil {
			return nil, fmt.Errorf("procurement: confirm entitlement ends: %w", err)
		}
		if !want[e.ID] {
			continue
		}
		seen[e.ID] = true
		if end, ok := endOf(e, now); ok {
			ends[e.ID] = end
		}
	}
	var absent []string
	for id := range want {
		if !seen[id] {
			absent = append(absent, id)
		}
	}
	if err := c.confirmAbsent(ctx, absent, now, ends); err != nil {
		return nil, fmt.Errorf("procurement: confirm entitlement ends: %w", err)
	}
	return ends, nil
}

// confirmAbsent reads the entitlements a listing of live ones did not name
// and adds their ends to ends.
func (c *Client) confirmAbsent(ctx context.Context, ids []string, now time.Time, ends map[string]time.Time) error {
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	sem := make(chan struct{}, confirmGetConcurrency)
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			e, err := c.GetEntitlement(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrNotFound):
				ends[id] = time.Time{}
			case err != nil:
				errs = append(errs, err)
			default:
				if end, ok := endOf(e, now); ok {
					ends[id] = end
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// endOf reports whether e has ended by now, and when.
func endOf(e Entitlement, now time.Time) (time.Time, bool) {
	switch e.State {
	case EntitlementCancelled:
		// The earlier of updateTime and offerEndTime, as the marketplace
		// Processor registers it: a cancellation at the term's end has an
		// updateTime from when Google flipped the state, possibly well
		// after the term ended. offerEndTime ("the actual end of the last
		// offer" in CANCELLED) may also be before the end of service (an
		// offer that ended earlier); the earlier end is still taken, as
		// usage billed past a cancellation can only be credited back.
		end := e.UpdateTime
		if !e.OfferEndTime.IsZero() && (end.IsZero() || e.OfferEndTime.Before(end)) {
			end = e.OfferEndTime
		}
		return end, true
	case EntitlementSuspended:
		return e.UpdateTime, true
	case EntitlementPendingCancellation:
		if !e.OfferEndTime.IsZero() && !e.OfferEndTime.After(now) {
			return e.OfferEndTime, true
		}
	}
	return time.Time{}, false
}
