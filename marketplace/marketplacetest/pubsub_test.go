package marketplacetest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// receive pulls n messages from sub with a real pubsub v2 Subscriber and
// acks them.
func receive(t *testing.T, s *Server, sub string, n int) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := pubsub.NewClient(ctx, "vendor-project", s.PubSubOptions()...)
	require.NoError(t, err)
	defer client.Close()
	var (
		mu  sync.Mutex
		got [][]byte
	)
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	err = client.Subscriber(sub).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m.Data)
		if len(got) == n {
			stop()
		}
	})
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, n, "messages received before the timeout")
	return got
}

func TestEventsReachARealSubscriber(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t, WithProviderID("DEMO-vendor"))
	assert.Equal(t, "projects/cloudcommerceproc-prod/topics/DEMO-vendor", s.Topic())
	require.NoError(t, s.CreateSubscription(ctx, "projects/vendor-project/subscriptions/second", ""))

	entID, err := s.Purchase(ctx, PurchaseParams{Plan: "pro", OfferDuration: "P2Y3M"})
	require.NoError(t, err)
	acct := s.Entitlements()[0].AccountID

	msgs := receive(t, s, s.Subscription(), 2)
	byType := map[string]map[string]any{}
	for _, data := range msgs {
		var m map[string]any
		require.NoError(t, json.Unmarshal(data, &m))
		typ, _ := m["eventType"].(string)
		byType[typ] = m
	}

	// The account message has the documented shape: no eventType.
	am := byType[""]
	require.NotNil(t, am, "account message")
	assert.Equal(t, "DEMO-vendor", am["providerId"])
	assert.Regexp(t, `^ACCOUNT_ACTIVE-[0-9a-f-]{36}$`, am["eventId"])
	assert.Equal(t, map[string]any{"id": acct, "updateTime": "2026-01-05T09:00:00Z"}, am["account"])
	assert.NotContains(t, am, "entitlement")

	em := byType["ENTITLEMENT_CREATION_REQUESTED"]
	require.NotNil(t, em)
	assert.Equal(t, "DEMO-vendor", em["providerId"])
	assert.Regexp(t, `^ENTITLEMENT_CREATION_REQUESTED-[0-9a-f-]{36}$`, em["eventId"])
	assert.Equal(t, map[string]any{
		"id": entID, "updateTime": "2026-01-05T09:00:00.000001Z", "newPendingOfferDuration": "P2Y3M",
	}, em["entitlement"])

	// The other subscription got them too.
	assert.Len(t, receive(t, s, "projects/vendor-project/subscriptions/second", 2), 2)
	for _, m := range s.PubSub().Messages() {
		assert.Equal(t, s.Topic(), m.Topic)
		assert.Empty(t, m.Attributes, "Marketplace sets no attributes")
	}
	require.Error(t, s.CreateSubscription(ctx, "projects/vendor-project/subscriptions/second", ""))
}

func TestAccountEventTypeOption(t *testing.T) {
	t.Parallel()
	s := New(t, WithAccountEventType(true))
	_, err := s.CreateAccount(context.Background())
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(s.Published()[0].Data, &m))
	assert.Equal(t, "ACCOUNT_ACTIVE", m["eventType"])
}

func TestDuplicateDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t, WithDuplicateDeliveries(1), WithSeed(7))
	_, err := s.Purchase(ctx, PurchaseParams{})
	require.NoError(t, err)
	pub := s.Published()
	require.Len(t, pub, 4)
	assert.Equal(t, pub[0].EventID, pub[1].EventID)
	assert.Equal(t, pub[0].Data, pub[1].Data)
	assert.False(t, pub[0].Duplicate)
	assert.True(t, pub[1].Duplicate)
	assert.NotEqual(t, pub[0].MessageID, pub[1].MessageID, "two Pub/Sub messages")
	assert.Len(t, s.PubSub().Messages(), 4)

	// With p = 0.5 and a seed, the choice is deterministic.
	count := func() int {
		s := New(t, WithDuplicateDeliveries(0.5), WithSeed(42))
		for range 10 {
			_, err := s.CreateAccount(ctx)
			require.NoError(t, err)
		}
		return len(s.Published())
	}
	n := count()
	assert.Equal(t, n, count())
	assert.Greater(t, n, 10)
	assert.Less(t, n, 20)
}

func TestReorder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t, WithReorder(4), WithSeed(3))
	var ids []string
	for range 5 {
		id, err := s.CreateAccount(ctx)
		require.NoError(t, err)
		ids = append(ids, id)
	}
	// Four released shuffled, one held.
	msgs := s.PubSub().Messages()
	require.Len(t, msgs, 4)
	order := func() []string {
		var out []string
		for _, m := range s.PubSub().Messages() {
			var ev struct {
				Account struct{ ID string } `json:"account"`
			}
			require.NoError(t, json.Unmarshal(m.Data, &ev))
			out = append(out, ev.Account.ID)
		}
		return out
	}
	got := order()
	assert.ElementsMatch(t, ids[:4], got)
	assert.NotEqual(t, ids[:4], got, "seed 3 shuffles this group")
	s.Flush()
	assert.Len(t, s.PubSub().Messages(), 5)
	assert.Equal(t, ids[4], order()[4])
	// Published keeps the order of changes.
	for i, p := range s.Published() {
		assert.Equal(t, ids[i], p.AccountID)
		assert.NotEmpty(t, p.MessageID)
	}
}

func TestPushSubscriptionDelivers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	type delivery struct {
		auth string
		env  struct {
			Message struct {
				Data      []byte `json:"data"`
				MessageID string `json:"messageId"`
			} `json:"message"`
			Subscription string `json:"subscription"`
		}
	}
	var (
		mu    sync.Mutex
		got   []delivery
		calls int
	)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d delivery
		d.auth = r.Header.Get("Authorization")
		if err := json.NewDecoder(r.Body).Decode(&d.env); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			w.WriteHeader(http.StatusInternalServerError) // nack: delivered again
			return
		}
		got = append(got, d)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer app.Close()
	s := New(t)
	const sub = "projects/vendor-project/subscriptions/push"
	require.NoError(t, s.CreateSubscription(ctx, sub, app.URL+"/pubsub"))
	acct, err := s.CreateAccount(ctx)
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1
	}, 5*time.Second, 10*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 2, calls)
	d := got[0]
	assert.True(t, strings.HasPrefix(d.auth, "Bearer "), d.auth)
	assert.Equal(t, sub, d.env.Subscription)
	assert.Equal(t, s.Published()[0].MessageID, d.env.Message.MessageID)
	var ev map[string]any
	require.NoError(t, json.Unmarshal(d.env.Message.Data, &ev))
	assert.Equal(t, acct, ev["account"].(map[string]any)["id"])
}
