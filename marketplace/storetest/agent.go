package storetest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/agent"
)

// RunOrders runs the agent.Store contract against the stores h provides;
// each store's tests call it beside Run. It skips stores that do not
// implement agent.Store.
func RunOrders(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil {
		t.Fatal("storetest: Harness.New is nil")
	}
	for _, c := range orderCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, h)
		})
	}
}

var orderCases = []testCase{
	{"InsertThenGet", testOrderInsertGet},
	{"InsertKeepsFirst", testOrderInsertKeepsFirst},
	{"InsertInvalid", testOrderInsertInvalid},
	{"NotFound", testOrderNotFound},
	{"ListFilters", testOrderList},
	{"RevokeOnce", testOrderRevoke},
	{"DeleteAccount", testOrderDelete},
	{"ExactlyOneInsertUnderConcurrency", testOrderConcurrent},
	{"SurvivesReopen", testOrderDurable},
}

// orders returns a fresh store as an agent.Store, or skips.
func orders(t *testing.T, h Harness) (marketplace.Store, agent.Store) {
	t.Helper()
	s := newStore(t, h)
	o, ok := s.(agent.Store)
	if !ok {
		t.Skip("store does not implement agent.Store")
	}
	return s, o
}

func order(id, account, ent, client string) agent.OrderRecord {
	return agent.OrderRecord{Order: agent.Order{
		ID: id, AccountID: account, EntitlementID: ent, UsageReportingID: "project_number:" + id,
		ClientID: client, RedirectURIs: []string{"https://a.example/cb", "https://b.example/cb"},
		CreatedAt: at(time.Minute),
	}, SealedSecret: []byte("sealed\x00\xff" + id)}
}

func insertOrder(t *testing.T, o agent.Store, r agent.OrderRecord) (agent.OrderRecord, bool) {
	t.Helper()
	got, inserted, err := o.InsertOrder(context.Background(), r)
	noErr(t, err, "InsertOrder "+r.ID)
	return got, inserted
}

// sameOrder requires got to hold want's fields.
func sameOrder(t *testing.T, got, want agent.OrderRecord, what string) {
	t.Helper()
	sameTime(t, got.CreatedAt, want.CreatedAt, what+": CreatedAt")
	sameTime(t, got.RevokedAt, want.RevokedAt, what+": RevokedAt")
	if !slices.Equal(got.RedirectURIs, want.RedirectURIs) && len(got.RedirectURIs)+len(want.RedirectURIs) > 0 {
		t.Fatalf("%s: RedirectURIs %q, want %q", what, got.RedirectURIs, want.RedirectURIs)
	}
	if !bytes.Equal(got.SealedSecret, want.SealedSecret) {
		t.Fatalf("%s: SealedSecret %x, want %x", what, got.SealedSecret, want.SealedSecret)
	}
	g, w := got.Order, want.Order
	g.CreatedAt, g.RevokedAt, g.RedirectURIs = time.Time{}, time.Time{}, nil
	w.CreatedAt, w.RevokedAt, w.RedirectURIs = time.Time{}, time.Time{}, nil
	equal(t, fmt.Sprintf("%+v", g), fmt.Sprintf("%+v", w), what)
}

func testOrderInsertGet(t *testing.T, h Harness) {
	_, o := orders(t, h)
	ctx := context.Background()
	want := order("o1", "acct-1", "ent-1", "client-1")
	got, inserted := insertOrder(t, o, want)
	equal(t, inserted, true, "first insert")
	sameOrder(t, got, want, "InsertOrder result")
	got, err := o.GetOrder(ctx, "o1")
	noErr(t, err, "GetOrder")
	sameOrder(t, got, want, "GetOrder")
	got, err = o.GetOrderByClient(ctx, "client-1")
	noErr(t, err, "GetOrderByClient")
	sameOrder(t, got, want, "GetOrderByClient")

	bare := agent.OrderRecord{Order: agent.Order{ID: "o2", AccountID: "acct-1", ClientID: "client-2"}, SealedSecret: []byte{1}}
	insertOrder(t, o, bare)
	got, err = o.GetOrder(ctx, "o2")
	noErr(t, err, "GetOrder of an order without redirect URIs")
	sameOrder(t, got, bare, "GetOrder of an order without redirect URIs")
}

func testOrderInsertKeepsFirst(t *testing.T, h Harness) {
	_, o := orders(t, h)
	first := order("o1", "acct-1", "ent-1", "client-1")
	insertOrder(t, o, first)
	got, inserted := insertOrder(t, o, order("o1", "acct-1", "ent-1", "client-2"))
	equal(t, inserted, false, "second insert")
	sameOrder(t, got, first, "second insert returns the first")
	_, err := o.GetOrderByClient(context.Background(), "client-2")
	isErr(t, err, marketplace.ErrNotFound, "the loser's client")
}

func testOrderInsertInvalid(t *testing.T, h Harness) {
	_, o := orders(t, h)
	ctx := context.Background()
	_, _, err := o.InsertOrder(ctx, order("", "acct-1", "ent-1", "client-1"))
	isErr(t, err, marketplace.ErrInvalid, "InsertOrder without an id")
	_, _, err = o.InsertOrder(ctx, order("o1", "acct-1", "ent-1", ""))
	isErr(t, err, marketplace.ErrInvalid, "InsertOrder without a client id")
	insertOrder(t, o, order("o1", "acct-1", "ent-1", "client-1"))
	_, _, err = o.InsertOrder(ctx, order("o2", "acct-1", "ent-2", "client-1"))
	isErr(t, err, marketplace.ErrInvalid, "InsertOrder with another order's client id")
}

