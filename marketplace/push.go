package marketplace

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
)

// maxPushBody bounds a push request body. Marketplace notifications are a
// few hundred bytes; base64 and the envelope add a third.
const maxPushBody = 1 << 20

// pushEnvelope is the JSON body of a Pub/Sub push request. Pub/Sub sends
// messageId and publishTime in both camelCase and snake_case.
type pushEnvelope struct {
	Message *struct {
		Data             string            `json:"data"`
		Attributes       map[string]string `json:"attributes"`
		MessageID        string            `json:"messageId"`
		MessageIDSnake   string            `json:"message_id"`
		PublishTime      string            `json:"publishTime"`
		PublishTimeSnake string            `json:"publish_time"`
	} `json:"message"`
	Subscription    string `json:"subscription"`
	DeliveryAttempt int    `json:"deliveryAttempt"`
}

// PushHandler returns the http.Handler for a Pub/Sub push subscription on
// the Marketplace topic. For each request it:
//
//   - verifies the push subscription's Google-signed OIDC token with v
//     before reading the body: 401 if it is refused, 503 if Google's keys
//     cannot be fetched (Pub/Sub retries);
//   - decodes the push envelope (at most 1 MiB): 400 if it is not one;
//   - processes the message with HandleMessage and answers 204 only after
//     its commit (or after it was recorded as poison); a processing failure
//     answers 503, which Pub/Sub treats as a nack and retries with backoff.
//     While Config.Concurrency messages are in flight, a request waits for
//     room; if its context ends first, it gets 503 too.
//
// Only POST is accepted (405 otherwise). Responses carry a short text, never
// the payload.
func (p *Processor) PushHandler(v *verify.PushVerifier) http.Handler {
	if v == nil {
		panic("marketplace: PushHandler: nil PushVerifier")
	}
	return p.pushHandler(func(ctx context.Context, r *http.Request) error {
		_, err := v.VerifyRequest(ctx, r)
		return err
	})
}

func (p *Processor) pushHandler(check func(ctx context.Context, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			pushReply(w, http.StatusMethodNotAllowed, "POST only")
			return
		}
		if err := check(ctx, r); err != nil {
			if errors.Is(err, verify.ErrKeysUnavailable) {
				p.logger.LogAttrs(ctx, slog.LevelWarn, "marketplace: push token not checked: keys unavailable", slog.String("error", err.Error()))
				w.Header().Set("Retry-After", "30")
				pushReply(w, http.StatusServiceUnavailable, "token keys unavailable, retry later")
				return
			}
			p.logger.LogAttrs(ctx, slog.LevelWarn, "marketplace: push request refused", slog.String("error", err.Error()))
			pushReply(w, http.StatusUnauthorized, "invalid push token")
			return
		}
		m, err := decodePush(http.MaxBytesReader(w, r.Body, maxPushBody))
		if err != nil {
			p.logger.LogAttrs(ctx, slog.LevelWarn, "marketplace: bad push envelope", slog.String("error", err.Error()))
			pushReply(w, http.StatusBadRequest, "not a Pub/Sub push envelope")
			return
		}
		if err := p.HandleMessage(ctx, m); err != nil {
			pushReply(w, http.StatusServiceUnavailable, "not processed, retry later")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func pushReply(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}

// decodePush reads a push envelope into a Message.
func decodePush(body io.Reader) (Message, error) {
	var env pushEnvelope
	dec := json.NewDecoder(body)
	if err := dec.Decode(&env); err != nil {
		return Message{}, fmt.Errorf("decoding push envelope: %w", err)
	}
	if env.Message == nil {
		return Message{}, errors.New("push envelope has no message")
	}
	data, err := base64.StdEncoding.DecodeString(env.Message.Data)
	if err != nil {
		return Message{}, fmt.Errorf("push message data is not base64: %w", err)
	}
	m := Message{ID: env.Message.MessageID, Data: data, Attributes: env.Message.Attributes, DeliveryAttempt: env.DeliveryAttempt}
	if m.ID == "" {
		m.ID = env.Message.MessageIDSnake
	}
	ts := env.Message.PublishTime
	if ts == "" {
		ts = env.Message.PublishTimeSnake
	}
	if ts != "" {
		if m.PublishTime, err = time.Parse(time.RFC3339Nano, ts); err != nil {
			return Message{}, fmt.Errorf("push message publishTime: %w", err)
		}
	}
	return m, nil
}
