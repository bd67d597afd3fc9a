package marketplacetest

import (
	"net/http"
	"time"
)

// pushIssuer holds the keys that sign Google-style OIDC tokens for Pub/Sub
// push deliveries and serves their JWKS. Owned by push.go.
type pushIssuer struct {
	now     func() time.Time
	baseURL string
}

func newPushIssuer(now func() time.Time) (*pushIssuer, error) {
	return &pushIssuer{now: now}, nil
}

func (i *pushIssuer) routes(mux *http.ServeMux) {}
