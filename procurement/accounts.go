package procurement

import (
	"context"
	"iter"
	"maps"

	cp "google.golang.org/api/cloudcommerceprocurement/v1"
)

// GetAccountParams are the optional parameters of GetAccount.
type GetAccountParams struct {
	// View selects the fields returned; empty means the API default (full).
	View AccountView
}

// GetAccount reads an account. accountID is an id or this provider's
// account resource name; params may be nil.
func (c *Client) GetAccount(ctx context.Context, accountID string, params *GetAccountParams) (Account, error) {
	name, err := c.accountName(accountID)
	if err != nil {
		return Account{}, err
	}
	var view AccountView
	if params != nil {
		view = params.View
	}
	r := c.newRetrier(MethodGetAccount, name)
	return c.getAccount(ctx, r, name, view)
}

func (c *Client) getAccount(ctx context.Context, r *retrier, name string, view AccountView) (Account, error) {
	a, err := call(ctx, c, r, MethodGetAccount, name, func() (*cp.Account, error) {
		get := c.svc.Providers.Accounts.Get(name).Context(ctx)
		if view != "" {
			get = get.View(string(view))
		}
		return get.Do()
	})
	if err != nil {
		return Account{}, err
	}
	return convertAccount(a)
}

// ListAccountsParams are the optional parameters of ListAccounts.
type ListAccountsParams struct {
	// PageSize is the number of accounts per page; 0 means the API default
	// (25), the API maximum is 200.
	PageSize int
	// PageToken resumes a listing where a previous page ended.
	PageToken string
}

// AccountPage is one page of accounts.
type AccountPage struct {
	Accounts []Account
	// NextPageToken fetches the next page; empty on the last page.
	NextPageToken string
}

// ListAccountsPage reads one page of the provider's accounts (basic view).
// params may be nil.
func (c *Client) ListAccountsPage(ctx context.Context, params *ListAccountsParams) (AccountPage, error) {
	var p ListAccountsParams
	if params != nil {
		p = *params
	}
	r := c.newRetrier(MethodListAccounts, c.parent)
	resp, err := call(ctx, c, r, MethodListAccounts, c.parent, func() (*cp.ListAccountsResponse, error) {
		list := c.svc.Providers.Accounts.List(c.parent).Context(ctx)
		if p.PageSize > 0 {
			list = list.PageSize(int64(p.PageSize))
		}
		if p.PageToken != "" {
			list = list.PageToken(p.PageToken)
		}
		return list.Do()
	})
	if err != nil {
		return AccountPage{}, err
	}
	page := AccountPage{NextPageToken: resp.NextPageToken, Accounts: make([]Account, 0, len(resp.Accounts))}
	for _, a := range resp.Accounts {
		acc, err := convertAccount(a)
		if err != nil {
			return AccountPage{}, err
		}
		page.Accounts = append(page.Accounts, acc)
	}
	return page, nil
}

// ListAccounts iterates over all the provider's accounts (basic view),
// fetching pages as needed. Iteration stops at the first error, which is
// yielded with a zero Account. params may be nil.
func (c *Client) ListAccounts(ctx context.Context, params *ListAccountsParams) iter.Seq2[Account, error] {
	var p ListAccountsParams
	if params != nil {
		p = *params
	}
	return pages(MethodListAccounts, c.parent, p.PageToken, func(token string) ([]Account, string, error) {
		q := p // each page its own copy: ranges may run concurrently
		q.PageToken = token
		page, err := c.ListAccountsPage(ctx, &q)
		return page.Accounts, page.NextPageToken, err
	})
}

