package marketplacetest

// This file lists accounts and entitlements: page sizes, page tokens and
// the attributes entitlements.list filters on.

import (
	"encoding/base64"
	"strconv"
	"strings"
)

const (
	accountsDefaultPageSize     = 25
	accountsMaxPageSize         = 200
	entitlementsDefaultPageSize = 200
	entitlementsMaxPageSize     = 200
)

func parsePageSize(v string, def, max int) (int, *apiError) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0, invalidArgument("Invalid value at 'page_size' (TYPE_INT32), %q", shorten(v, 32))
	}
	switch {
	case n < 0:
		return 0, invalidArgument("page_size must not be negative.")
	case n == 0:
		return def, nil
	case n > int64(max):
		return max, nil
	}
	return int(n), nil
}

// A page token names the last resource of the previous page by its creation
// sequence (so it survives inserts and deletes) and binds the list's kind
// and filter.
func pageToken(kind, filter string, afterSeq int64) string {
	raw := kind + "\x00" + filter + "\x00" + strconv.FormatInt(afterSeq, 10)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func parsePageToken(tok, kind, filter string) (int64, *apiError) {
	if tok == "" {
		return 0, nil
	}
	bad := invalidArgument("Invalid page token.")
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, bad
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 3 || parts[0] != kind {
		return 0, bad
	}
	if parts[1] != filter {
		return 0, invalidArgument("The page token was issued for a different filter.")
	}
	seq, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || seq < 0 {
		return 0, bad
	}
	return seq, nil
}

func (s *Server) listAccountsLocked(size, tok string) (any, *apiError) {
	n, e := parsePageSize(size, accountsDefaultPageSize, accountsMaxPageSize)
	if e != nil {
		return nil, e
	}
	after, e := parsePageToken(tok, "accounts", "")
	if e != nil {
		return nil, e
	}
	var resp struct {
		Accounts      []wireAccount `json:"accounts,omitempty"`
		NextPageToken string        `json:"nextPageToken,omitempty"`
	}
	all := s.sortedAccountsLocked()
	for i, a := range all {
		if a.seq <= after {
			continue
		}
		if len(resp.Accounts) == n {
			resp.NextPageToken = pageToken("accounts", "", all[i-1].seq)
			break
		}
		resp.Accounts = append(resp.Accounts, s.wireAccountLocked(a))
	}
	return resp, nil
}

func (s *Server) listEntitlementsLocked(filter, size, tok string) (any, *apiError) {
	n, e := parsePageSize(size, entitlementsDefaultPageSize, entitlementsMaxPageSize)
	if e != nil {
		return nil, e
	}
	f, err := parseFilter(filter)
	if err != nil {
		return nil, invalidArgument("%s", err.Error())
	}
	after, e := parsePageToken(tok, "entitlements", filter)
	if e != nil {
		return nil, e
	}
	var resp struct {
		Entitlements  []wireEntitlement `json:"entitlements,omitempty"`
		NextPageToken string            `json:"nextPageToken,omitempty"`
	}
	var last int64
	for _, ent := range s.sortedEntitlementsLocked() {
		if ent.seq <= after || !f.match(s.filterAttrs(ent)) {
			continue
		}
		if len(resp.Entitlements) == n {
			resp.NextPageToken = pageToken("entitlements", filter, last)
			break
		}
		resp.Entitlements = append(resp.Entitlements, s.wireEntitlementLocked(ent))
		last = ent.seq
	}
	return resp, nil
}

// filterAttrs gives filter.go the values of an entitlement's filterable
// attributes (canonical names).
func (s *Server) filterAttrs(e *entitlement) func(string) []string {
	one := func(v string) []string {
		if v == "" {
			return nil
		}
		return []string{v}
	}
	return func(name string) []string {
		switch name {
		case "account":
			return []string{e.accountID}
		case "product", "product_external_name", "services":
			return one(e.product)
		case "offer":
			return one(e.offer)
		case "new_pending_offer":
			return one(e.newPendingOffer)
		case "plan":
			return one(e.plan)
		case "new_pending_plan":
			return one(e.newPendingPlan)
		case "state":
			return []string{e.state}
		case "consumers.project":
			return one(e.consumerProject)
		case "change_history.new_offer":
			return append([]string(nil), e.offerHistory...)
		}
		// customer_billing_account, quote_external_name: emulated
		// entitlements have none.
		return nil
	}
}
