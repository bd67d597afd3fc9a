package marketplacetest

import (
	"slices"
	"time"
)

// Account is a snapshot of an emulated account, with the fields of the
// Procurement API's Account resource.
type Account struct {
	ID         string
	Name       string // providers/{provider}/accounts/{id}
	Provider   string
	State      string
	Approvals  []Approval
	CreateTime time.Time
	UpdateTime time.Time
}

// Approval is an account approval (the "signup" approval).
type Approval struct {
	Name       string
	State      string // PENDING, APPROVED, REJECTED
	Reason     string
	UpdateTime time.Time
}

// Entitlement is a snapshot of an emulated entitlement, with the fields of
// the Procurement API's Entitlement resource.
type Entitlement struct {
	ID                      string
	Name                    string // providers/{provider}/entitlements/{id}
	Account                 string // providers/{provider}/accounts/{id}
	AccountID               string
	Provider                string
	Product                 string
	ProductExternalName     string
	Plan                    string
	NewPendingPlan          string
	State                   string
	Offer                   string
	NewPendingOffer         string
	OfferDuration           string
	NewPendingOfferDuration string
	OfferEndTime            time.Time
	NewOfferStartTime       time.Time
	NewOfferEndTime         time.Time
	OrderID                 string
	UsageReportingID        string
	ConsumerProjects        []string
	MessageToUser           string
	CancellationReason      string
	AutoApprove             bool
	CreateTime              time.Time
	UpdateTime              time.Time
}

func (s *Server) accountSnapshotLocked(a *account) Account {
	out := Account{
		ID: a.id, Name: s.accountName(a.id), Provider: s.cfg.providerID, State: a.state,
		CreateTime: a.createTime, UpdateTime: a.updateTime,
	}
	for _, ap := range a.approvals {
		out.Approvals = append(out.Approvals, Approval{Name: ap.name, State: ap.state, Reason: ap.reason, UpdateTime: ap.updateTime})
	}
	return out
}

func (s *Server) entitlementSnapshotLocked(e *entitlement) Entitlement {
	out := Entitlement{
		ID: e.id, Name: s.entitlementName(e.id), Account: s.accountName(e.accountID), AccountID: e.accountID,
		Provider: s.cfg.providerID, Product: e.product, ProductExternalName: e.product,
		Plan: e.plan, NewPendingPlan: e.newPendingPlan, State: e.state,
		Offer: e.offer, NewPendingOffer: e.newPendingOffer,
		OfferDuration: e.offerDuration, NewPendingOfferDuration: e.newPendingOfferDuration,
		OfferEndTime: e.offerEndTime, NewOfferStartTime: e.newOfferStartTime, NewOfferEndTime: e.newOfferEndTime,
		OrderID: e.orderID, UsageReportingID: e.usageReportingID,
		MessageToUser: e.messageToUser, CancellationReason: e.cancellationReason,
		AutoApprove: e.autoApprove, CreateTime: e.createTime, UpdateTime: e.updateTime,
	}
	if e.consumerProject != "" {
		out.ConsumerProjects = []string{e.consumerProject}
	}
	return out
}

// Account returns a snapshot of the account, false if it does not exist
// (or was deleted).
func (s *Server) Account(id string) (Account, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.state.accounts[id]
	if a == nil {
		return Account{}, false
	}
	return s.accountSnapshotLocked(a), true
}

// Accounts returns snapshots of every account, in creation order.
func (s *Server) Accounts() []Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Account
	for _, a := range s.sortedAccountsLocked() {
		out = append(out, s.accountSnapshotLocked(a))
	}
	return out
}

// Entitlement returns a snapshot of the entitlement, false if it does not
// exist (or was deleted).
func (s *Server) Entitlement(id string) (Entitlement, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.state.entitlements[id]
	if e == nil {
		return Entitlement{}, false
	}
	return s.entitlementSnapshotLocked(e), true
}

// Entitlements returns snapshots of every entitlement, in creation order.
func (s *Server) Entitlements() []Entitlement {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Entitlement
	for _, e := range s.sortedEntitlementsLocked() {
		out = append(out, s.entitlementSnapshotLocked(e))
	}
	return slices.Clip(out)
}

// AccountName is the resource name of an account:
// providers/{provider}/accounts/{id}.
func (s *Server) AccountName(id string) string { return s.accountName(id) }

// EntitlementName is the resource name of an entitlement:
// providers/{provider}/entitlements/{id}.
func (s *Server) EntitlementName(id string) string { return s.entitlementName(id) }
