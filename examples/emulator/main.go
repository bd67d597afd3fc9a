// Command emulator runs the offline Google Cloud Marketplace emulator
// (package marketplacetest) as a standalone process, for integration tests
// of SaaS backends written in any language.
//
// It serves, on local ports:
//
//   - the Partner Procurement API (cloudcommerceprocurement/v1) and Service
//     Control (servicecontrol/v1) over HTTP;
//   - the sign-up JWT certificate endpoints and the push-token JWKS;
//   - a JSON control API under /control/ to play the customer and Google;
//   - a Pub/Sub emulator (pstest, gRPC) carrying the Marketplace topic.
//
// Usage:
//
//	go run ./examples/emulator [-http 127.0.0.1:8090] [-pubsub 127.0.0.1:8085]
//	    [-provider acme-provider] [-service NAME] [-start RFC3339] [-seed N]
//
// It prints the endpoints and the environment to set, and stops cleanly on
// SIGINT or SIGTERM. See README.md for a curl walk-through.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/examples/internal/cmdmain"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

func main() {
	cmdmain.Run("emulator", func(ctx context.Context, args []string, out io.Writer) error {
		return run(ctx, args, out, nil)
	})
}

// run starts the emulator with the command-line args, prints where it
// listens to out, calls ready (if not nil) once it serves, and blocks until
// ctx is done; then it shuts the emulator down.
func run(ctx context.Context, args []string, out io.Writer, ready func(*marketplacetest.Server)) error {
	fs := flag.NewFlagSet("emulator", flag.ContinueOnError)
	fs.SetOutput(out)
	httpAddr := fs.String("http", "127.0.0.1:8090", "listen address of the HTTP server (Procurement, Service Control, keys, control API)")
	pubsubAddr := fs.String("pubsub", "127.0.0.1:8085", "listen address of the Pub/Sub emulator (gRPC)")
	provider := fs.String("provider", "acme-provider", "partner (provider) id; also the topic id")
	service := fs.String("service", marketplacetest.DefaultServiceName, "Service Control service name (metrics <service>/requests and <service>/storage_gib)")
	start := fs.String("start", "", "initial time of the emulator clock, RFC 3339 (default 2026-01-05T09:00:00Z)")
	seed := fs.Int64("seed", 1, "seed for injected randomness (duplicate deliveries, reordering, faults)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	opts := []marketplacetest.Option{
		marketplacetest.WithHTTPAddr(*httpAddr),
		marketplacetest.WithPubSubAddr(*pubsubAddr),
		marketplacetest.WithProviderID(*provider),
		marketplacetest.WithService(*service, "requests", "storage_gib"),
		marketplacetest.WithSeed(*seed),
	}
	if *start != "" {
		t, err := time.Parse(time.RFC3339, *start)
		if err != nil {
			return fmt.Errorf("-start: %w", err)
		}
		opts = append(opts, marketplacetest.WithStartTime(t))
	}
	s := marketplacetest.New(nil, opts...)
	printEndpoints(out, s)
	if ready != nil {
		ready(s)
	}
	<-ctx.Done()
	fmt.Fprintln(out, "\nshutting down")
	return s.Close()
}

func printEndpoints(out io.Writer, s *marketplacetest.Server) {
	base := s.URL()
	var b strings.Builder
	fmt.Fprintf(&b, "Cloud Marketplace emulator for provider %q\n\n", s.ProviderID())
	fmt.Fprintf(&b, "  Procurement API:     %s/v1/providers/%s/...\n", base, s.ProviderID())
	fmt.Fprintf(&b, "  Service Control:     %s/v1/services/%s:report\n", base, s.ServiceName())
	fmt.Fprintf(&b, "  Control API:         %s/control/...\n", base)
	fmt.Fprintf(&b, "  Sign-up certs:       %s\n", s.CertsURL())
	fmt.Fprintf(&b, "  Sign-up JWKS:        %s\n", s.SignupJWKSURL())
	fmt.Fprintf(&b, "  Push JWKS:           %s\n", s.PushJWKSURL())
	fmt.Fprintf(&b, "  Agent statement certs: %s\n", s.StatementCertsURL())
	fmt.Fprintf(&b, "  Pub/Sub (gRPC):      %s\n", s.PubSubAddr())
	fmt.Fprintf(&b, "  Topic:               %s\n", s.Topic())
	fmt.Fprintf(&b, "  Pull subscription:   %s\n", s.Subscription())
	fmt.Fprintf(&b, "\nEnvironment for the code under test:\n\n")
	fmt.Fprintf(&b, "  export PUBSUB_EMULATOR_HOST=%s\n", s.PubSubAddr())
	fmt.Fprintf(&b, "  export MARKETPLACE_PROCUREMENT_ENDPOINT=%s/\n", base)
	fmt.Fprintf(&b, "  export MARKETPLACE_SERVICECONTROL_ENDPOINT=%s/\n", base)
	fmt.Fprintf(&b, "  export MARKETPLACE_SIGNUP_CERTS_URL=%s\n", s.CertsURL())
	fmt.Fprintf(&b, "  export MARKETPLACE_PUSH_JWKS_URL=%s\n", s.PushJWKSURL())
	fmt.Fprintf(&b, "\nGo clients: option.WithEndpoint(%q) and any bearer token, e.g. %q\n", base+"/", "Authorization: Bearer "+marketplacetest.AccessToken)
	fmt.Fprintf(&b, "Sign-up tokens keep iss %s;\nverify them with the keys from the certs URL above.\n", marketplacetest.SignupIssuer)
	fmt.Fprintf(&b, "\nPress Ctrl-C to stop.\n")
	_, _ = io.WriteString(out, b.String())
}
