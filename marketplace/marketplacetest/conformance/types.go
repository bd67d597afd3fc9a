package conformance

import (
	"errors"

	ccp "google.golang.org/api/cloudcommerceprocurement/v1"
)

type ccpListResponse = ccp.ListEntitlementsResponse

// errStop ends a page walk early; a sandbox listing may hold many
// entitlements and the suite reads no more than it needs.
var errStop = errors.New("conformance: enough pages")