func testOrderNotFound(t *testing.T, h Harness) {
	_, o := orders(t, h)
	ctx := context.Background()
	_, err := o.GetOrder(ctx, "nope")
	isErr(t, err, marketplace.ErrNotFound, "GetOrder")
	_, err = o.GetOrderByClient(ctx, "nope")
	isErr(t, err, marketplace.ErrNotFound, "GetOrderByClient")
	isErr(t, o.RevokeOrder(ctx, "nope", at(0)), marketplace.ErrNotFound, "RevokeOrder")
	list, err := o.ListOrders(ctx, agent.OrderQuery{})
	noErr(t, err, "ListOrders")
	equal(t, len(list), 0, "orders in an empty store")
	n, err := o.DeleteOrders(ctx, "acct-1")
	noErr(t, err, "DeleteOrders")
	equal(t, n, 0, "orders deleted from an empty store")
}

func listIDs(t *testing.T, o agent.Store, q agent.OrderQuery) string {
	t.Helper()
	list, err := o.ListOrders(context.Background(), q)
	noErr(t, err, "ListOrders")
	ids := make([]string, len(list))
	for i, r := range list {
		ids[i] = r.ID
	}
	return fmt.Sprint(ids)
}

func testOrderList(t *testing.T, h Harness) {
	_, o := orders(t, h)
	insertOrder(t, o, order("o3", "acct-1", "ent-1", "c3"))
	insertOrder(t, o, order("o1", "acct-1", "ent-1", "c1"))
	insertOrder(t, o, order("o2", "acct-1", "ent-2", "c2"))
	insertOrder(t, o, order("o4", "acct-2", "ent-3", "c4"))
	equal(t, listIDs(t, o, agent.OrderQuery{}), "[o1 o2 o3 o4]", "all, by id")
	equal(t, listIDs(t, o, agent.OrderQuery{AccountID: "acct-1"}), "[o1 o2 o3]", "by account")
	equal(t, listIDs(t, o, agent.OrderQuery{EntitlementID: "ent-1"}), "[o1 o3]", "by entitlement")
	equal(t, listIDs(t, o, agent.OrderQuery{AccountID: "acct-2", EntitlementID: "ent-1"}), "[]", "both, ANDed")
}

func testOrderRevoke(t *testing.T, h Harness) {
	_, o := orders(t, h)
	ctx := context.Background()
	insertOrder(t, o, order("o1", "acct-1", "ent-1", "c1"))
	noErr(t, o.RevokeOrder(ctx, "o1", at(time.Hour)), "RevokeOrder")
	noErr(t, o.RevokeOrder(ctx, "o1", at(2*time.Hour)), "RevokeOrder again")
	got, err := o.GetOrder(ctx, "o1")
	noErr(t, err, "GetOrder")
	sameTime(t, got.RevokedAt, at(time.Hour), "RevokedAt (the first kept)")
	got, err = o.GetOrderByClient(ctx, "c1")
	noErr(t, err, "GetOrderByClient of a revoked order")
	sameTime(t, got.RevokedAt, at(time.Hour), "RevokedAt by client")
}

func testOrderDelete(t *testing.T, h Harness) {
	_, o := orders(t, h)
	ctx := context.Background()
	insertOrder(t, o, order("o1", "acct-1", "ent-1", "c1"))
	insertOrder(t, o, order("o2", "acct-1", "ent-2", "c2"))
	insertOrder(t, o, order("o3", "acct-2", "ent-3", "c3"))
	noErr(t, o.RevokeOrder(ctx, "o2", at(time.Hour)), "RevokeOrder")
	n, err := o.DeleteOrders(ctx, "acct-1")
	noErr(t, err, "DeleteOrders")
	equal(t, n, 2, "orders deleted (revoked ones too)")
	equal(t, listIDs(t, o, agent.OrderQuery{}), "[o3]", "orders left")
	_, err = o.GetOrderByClient(ctx, "c1")
	isErr(t, err, marketplace.ErrNotFound, "a purged order's client")
	_, inserted := insertOrder(t, o, order("o1", "acct-1", "ent-1", "c1"))
	equal(t, inserted, true, "a purged order registers again")
}

func testOrderConcurrent(t *testing.T, h Harness) {
	_, o := orders(t, h)
	const callers = 8
	var inserted atomic.Int32
	winners := make([]string, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			got, ins, err := o.InsertOrder(context.Background(), order("contended", "acct-1", "ent-1", fmt.Sprintf("client-%d", i)))
			if err != nil {
				t.Errorf("InsertOrder: %v", err)
				return
			}
			if ins {
				inserted.Add(1)
			}
			winners[i] = got.ClientID
		})
	}
	wg.Wait()
	equal(t, inserted.Load(), int32(1), "callers told they inserted")
	for i, w := range winners {
		equal(t, w, winners[0], fmt.Sprintf("client caller %d was given", i))
	}
}

func testOrderDurable(t *testing.T, h Harness) {
	s, o := orders(t, h)
	want := order("o1", "acct-1", "ent-1", "c1")
	insertOrder(t, o, want)
	noErr(t, o.RevokeOrder(context.Background(), "o1", at(time.Hour)), "RevokeOrder")
	want.RevokedAt = at(time.Hour)
	o2, ok := reopen(t, h, s).(agent.Store)
	if !ok {
		t.Fatal("the reopened store does not implement agent.Store")
	}
	got, err := o2.GetOrder(context.Background(), "o1")
	noErr(t, err, "GetOrder after reopen")
	sameOrder(t, got, want, "GetOrder after reopen")
}
