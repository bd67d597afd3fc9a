package procurement

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"time"

	cp "google.golang.org/api/cloudcommerceprocurement/v1"
)

// GetEntitlement reads an entitlement. entitlementID is an id or this
// provider's entitlement resource name. A deleted entitlement (some time
// after cancellation, or after a rejection) is ErrNotFound.
func (c *Client) GetEntitlement(ctx context.Context, entitlementID string) (Entitlement, error) {
	name, err := c.entitlementName(entitlementID)
	if err != nil {
		return Entitlement{}, err
	}
	r := c.newRetrier(MethodGetEntitlement, name)
	return c.getEntitlement(ctx, r, name)
}

func (c *Client) getEntitlement(ctx context.Context, r *retrier, name string) (Entitlement, error) {
	e, err := call(ctx, c, r, MethodGetEntitlement, name, func() (*cp.Entitlement, error) {
		return c.svc.Providers.Entitlements.Get(name).Context(ctx).Do()
	})
	if err != nil {
		return Entitlement{}, err
	}
	return convertEntitlement(e)
}

// ListEntitlementsParams are the optional parameters of ListEntitlements.
type ListEntitlementsParams struct {
	// Filter selects entitlements; the zero Filter selects all.
	Filter Filter
	// PageSize is the number of entitlements per page; 0 means the API
	// default (200).
	PageSize int
	// PageToken resumes a listing where a previous page ended.
	PageToken string
}

// EntitlementPage is one page of entitlements.
type EntitlementPage struct {
	Entitlements []Entitlement
	// NextPageToken fetches the next page; empty on the last page.
	NextPageToken string
}

// ListEntitlementsPage reads one page of the provider's entitlements.
// params may be nil.
func (c *Client) ListEntitlementsPage(ctx context.Context, params *ListEntitlementsParams) (EntitlementPage, error) {
	var p ListEntitlementsParams
	if params != nil {
		p = *params
	}
	filter := p.Filter.String()
	r := c.newRetrier(MethodListEntitlements, c.parent)
	resp, err := call(ctx, c, r, MethodListEntitlements, c.parent, func() (*cp.ListEntitlementsResponse, error) {
		list := c.svc.Providers.Entitlements.List(c.parent).Context(ctx)
		if filter != "" {
			list = list.Filter(filter)
		}
		if p.PageSize > 0 {
			list = list.PageSize(int64(p.PageSize))
		}
		if p.PageToken != "" {
			list = list.PageToken(p.PageToken)
		}
		return list.Do()
	})
	if err != nil {
		return EntitlementPage{}, err
	}
	page := EntitlementPage{NextPageToken: resp.NextPageToken, Entitlements: make([]Entitlement, 0, len(resp.Entitlements))}
	for _, e := range resp.Entitlements {
		ent, err := convertEntitlement(e)
		if err != nil {
			return EntitlementPage{}, err
		}
		page.Entitlements = append(page.Entitlements, ent)
	}
	return page, nil
}

// ListEntitlements iterates over the provider's entitlements that match
// params.Filter, fetching pages as needed. Iteration stops at the first
// error, which is yielded with a zero Entitlement. params may be nil.
//
//	for e, err := range client.ListEntitlements(ctx, &procurement.ListEntitlementsParams{
//		Filter: procurement.And(procurement.FilterAccount(accountID),
//			procurement.FilterState(procurement.EntitlementActivationRequested)),
//	}) {
//		if err != nil {
//			return err
//		}
//		// ...
//	}
func (c *Client) ListEntitlements(ctx context.Context, params *ListEntitlementsParams) iter.Seq2[Entitlement, error] {
	var p ListEntitlementsParams
	if params != nil {
		p = *params
	}
	return pages(MethodListEntitlements, c.parent, p.PageToken, func(token string) ([]Entitlement, string, error) {
		q := p // each page its own copy: ranges may run concurrently
		q.PageToken = token
		page, err := c.ListEntitlementsPage(ctx, &q)
		return page.Entitlements, page.NextPageToken, err
	})
}

func repeatedTokenError(method Method, resource string) error {
	return fmt.Errorf("procurement: %s %s: the API returned the same page token twice: %w", method, resource, ErrMalformedResponse)
}

// SetMessageToUser sets the message shown to the customer on the
// entitlement (for example a provisioning ETA), with a patch limited to
// messageToUser. The API accepts it only while the entitlement is
// ENTITLEMENT_ACTIVATION_REQUESTED or ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL,
// and clears it on the next state change. Setting the same message again is
// harmless, so failures are retried like reads.
func (c *Client) SetMessageToUser(ctx context.Context, entitlementID, message string) (Entitlement, error) {
	name, err := c.entitlementName(entitlementID)
	if err != nil {
		return Entitlement{}, err
	}
	r := c.newRetrier(MethodSetMessageToUser, name)
	e, err := call(ctx, c, r, MethodSetMessageToUser, name, func() (*cp.Entitlement, error) {
		return c.svc.Providers.Entitlements.Patch(name, &cp.Entitlement{
			MessageToUser:   message,
			ForceSendFields: []string{"MessageToUser"}, // an empty message clears it
		}).UpdateMask("messageToUser").Context(ctx).Do()
	})
	if err != nil {
		var apiErr *APIError
		if errors.As(err, &apiErr) && errors.Is(err, ErrFailedPrecondition) && apiErr.Hint == "" {
			apiErr.Hint = "the message can be set only while the entitlement is " +
				string(EntitlementActivationRequested) + " or " + string(EntitlementPendingPlanChangeApproval)
		}
		return Entitlement{}, err
	}
	return convertEntitlement(e)
}

// SuspendEntitlementParams are the optional parameters of SuspendEntitlement.
type SuspendEntitlementParams struct {
	// Reason is an optional free-form reason, at most 256 bytes.
	Reason string
}

// SuspendEntitlement asks Google to suspend an active entitlement. Google
// documents the method as "not yet supported"; expect ErrNotImplemented or
// another error from the real API. It is retried only on 429. params may be
// nil.
func (c *Client) SuspendEntitlement(ctx context.Context, entitlementID string, params *SuspendEntitlementParams) error {
	name, err := c.entitlementName(entitlementID)
	if err != nil {
		return err
	}
	var p SuspendEntitlementParams
	if params != nil {
		p = *params
	}
	if err := checkReason(MethodSuspendEntitlement, name, p.Reason); err != nil {
		return err
	}
	r := c.newRetrier(MethodSuspendEntitlement, name)
	return callOnce(ctx, c, r, MethodSuspendEntitlement, name, func() error {
		_, err := c.svc.Providers.Entitlements.Suspend(name, &cp.SuspendEntitlementRequest{Reason: p.Reason}).Context(ctx).Do()
		return err
	})
}

// callOnce runs a write that must not be repeated after a doubtful
// failure: only a 429 (the server did not act) is retried.
func callOnce(ctx context.Context, c *Client, r *retrier, method Method, resource string, fn func() error) error {
	for {
		r.attempt()
		start := time.Now()
		err := fn()
		if err != nil {
			err = c.apiErr(method, resource, err)
		}
		c.metrics.attempt(ctx, method, start, err)
		if err == nil {
			return nil
		}
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.Code != http.StatusTooManyRequests {
			return err
		}
		if werr := r.wait(ctx, err); werr != nil {
			return werr
		}
	}
}
