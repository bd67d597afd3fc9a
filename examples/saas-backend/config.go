package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/signup"
)

// config is everything the backend needs to know, from flags or, when a flag
// is not given, the environment variable named in its usage text.
type config struct {
	ProviderID   string   // partner id: Producer Portal → Technical integration
	Transport    string   // how notifications arrive: "pull" (the default) or "push" (transport.go)
	Project      string   // pull: the vendor's Google Cloud project (holds the subscription)
	Subscription string   // pull: subscription on projects/cloudcommerceproc-prod/topics/<provider>
	PushAudience string   // push: aud of the subscription's OIDC token (default: the push endpoint's URL)
	PushAccount  string   // push: service account the push subscription authenticates as
	ServiceName  string   // Service Control service name, "<product>.endpoints.<project>.cloud.goog"
	Audiences    []string // sign-up JWT aud: the product domain (default: ServiceName)
	DatabaseURL  string   // sqlite file path (default) or postgres:// URL
	PGSchema     string   // PostgreSQL schema of the store's tables
	Listen       string   // HTTP listen address
	Metrics      []string // usage metric ids declared for the product
	Approval     string   // "auto", "manual" or "plan-changes" (purchases auto, plan changes manual)
	Plans        []string // plans the app provisions; empty: any
	OpsToken     string   // bearer token for /ops/ endpoints; empty disables them
	SessionKeys  string   // base64 HMAC keys of the sign-up session cookie, comma-separated, signing key first

	Emulator bool // run against an in-process Marketplace emulator
	Doctor   bool // check the configuration against Google's APIs and exit

	// DatabaseGiven says -database was on the command line. Without it,
	// -emulator uses a temporary database, never $DATABASE_URL's.
	DatabaseGiven bool

	// Endpoints of an external emulator (examples/emulator prints them);
	// empty in production.
	ProcurementEndpoint    string
	ServiceControlEndpoint string
	SignupCertsURL         string
	PushJWKSURL            string // -transport=push: where push-token keys are served
}

// Environment variable names.
const (
	envProvider       = "MARKETPLACE_PROVIDER_ID"
	envTransport      = "MARKETPLACE_TRANSPORT"
	envProject        = "GOOGLE_CLOUD_PROJECT"
	envSubscription   = "MARKETPLACE_SUBSCRIPTION"
	envPushAudience   = "MARKETPLACE_PUSH_AUDIENCE"
	envPushAccount    = "MARKETPLACE_PUSH_SERVICE_ACCOUNT"
	envService        = "MARKETPLACE_SERVICE_NAME"
	envDomain         = "MARKETPLACE_PRODUCT_DOMAIN"
	envDatabase       = "DATABASE_URL"
	envSchema         = "DATABASE_SCHEMA"
	envPort           = "PORT"
	envMetrics        = "MARKETPLACE_USAGE_METRICS"
	envApproval       = "MARKETPLACE_APPROVAL"
	envPlans          = "MARKETPLACE_PLANS"
	envOpsToken       = "MARKETPLACE_OPS_TOKEN"
	envSessionKey     = "MARKETPLACE_SIGNUP_SESSION_KEY"
	envProcEndpoint   = "MARKETPLACE_PROCUREMENT_ENDPOINT"
	envSCEndpoint     = "MARKETPLACE_SERVICECONTROL_ENDPOINT"
	envSignupCertsURL = "MARKETPLACE_SIGNUP_CERTS_URL"
	envPushJWKSURL    = "MARKETPLACE_PUSH_JWKS_URL"
)

// Values of -approval.
const (
	approvalAuto        = "auto"
	approvalManual      = "manual"
	approvalPlanChanges = "plan-changes"
)

