package marketplacetest

import (
	"net/http"
	"time"
)

// signupIssuer holds the RSA keys that sign Marketplace sign-up JWTs and
// serves their certificates. Owned by tokens.go.
type signupIssuer struct {
	now     func() time.Time
	baseURL string
}

func newSignupIssuer(now func() time.Time) (*signupIssuer, error) {
	return &signupIssuer{now: now}, nil
}

func (i *signupIssuer) routes(mux *http.ServeMux) {}
