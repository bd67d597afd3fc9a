package marketplacetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// PushIssuer is the iss claim of the OIDC tokens Pub/Sub attaches to push
// deliveries.
const PushIssuer = "https://accounts.google.com"

// PushTokenLifetime is exp − iat of a push token.
const PushTokenLifetime = time.Hour

// DefaultPushServiceAccount is the email in push tokens: the service
// account the push subscription authenticates as.
const DefaultPushServiceAccount = "marketplace-push@vendor-project.iam.gserviceaccount.com"

// DefaultPushSubscription is the subscription field of push envelopes when
// PushParams.Subscription is empty.
const DefaultPushSubscription = "projects/vendor-project/subscriptions/marketplace-push"

// pushJWKSPath mirrors Google's https://www.googleapis.com/oauth2/v3/certs.
const pushJWKSPath = "/oauth2/v3/certs"

// pushUserAgent is the User-Agent of Google's push requests.
const pushUserAgent = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"

// PushParams describes one push delivery for Push.
type PushParams struct {
	Audience     string            // aud of the minted token
	Data         []byte            // message data (sent base64-encoded)
	Attributes   map[string]string // message attributes
	MessageID    string            // "" = a fresh numeric id
	PublishTime  time.Time         // zero = the emulator clock's now
	Subscription string            // "" = DefaultPushSubscription
	// Token, if set, is sent verbatim instead of a minted token.
	Token string
	// NoToken sends no Authorization header at all.
	NoToken bool
	// Client sends the request; nil = http.DefaultClient.
	Client *http.Client
}

func (i *issuer) pushRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+pushJWKSPath, redirecting(&i.redirect, func() string { return i.baseURL + attackerPushJWKSPath },
		func(w http.ResponseWriter, r *http.Request) {
			keys, err := i.ring.published()
			serveJWKS(w, keys, err)
		}))
	mux.HandleFunc("GET "+attackerPushJWKSPath, func(w http.ResponseWriter, r *http.Request) {
		k, err := i.ring.foreignKey()
		serveJWKS(w, []*signingKey{k}, err)
	})
}

// numericID is a stable 21-digit id, the shape of a service account's
// unique id, derived from s.
func numericID(s string) string {
	sum := sha256.Sum256([]byte(s))
	return fmt.Sprintf("1%020d", binary.BigEndian.Uint64(sum[:8]))
}

// PushJWKSURL serves the push token signing keys as a JWK Set, like
// Google's https://www.googleapis.com/oauth2/v3/certs.
func (s *Server) PushJWKSURL() string { return s.push.baseURL + pushJWKSPath }

// PushServiceAccount is the email claim of push tokens.
func (s *Server) PushServiceAccount() string { return s.push.email }

// PushToken mints the OIDC token Pub/Sub sends with a push delivery. With
// only Audience set (the audience configured on the push subscription) it
// is a genuine token: RS256 with a kid, iss PushIssuer, aud, email
// PushServiceAccount(), email_verified true, sub, iat now (emulator clock),
// exp iat+1h. The other fields of p, and p.Bad, make it wrong on purpose.
//
// PushToken panics if p asks for what it cannot mint (an unknown Alg, the
// sign-up-only Google field, a Bad kind that does not apply to push
// tokens) or if signing fails, which only a broken crypto/rand can cause:
// mistakes of the test, not outcomes to handle.
func (s *Server) PushToken(p TokenParams) string { return mustToken(s.push.mint(p)) }

// pushEnvelope is the body of a push request. Pub/Sub sends messageId and
// publishTime in both camelCase and snake_case; so does the emulator.
type pushEnvelope struct {
	Message struct {
		Attributes     map[string]string `json:"attributes,omitempty"`
		Data           string            `json:"data"`
		MessageID      string            `json:"messageId"`
		MessageIDSnake string            `json:"message_id"`
		PublishTime    string            `json:"publishTime"`
		PublishSnake   string            `json:"publish_time"`
	} `json:"message"`
	Subscription string `json:"subscription"`
}

// Push delivers one message to url the way a Pub/Sub push subscription
// does: a POST of the push envelope, with a bearer token minted for
// p.Audience unless p says otherwise. The caller closes the response body.
func (s *Server) Push(ctx context.Context, url string, p PushParams) (*http.Response, error) {
	var env pushEnvelope
	env.Message.Attributes = p.Attributes
	env.Message.Data = base64.StdEncoding.EncodeToString(p.Data)
	id := p.MessageID
	if id == "" {
		id = strconv.FormatInt(4000000000000000+s.pushSeq.Add(1), 10)
	}
	env.Message.MessageID, env.Message.MessageIDSnake = id, id
	at := p.PublishTime
	if at.IsZero() {
		at = s.clock.Now()
	}
	ts := at.UTC().Format(time.RFC3339Nano)
	env.Message.PublishTime, env.Message.PublishSnake = ts, ts
	env.Subscription = p.Subscription
	if env.Subscription == "" {
		env.Subscription = DefaultPushSubscription
	}
	body, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("marketplacetest: push: encode envelope: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("marketplacetest: push: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", pushUserAgent)
	if !p.NoToken {
		tok := p.Token
		if tok == "" {
			if tok, err = s.push.mint(TokenParams{Audience: p.Audience}); err != nil {
				return nil, err
			}
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	client := p.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("marketplacetest: push to %s: %w", url, err)
	}
	return resp, nil
}

// RotatePushKey makes a new push signing key; the JWKS serves the new and
// the previous key.
func (s *Server) RotatePushKey() error {
	_, err := s.push.ring.rotate()
	return err
}
