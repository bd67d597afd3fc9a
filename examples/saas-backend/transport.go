package main

import (
	"context"
	"fmt"
	"log/slog"

	"cloud.google.com/go/pubsub/v2"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/verify"
	"google.golang.org/api/option"
)

// How Marketplace notifications reach the processor (-transport):
//
//   - pull, the default: the processor pulls them from a Pub/Sub pull
//     subscription on projects/cloudcommerceproc-prod/topics/<partner id>.
//     The backend needs no public endpoint, and receives while it runs.
//   - push: a Pub/Sub push subscription POSTs each message to /pubsub/push
//     with a Google-signed OIDC token, verified by verify.PushVerifier
//     before the body is read; Processor.PushHandler answers 2xx only after
//     the message's effects are committed (anything else makes Pub/Sub
//     retry). This suits Cloud Run and other request-driven platforms.
//
// Everything else (sign-up, approvals, usage, operators) is the same.
const (
	transportPull = "pull"
	transportPush = "push"
)

// pushPath is the push subscription's endpoint.
const pushPath = "/pubsub/push"

// subscribe opens the pull subscription (-transport=pull) and returns what
// closes its client; with push it does nothing.
func (b *backend) subscribe(ctx context.Context, pubsubOpts []option.ClientOption) (closeClient func(), err error) {
	if b.cfg.Transport != transportPull {
		return func() {}, nil
	}
	ps, err := pubsub.NewClient(ctx, b.cfg.Project, pubsubOpts...)
	if err != nil {
		return nil, fmt.Errorf("pubsub client for project %q: %w%s", b.cfg.Project, err, credentialsHint)
	}
	b.sub = ps.Subscriber(b.cfg.Subscription)
	return func() { _ = ps.Close() }, nil
}

// verifyPushes makes the verifier of the push subscription's tokens
// (-transport=push), once the backend knows its URL: with -emulator, the
// audience is this backend's push endpoint. With pull it does nothing.
func (b *backend) verifyPushes() error {
	if b.cfg.Transport != transportPush {
		return nil
	}
	verifyCfg := verify.Config{
		Runtime:            b.runtime(),
		PushServiceAccount: b.cfg.PushAccount,
	}
	switch {
	case b.emu != nil:
		verifyCfg.PushJWKSURL = b.emu.PushJWKSURL()
	case b.cfg.ProcurementEndpoint != "": // an external emulator
		verifyCfg.PushJWKSURL = b.cfg.PushJWKSURL
	}
	if b.cfg.PushAudience == "" { // -emulator: the emulator pushes to this process
		b.cfg.PushAudience = b.url + pushPath
	}
	var err error
	b.pushVerifier, err = verify.NewPushVerifier(b.cfg.PushAudience, &verifyCfg)
	if err != nil {
		return fmt.Errorf("push verifier: %w", err)
	}
	return nil
}

// emulatorPushSubscription is the push subscription the emulator delivers to.
const emulatorPushSubscription = "projects/vendor-project/subscriptions/marketplace-push"

// startPushing makes the emulator deliver to the push endpoint as Pub/Sub
// would (-emulator -transport=push).
func (b *backend) startPushing(ctx context.Context) error {
	if b.emu == nil || b.pushVerifier == nil {
		return nil
	}
	if err := b.emu.CreateSubscription(ctx, emulatorPushSubscription, b.cfg.PushAudience); err != nil {
		return fmt.Errorf("emulator push subscription: %w", err)
	}
	return nil
}

// receive runs the processor until ctx is done or it is closed: Run
// catches up with what happened while the backend was down (Reconcile),
// then, with pull, receives from the subscription; with push, messages
// arrive by HTTP and Run prunes processed event ids past their retention.
func (b *backend) receive(ctx context.Context) error {
	if err := b.proc.Run(ctx, b.sub); err != nil {
		if b.sub == nil {
			return err
		}
		return fmt.Errorf("pull subscription %s: %w (does it exist, and does the service account have roles/pubsub.subscriber on it? Google's guide grants Pub/Sub Editor)", b.sub, err)
	}
	return nil
}

// source says where notifications come from, for the log.
func (b *backend) source() slog.Attr {
	if b.sub != nil {
		return slog.String("subscription", b.sub.String())
	}
	return slog.String("push_audience", b.cfg.PushAudience)
}
