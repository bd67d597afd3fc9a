// Package procurement is a client for the Cloud Commerce Partner
// Procurement API, the API a Google Cloud Marketplace SaaS vendor calls to
// approve customer sign-ups, purchases and plan changes.
//
// It wraps the generated client google.golang.org/api/cloudcommerceprocurement/v1
// (so google.golang.org/api/option options pass through: Application
// Default Credentials in production, marketplacetest's emulator in tests)
// and adds what hand-rolled integrations get wrong:
//
//   - Typed resources: Account and Entitlement with state enums, ids parsed
//     from resource names and time.Time timestamps.
//   - Idempotent changes. ApproveAccountSignup, ApproveEntitlement,
//     ApprovePlanChange and the rejections read the resource first, act only
//     if the change is still needed, and report OutcomeAlreadyDone otherwise.
//     A plan change is approved with the pending plan read from the API, never
//     a stale one, and can be pinned with an expected plan. After an ambiguous
//     failure (a 503 or broken connection where the server may have acted)
//     they re-read and finish as success if the change was made.
//   - Errors that say what went wrong: *APIError names the method and the
//     resource, matches sentinels such as ErrNotFound and
//     ErrFailedPrecondition with errors.Is, explains a permission error with
//     the IAM permission that is likely missing, and explains an entitlement
//     approval refused because the account's sign-up is not approved yet.
//   - Retries with exponential backoff and jitter on 429 (honouring
//     Retry-After), 5xx and transport errors, bounded by a RetryPolicy and
//     the context.
//
// Timestamps: an empty timestamp is the zero time.Time; a timestamp that
// does not parse as RFC 3339 fails the call with ErrMalformedResponse
// rather than turning into a zero time, because UpdateTime guards against
// acting on stale state and a silent zero would make fresh state look old.
package procurement

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	cp "google.golang.org/api/cloudcommerceprocurement/v1"
	"google.golang.org/api/option"

	"github.com/gcpmarketplace/gcpmarketplace"
)

// Client calls the Procurement API for one provider. It is safe for
// concurrent use.
type Client struct {
	svc      *cp.Service
	provider string
	parent   string // "providers/{provider}"
	logger   *slog.Logger
	retry    RetryPolicy
	sleep    func(context.Context, time.Duration) error
	now      func() time.Time
	metrics  metrics
}

// Config holds what a Client adds to the generated client: the shared
// Runtime and the retry policy. A nil *Config, like the zero Config, means
// all defaults.
type Config struct {
	// Runtime is where the client logs (retries, changes applied whose
	// read-back failed), what it measures with and its clock (which
	// bounds retries by RetryPolicy.MaxElapsed and reads Retry-After
	// dates). The metrics, from Runtime.MeterProvider, count every HTTP
	// attempt, retries included:
	//   - gcpmarketplace.procurement.calls {call} [method]: attempts;
	//   - gcpmarketplace.procurement.errors {call} [method, status]: failed
	//     attempts, by canonical status (APIError.Status; CANCELLED,
	//     DEADLINE_EXCEEDED or UNKNOWN when no response came back);
	//   - gcpmarketplace.procurement.retries {retry} [method]: retries made
	//     after a retryable failure;
	//   - gcpmarketplace.procurement.duration s [method]: time per attempt.
	//
	// method is a Method value ("get entitlement", "approve entitlement", ...).
	gcpmarketplace.Runtime
	// Retry bounds the retries of each call; its zero fields take their
	// defaults.
	Retry RetryPolicy
}

// NewClient returns a Client for the provider (partner) id, the
// {providerId} of "providers/{providerId}/..." resource names, with the
// default Config. opts go to the generated client
// (cloudcommerceprocurement.NewService): credentials, endpoint, HTTP
// client. Without any, it uses Application Default Credentials.
func NewClient(ctx context.Context, providerID string, opts ...option.ClientOption) (*Client, error) {
	return NewClientWithConfig(ctx, providerID, nil, opts...)
}

