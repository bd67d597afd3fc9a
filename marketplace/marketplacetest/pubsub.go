package marketplacetest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TopicProject is the Google project that owns every partner's Marketplace
// notification topic.
const TopicProject = "cloudcommerceproc-prod"

// DefaultSubscription is the pull subscription a Server creates on its topic
// at start, in the vendor's own project.
const DefaultSubscription = "projects/vendor-project/subscriptions/marketplace"

// PublishedEvent is one message the emulator published to the Marketplace
// topic.
type PublishedEvent struct {
	EventID       string
	EventType     string // the eventType of the message; "" for an account message without one
	AccountID     string
	EntitlementID string
	Data          []byte // the message body, as published
	MessageID     string // the Pub/Sub message id; "" while held for reordering
	At            time.Time
	Duplicate     bool // a second publication of the same event (WithDuplicateDeliveries)
}

// publisher holds the published events and those held for reordering.
// Guarded by Server.mu.
type publisher struct {
	published []PublishedEvent
	held      []int // indexes into published, waiting for a reorder group
}

// Wire shapes of Marketplace messages (google-apis.md §1.2).
type wireEvent struct {
	EventID     string                `json:"eventId"`
	EventType   string                `json:"eventType,omitempty"`
	ProviderID  string                `json:"providerId"`
	Account     *wireEventAccount     `json:"account,omitempty"`
	Entitlement *wireEventEntitlement `json:"entitlement,omitempty"`
}

type wireEventAccount struct {
	ID         string `json:"id"`
	UpdateTime string `json:"updateTime"`
}

type wireEventEntitlement struct {
	ID                      string  `json:"id"`
	UpdateTime              string  `json:"updateTime"`
	NewPlan                 string  `json:"newPlan,omitempty"`
	NewProduct              string  `json:"newProduct,omitempty"`
	NewOffer                string  `json:"newOffer,omitempty"`
	NewPendingOfferDuration *string `json:"newPendingOfferDuration,omitempty"`
	NewOfferDuration        *string `json:"newOfferDuration,omitempty"`
	NewOfferStartTime       *string `json:"newOfferStartTime,omitempty"`
	NewOfferEndTime         *string `json:"newOfferEndTime,omitempty"`
	OrderID                 string  `json:"orderId,omitempty"`
	// EntitlementBenefitIDs is in the real ENTITLEMENT_OFFER_ACCEPTED
	// capture (google-apis.md §1.2).
	EntitlementBenefitIDs []string `json:"entitlementBenefitIds,omitempty"`
}

func (s *Server) initPubSub() error {
	ctx := context.Background()
	if _, err := s.ps.GServer.CreateTopic(ctx, &pubsubpb.Topic{Name: s.Topic()}); err != nil {
		return err
	}
	_, err := s.ps.GServer.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name:               DefaultSubscription,
		Topic:              s.Topic(),
		AckDeadlineSeconds: 10,
	})
	return err
}

// Topic is the Marketplace notification topic,
// projects/cloudcommerceproc-prod/topics/<providerID>.
func (s *Server) Topic() string {
	return "projects/" + TopicProject + "/topics/" + s.cfg.providerID
}

// Subscription is the pull subscription created at start
// (DefaultSubscription), with a 10 s ack deadline.
func (s *Server) Subscription() string { return DefaultSubscription }

// PubSub is the underlying pstest server, for Messages, acks and delivery
// counts.
func (s *Server) PubSub() *pstest.Server { return s.ps }

// PubSubAddr is the gRPC address of the Pub/Sub server ("host:port"), the
// value for PUBSUB_EMULATOR_HOST.
func (s *Server) PubSubAddr() string { return s.ps.Addr }

// PubSubOptions are the options that point a cloud.google.com/go/pubsub/v2
// client at the emulator's Pub/Sub server.
func (s *Server) PubSubOptions() []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(s.ps.Addr),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		option.WithTelemetryDisabled(),
	}
}

// CreateSubscription creates another subscription (full resource name) on
// the Marketplace topic; messages published from then on reach it.
//
// With a non-empty pushEndpoint it is a push subscription, delivered by the
// emulator (pstest does not push): each message is POSTed to the endpoint
// as Pub/Sub does (see Push), with an OIDC token whose audience is the
// endpoint URL, Pub/Sub's default. A 102, 200, 201, 202 or 204 answer acks
// the message; anything else, or no answer within the 10 s ack deadline,
// nacks it and it is delivered again after a short pause.
func (s *Server) CreateSubscription(ctx context.Context, name, pushEndpoint string) error {
	sub := &pubsubpb.Subscription{Name: name, Topic: s.Topic(), AckDeadlineSeconds: 10}
	if pushEndpoint != "" {
		sub.PushConfig = &pubsubpb.PushConfig{PushEndpoint: pushEndpoint}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("marketplacetest: create subscription %s: server closed", name)
	}
	if _, err := s.ps.GServer.CreateSubscription(ctx, sub); err != nil {
		return fmt.Errorf("marketplacetest: create subscription %s: %w", name, err)
	}
	if pushEndpoint != "" {
		s.pushers.Add(1)
		go s.deliverPush(name, pushEndpoint)
	}
	return nil
}