// parseConfig reads flags (args) over the environment (getenv).
func parseConfig(args []string, getenv func(string) string, out io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("saas-backend", flag.ContinueOnError)
	fs.SetOutput(out)
	listenDefault := "127.0.0.1:8080"
	if p := getenv(envPort); p != "" {
		listenDefault = ":" + p // Cloud Run, App Engine and friends set PORT
	}
	dbDefault := getenv(envDatabase)
	if dbDefault == "" {
		dbDefault = "marketplace.db"
	}
	schemaDefault := getenv(envSchema)
	if schemaDefault == "" {
		schemaDefault = "gcpmarketplace"
	}
	approvalDefault := getenv(envApproval)
	if approvalDefault == "" {
		approvalDefault = approvalAuto
	}
	transportDefault := getenv(envTransport)
	if transportDefault == "" {
		transportDefault = transportPull
	}
	metricsDefault := getenv(envMetrics)
	if metricsDefault == "" {
		metricsDefault = "requests"
	}
	var domains, metrics, plans string
	fs.StringVar(&c.ProviderID, "provider", getenv(envProvider), "partner (provider) id from Producer Portal ($"+envProvider+")")
	fs.StringVar(&c.Transport, "transport", transportDefault, "how Marketplace notifications arrive: pull (from a pull subscription) or push (POSTed to /pubsub/push by a push subscription) ($"+envTransport+")")
	fs.StringVar(&c.Project, "project", getenv(envProject), "pull: your Google Cloud project that holds the subscription ($"+envProject+")")
	fs.StringVar(&c.Subscription, "subscription", getenv(envSubscription), "pull: subscription on the Marketplace topic, id or full name ($"+envSubscription+")")
	fs.StringVar(&c.PushAudience, "push-audience", getenv(envPushAudience), "push: audience of the push subscription's OIDC token: its setting, by default the push endpoint URL https://<host>/pubsub/push ($"+envPushAudience+")")
	fs.StringVar(&c.PushAccount, "push-service-account", getenv(envPushAccount), "push: service account email the push subscription authenticates as ($"+envPushAccount+")")
	fs.StringVar(&c.ServiceName, "service", getenv(envService), "Service Control service name of the product ($"+envService+")")
	fs.StringVar(&domains, "domain", getenv(envDomain), "product domain(s) the sign-up JWT is issued for, comma-separated; default the service name ($"+envDomain+")")
	fs.StringVar(&c.DatabaseURL, "database", dbDefault, "SQLite file path, or a postgres:// URL for PostgreSQL ($"+envDatabase+"; with -emulator only this flag counts, and the default is a temporary database deleted at exit)")
	fs.StringVar(&c.PGSchema, "pg-schema", schemaDefault, "PostgreSQL schema for the store's tables ($"+envSchema+")")
	fs.StringVar(&c.Listen, "listen", listenDefault, "HTTP listen address (default :$"+envPort+" when set)")
	fs.StringVar(&metrics, "metrics", metricsDefault, "usage metric ids of the product, comma-separated ($"+envMetrics+")")
	fs.StringVar(&c.Approval, "approval", approvalDefault, "approval of new purchases and plan changes: auto, manual, or plan-changes (purchases approved, plan changes queued for an operator) ($"+envApproval+")")
	fs.StringVar(&plans, "plans", getenv(envPlans), "plans the app provisions, comma-separated; empty means any. An activation or plan change to another plan fails permanently (a poison message in /ops/poison, to redrive once the plan is added) ($"+envPlans+")")
	fs.StringVar(&c.OpsToken, "ops-token", getenv(envOpsToken), "bearer token required by the /ops/ endpoints; empty disables them ($"+envOpsToken+")")
	fs.StringVar(&c.SessionKeys, "session-key", getenv(envSessionKey), "key(s) signing the sign-up session cookie: base64 of 32+ random bytes (openssl rand -base64 32), the same on every replica; comma-separated to rotate, signing key first; -emulator makes one ($"+envSessionKey+")")
	fs.BoolVar(&c.Emulator, "emulator", false, "run end to end against an in-process Marketplace emulator (no Google account needed)")
	fs.BoolVar(&c.Doctor, "doctor", false, "check the configuration against Google's APIs (Procurement, Pub/Sub subscription, Service Control), print what is wrong and how to fix it, and exit; non-zero on failure")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	fs.Visit(func(f *flag.Flag) { c.DatabaseGiven = c.DatabaseGiven || f.Name == "database" })
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c.Audiences = splitList(domains)
	c.Metrics = splitList(metrics)
	c.Plans = splitList(plans)
	c.ProcurementEndpoint = getenv(envProcEndpoint)
	c.ServiceControlEndpoint = getenv(envSCEndpoint)
	c.SignupCertsURL = getenv(envSignupCertsURL)
	c.PushJWKSURL = getenv(envPushJWKSURL)
	if c.Transport == transportPush {
		// Not used: -doctor then skips the subscription check.
		c.Project, c.Subscription = "", ""
	}
	return c, nil
}

