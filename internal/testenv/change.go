package testenv

import (
	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

// ResourceOf is the entitlement or account a callback is about, for
// recorders that key callbacks by resource.
func ResourceOf(c *marketplace.Change) events.Resource {
	switch {
	case c.Entitlement != nil:
		return events.Resource{Kind: events.ResourceEntitlement, ID: c.Entitlement.ID}
	case c.Account != nil:
		return events.Resource{Kind: events.ResourceAccount, ID: c.Account.ID}
	case c.Linked != nil:
		return events.Resource{Kind: events.ResourceAccount, ID: c.Linked.ID}
	case c.Trigger != nil:
		return c.Trigger.Resource()
	}
	return events.Resource{}
}