// pushPause is how long a push subscription waits after a failed delivery.
const pushPause = 50 * time.Millisecond

// deliverPush pulls from a push subscription and POSTs each message to
// endpoint until the server closes.
func (s *Server) deliverPush(sub, endpoint string) {
	defer s.pushers.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	client := &http.Client{Timeout: 10 * time.Second}
	for ctx.Err() == nil {
		resp, err := s.ps.GServer.Pull(ctx, &pubsubpb.PullRequest{Subscription: sub, MaxMessages: 10})
		if err != nil {
			if !s.pause(ctx, pushPause) {
				return
			}
			continue
		}
		for _, rm := range resp.ReceivedMessages {
			m := rm.GetMessage()
			r, err := s.Push(ctx, endpoint, PushParams{
				Audience:     endpoint,
				Data:         m.GetData(),
				Attributes:   m.GetAttributes(),
				MessageID:    m.GetMessageId(),
				PublishTime:  m.GetPublishTime().AsTime(),
				Subscription: sub,
				Client:       client,
			})
			ok := false
			if err == nil {
				_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
				_ = r.Body.Close()
				switch r.StatusCode {
				case 102, 200, 201, 202, 204:
					ok = true
				}
			}
			ids := []string{rm.GetAckId()}
			if ok {
				_, _ = s.ps.GServer.Acknowledge(ctx, &pubsubpb.AcknowledgeRequest{Subscription: sub, AckIds: ids})
				continue
			}
			_, _ = s.ps.GServer.ModifyAckDeadline(ctx, &pubsubpb.ModifyAckDeadlineRequest{Subscription: sub, AckIds: ids, AckDeadlineSeconds: 0})
			if !s.pause(ctx, pushPause) {
				return
			}
		}
	}
}

// pause waits d unless ctx ends first; it reports whether d passed.
func (s *Server) pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Published returns every event the emulator published, in publication
// order (duplicates included, marked Duplicate).
func (s *Server) Published() []PublishedEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PublishedEvent, len(s.pub.published))
	for i, p := range s.pub.published {
		p.Data = append([]byte(nil), p.Data...)
		out[i] = p
	}
	return out
}

// Flush publishes the events held for reordering (WithReorder), shuffled.
func (s *Server) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseHeldLocked()
}

func (s *Server) publishAccountLocked(idType, eventType string, a *account) {
	ev := wireEvent{
		EventID:    idType + "-" + s.newUUIDLocked(),
		EventType:  eventType,
		ProviderID: s.cfg.providerID,
		Account:    &wireEventAccount{ID: a.id, UpdateTime: formatTimestamp(a.updateTime)},
	}
	s.emitLocked(ev, PublishedEvent{EventType: eventType, AccountID: a.id})
}

// publishEntitlementLocked publishes an entitlement message of eventType.
// extra fills the event-specific fields.
func (s *Server) publishEntitlementLocked(eventType string, e *entitlement, extra func(*wireEventEntitlement)) {
	body := &wireEventEntitlement{ID: e.id, UpdateTime: formatTimestamp(e.updateTime)}
	if extra != nil {
		extra(body)
	}
	ev := wireEvent{
		EventID:     eventType + "-" + s.newUUIDLocked(),
		EventType:   eventType,
		ProviderID:  s.cfg.providerID,
		Entitlement: body,
	}
	s.emitLocked(ev, PublishedEvent{EventType: eventType, AccountID: e.accountID, EntitlementID: e.id})
}

func strPtr(s string) *string { return &s }

func (s *Server) emitLocked(ev wireEvent, rec PublishedEvent) {
	data, err := json.Marshal(ev)
	if err != nil {
		panic(fmt.Sprintf("marketplacetest: marshal event: %v", err)) // our own types: cannot fail
	}
	rec.EventID = ev.EventID
	rec.Data = data
	rec.At = s.clock.Now()
	copies := 1
	if s.cfg.duplicateRate > 0 && s.rng.Float64() < s.cfg.duplicateRate {
		copies = 2
	}
	for i := 0; i < copies; i++ {
		r := rec
		r.Duplicate = i > 0
		s.pub.published = append(s.pub.published, r)
		idx := len(s.pub.published) - 1
		if s.cfg.reorderWindow < 2 {
			s.sendLocked(idx)
			continue
		}
		s.pub.held = append(s.pub.held, idx)
		if len(s.pub.held) >= s.cfg.reorderWindow {
			s.releaseHeldLocked()
		}
	}
}

func (s *Server) releaseHeldLocked() {
	held := s.pub.held
	s.pub.held = nil
	s.rng.Shuffle(len(held), func(i, j int) { held[i], held[j] = held[j], held[i] })
	for _, idx := range held {
		s.sendLocked(idx)
	}
}

// sendLocked hands a message to pstest. pstest takes only its own lock and
// never calls back into the Server, so holding s.mu keeps publication order
// equal to the order of changes.
func (s *Server) sendLocked(idx int) {
	p := &s.pub.published[idx]
	p.MessageID = s.ps.Publish(s.Topic(), p.Data, nil)
}