// validate reports everything missing at once, each with where to set it
// and where to find the value.
func (c *config) validate() error {
	var missing []string
	need := func(v, what string) {
		if v == "" {
			missing = append(missing, what)
		}
	}
	if !c.Emulator {
		need(c.ProviderID, "partner id: -provider or $"+envProvider+" (Producer Portal → Technical integration; the Pub/Sub topic is projects/cloudcommerceproc-prod/topics/<partner id>)")
		if c.Transport == transportPush {
			need(c.PushAudience, "push audience: -push-audience or $"+envPushAudience+" (the audience of your push subscription on projects/cloudcommerceproc-prod/topics/<partner id>; by default its endpoint URL, https://<host>/pubsub/push)")
			need(c.PushAccount, "push service account: -push-service-account or $"+envPushAccount+" (the service account your push subscription's OIDC token is issued for; it needs roles/iam.serviceAccountTokenCreator granted to the Pub/Sub service agent)")
		} else {
			need(c.Project, "project: -project or $"+envProject+" (your project that holds the Pub/Sub subscription)")
			need(c.Subscription, "subscription: -subscription or $"+envSubscription+" (a pull subscription you created on projects/cloudcommerceproc-prod/topics/<partner id>)")
		}
		need(c.ServiceName, "service name: -service or $"+envService+" (Producer Portal → your product → Technical integration, e.g. <product>.endpoints.<project>.cloud.goog)")
		need(c.SessionKeys, "sign-up session key: -session-key or $"+envSessionKey+" (base64 of 32+ random bytes: openssl rand -base64 32; the same on every replica)")
	}
	if len(c.Metrics) == 0 {
		missing = append(missing, "usage metrics: -metrics or $"+envMetrics+" (the metric ids of your pricing model)")
	}
	var errs []error
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("missing configuration:\n  - %s", strings.Join(missing, "\n  - ")))
	}
	if c.SessionKeys != "" {
		if _, err := signup.ParseKeys(c.SessionKeys); err != nil {
			errs = append(errs, fmt.Errorf("-session-key (or $%s): %w", envSessionKey, err))
		}
	}
	if c.Transport != transportPull && c.Transport != transportPush {
		errs = append(errs, fmt.Errorf("-transport (or $%s) must be pull or push, not %q", envTransport, c.Transport))
	}
	if c.Approval != approvalAuto && c.Approval != approvalManual && c.Approval != approvalPlanChanges {
		errs = append(errs, fmt.Errorf("-approval (or $%s) must be auto, manual or plan-changes, not %q", envApproval, c.Approval))
	}
	if (c.ProcurementEndpoint != "") != (c.ServiceControlEndpoint != "") || (c.ProcurementEndpoint != "" && c.SignupCertsURL == "") {
		errs = append(errs, fmt.Errorf("an external emulator needs all of $%s, $%s and $%s (examples/emulator prints them)",
			envProcEndpoint, envSCEndpoint, envSignupCertsURL))
	}
	if c.ProcurementEndpoint != "" && c.Transport == transportPush && c.PushJWKSURL == "" {
		errs = append(errs, fmt.Errorf("an external emulator with -transport=push also needs $%s (examples/emulator prints it)", envPushJWKSURL))
	}
	if c.Emulator && c.ProcurementEndpoint != "" {
		errs = append(errs, fmt.Errorf("-emulator starts its own emulator: unset $%s to use it, or drop -emulator to use the external one", envProcEndpoint))
	}
	return errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