// NewClientWithConfig is NewClient with a Config; nil means all defaults.
func NewClientWithConfig(ctx context.Context, providerID string, cfg *Config, opts ...option.ClientOption) (*Client, error) {
	if providerID == "" || !validID(providerID) {
		return nil, fmt.Errorf("procurement: provider id %q: %w", truncate(providerID, 40), ErrInvalidName)
	}
	if cfg == nil {
		cfg = &Config{}
	}
	svc, err := cp.NewService(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("procurement: creating the Procurement API client: %w", err)
	}
	m, err := newMetrics(cfg.Meter(meterName))
	if err != nil {
		return nil, err
	}
	return &Client{
		metrics:  m,
		svc:      svc,
		provider: providerID,
		parent:   "providers/" + providerID,
		logger:   cfg.Log(),
		retry:    cfg.Retry.withDefaults(),
		sleep:    sleepContext,
		now:      cfg.NowFunc(),
	}, nil
}

// ProviderID is the provider id the client was created with.
func (c *Client) ProviderID() string { return c.provider }

// Service is the generated client underneath, for what this package does
// not cover. Calls made through it get no retries or error mapping.
func (c *Client) Service() *cp.Service { return c.svc }

// AccountName is the resource name of an account id.
func (c *Client) AccountName(accountID string) string {
	return c.parent + "/accounts/" + accountID
}

// EntitlementName is the resource name of an entitlement id.
func (c *Client) EntitlementName(entitlementID string) string {
	return c.parent + "/entitlements/" + entitlementID
}

// accountName accepts an account id or this provider's account resource name.
func (c *Client) accountName(idOrName string) (string, error) {
	return c.resourceName(idOrName, "accounts")
}

// entitlementName accepts an entitlement id or this provider's entitlement
// resource name.
func (c *Client) entitlementName(idOrName string) (string, error) {
	return c.resourceName(idOrName, "entitlements")
}

func (c *Client) resourceName(idOrName, collection string) (string, error) {
	id := idOrName
	if strings.HasPrefix(idOrName, "providers/") {
		prefix := c.parent + "/" + collection + "/"
		if !strings.HasPrefix(idOrName, prefix) {
			return "", fmt.Errorf("procurement: %q is not a resource name of the form %s{id}: %w",
				truncate(idOrName, 120), prefix, ErrInvalidName)
		}
		id = idOrName[len(prefix):]
	}
	if !validID(id) {
		return "", fmt.Errorf("procurement: %q is not a valid %s id: %w",
			truncate(idOrName, 120), strings.TrimSuffix(collection, "s"), ErrInvalidName)
	}
	return c.parent + "/" + collection + "/" + id, nil
}

// ValidID reports whether id has the shape of a provider, account or
// entitlement id: 1 to 256 of the characters such ids are made of (letters,
// digits, '-', '_', '.', ':'), and not "." or "..". Anything else would
// change a resource name's path or query when put in it. The marketplace
// package applies it to the account id (sub) of sign-up tokens, so that a
// token cannot hand the app an id no Procurement call would accept.
func ValidID(id string) bool { return validID(id) }

// validID accepts the characters seen in provider, account and entitlement
// ids (letters, digits, '-', '_', '.', ':') and nothing that would change the
// request path or query.
func validID(id string) bool {
	if id == "" || id == "." || id == ".." || len(id) > 256 {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		ok := ch == '-' || ch == '_' || ch == '.' || ch == ':' ||
			('0' <= ch && ch <= '9') || ('a' <= ch && ch <= 'z') || ('A' <= ch && ch <= 'Z')
		if !ok {
			return false
		}
	}
	return true
}

// apiErr maps a generated-client error.
func (c *Client) apiErr(method Method, resource string, err error) error {
	return newAPIError(method, resource, err, c.now)
}

// call runs fn, one attempt per call, under r: retryable failures are
// retried while the budget lasts.
func call[T any](ctx context.Context, c *Client, r *retrier, method Method, resource string, fn func() (T, error)) (T, error) {
	for {
		r.attempt()
		start := time.Now()
		v, err := fn()
		if err != nil {
			err = c.apiErr(method, resource, err)
		}
		c.metrics.attempt(ctx, method, start, err)
		if err == nil {
			return v, nil
		}
		if werr := r.wait(ctx, err); werr != nil {
			var zero T
			return zero, werr
		}
	}
}

// checkReason refuses reasons the API would truncate.
func checkReason(method Method, resource, reason string) error {
	if len(reason) > maxReason {
		return fmt.Errorf("procurement: %s %s: reason is %d bytes, the API keeps at most %d: %w",
			method, resource, len(reason), maxReason, ErrReasonTooLong)
	}
	return nil
}

// maxReason is the documented limit on reason strings, in bytes.
const maxReason = 256