// pages iterates over the items of every page fetch returns, starting at
// token and following next-page tokens. Iteration stops at the first error,
// yielded with a zero item, and at a token the server repeats (it would
// loop forever). Each range over the result starts again from token.
func pages[T any](method Method, parent, token string, fetch func(token string) ([]T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		for current := token; ; {
			items, next, err := fetch(current)
			if err != nil {
				yield(zero, err)
				return
			}
			for _, item := range items {
				if !yield(item, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			if next == current {
				yield(zero, repeatedTokenError(method, parent))
				return
			}
			current = next
		}
	}
}

// AccountResult is the result of an idempotent account change.
type AccountResult struct {
	// Outcome says whether this call made the change.
	Outcome Outcome
	// Account is the latest state read.
	Account Account
}

// ApproveAccountParams are the parameters of ApproveAccount.
type ApproveAccountParams struct {
	// ApprovalName is the approval to grant; empty means SignupApproval
	// ("signup"). (The API itself fails with 400 when the name is missing
	// and several approvals are possible.)
	ApprovalName string
	// Reason is an optional free-form reason, at most 256 bytes.
	Reason string
	// Properties are optional properties to associate with the account.
	Properties map[string]string
}

// ApproveAccountSignup grants the account's "signup" approval, which the
// API requires before any of the account's entitlements can be approved.
// Call it once the customer has finished signing up (the sign-up JWT's
// "sub" is the account id). It is idempotent: if the approval is already
// APPROVED it reports OutcomeAlreadyDone and makes no write.
func (c *Client) ApproveAccountSignup(ctx context.Context, accountID string) (AccountResult, error) {
	return c.ApproveAccount(ctx, accountID, nil)
}

// ApproveAccount grants an approval on an account (by default the "signup"
// approval). It reads the account first and reports OutcomeAlreadyDone
// without writing if the approval is already APPROVED; after an ambiguous
// failure it re-reads and succeeds if the approval went through. params may
// be nil.
func (c *Client) ApproveAccount(ctx context.Context, accountID string, params *ApproveAccountParams) (AccountResult, error) {
	var p ApproveAccountParams
	if params != nil {
		p = *params
	}
	if p.ApprovalName == "" {
		p.ApprovalName = SignupApproval
	}
	return c.changeAccountApproval(ctx, accountID, MethodApproveAccount, p.ApprovalName, ApprovalStateApproved, p.Reason,
		func(ctx context.Context, name string) error {
			_, err := c.svc.Providers.Accounts.Approve(name, &cp.ApproveAccountRequest{
				ApprovalName: p.ApprovalName,
				Reason:       p.Reason,
				Properties:   maps.Clone(p.Properties),
			}).Context(ctx).Do()
			return err
		})
}

// RejectAccountParams are the parameters of RejectAccount.
type RejectAccountParams struct {
	// ApprovalName is the approval to reject; empty means SignupApproval.
	ApprovalName string
	// Reason is an optional free-form reason, at most 256 bytes.
	Reason string
}

// RejectAccount rejects an approval on an account (by default "signup"). It
// is idempotent like ApproveAccount: an approval already REJECTED is
// reported as OutcomeAlreadyDone. A rejected approval can later be
// approved. params may be nil.
func (c *Client) RejectAccount(ctx context.Context, accountID string, params *RejectAccountParams) (AccountResult, error) {
	var p RejectAccountParams
	if params != nil {
		p = *params
	}
	if p.ApprovalName == "" {
		p.ApprovalName = SignupApproval
	}
	return c.changeAccountApproval(ctx, accountID, MethodRejectAccount, p.ApprovalName, ApprovalStateRejected, p.Reason,
		func(ctx context.Context, name string) error {
			_, err := c.svc.Providers.Accounts.Reject(name, &cp.RejectAccountRequest{
				ApprovalName: p.ApprovalName,
				Reason:       p.Reason,
			}).Context(ctx).Do()
			return err
		})
}

func (c *Client) changeAccountApproval(ctx context.Context, accountID string, method Method, approval string,
	want ApprovalState, reason string, write func(ctx context.Context, name string) error) (AccountResult, error) {
	name, err := c.accountName(accountID)
	if err != nil {
		return AccountResult{}, err
	}
	if err := checkReason(method, name, reason); err != nil {
		return AccountResult{}, err
	}
	acc, outcome, err := runChange(ctx, c, name, change[Account]{
		method: method,
		get: func(ctx context.Context, r *retrier) (Account, error) {
			return c.getAccount(ctx, r, name, "")
		},
		decide: func(a *Account, _ bool) (bool, error) {
			ap, ok := a.Approval(approval)
			return ok && ap.State == want, nil
		},
		act: func(ctx context.Context, _ *Account) error {
			return write(ctx, name)
		},
		updateTime: func(a *Account) int64 { return a.UpdateTime.UnixNano() },
	})
	return AccountResult{Outcome: outcome, Account: acc}, err
}

// ResetAccount resets an account and cancels all its entitlements. Google
// allows it only for the provider's own test accounts, never customer
// accounts. It is retried only on 429, never after a doubtful failure.
func (c *Client) ResetAccount(ctx context.Context, accountID string) error {
	name, err := c.accountName(accountID)
	if err != nil {
		return err
	}
	r := c.newRetrier(MethodResetAccount, name)
	return callOnce(ctx, c, r, MethodResetAccount, name, func() error {
		_, err := c.svc.Providers.Accounts.Reset(name, &cp.ResetAccountRequest{}).Context(ctx).Do()
		return err
	})
}
