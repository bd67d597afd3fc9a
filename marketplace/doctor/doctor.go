// Package doctor checks a Google Cloud Marketplace SaaS integration's
// configuration against Google's APIs, and says for each problem how to
// fix it. Run it at deploy time, or from a -doctor flag; it changes
// nothing.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/google/uuid"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	servicecontrol "google.golang.org/api/servicecontrol/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// Params is the configuration Run checks: the values, and where the
// application has them the clients, the integration runs with.
//
// Run takes built clients, not options of its own for each API: an
// application can check the very clients it runs with (the Procurement
// client it gives the processor, the Pub/Sub client it receives with), and
// Google's option.ClientOption, given to Run, configure the clients Run
// creates for those left nil here. In production one set of options (the
// credentials) serves every API; a client that needs other options, such as
// an emulator's endpoint, is built by the caller. So Doctor neither wraps
// Google's options in fields of its own nor needs one option field per API.
type Params struct {
	// ProviderID is the partner id (Producer Portal → Technical
	// integration). Empty means Procurement's.
	ProviderID string
	// Procurement is the Procurement API client to check with. nil: Run
	// creates one for ProviderID with Run's options; a client it cannot
	// create fails the Procurement checks (and the others still run).
	Procurement *procurement.Client
	// PubSub is the client the subscription is read with. nil: Run creates
	// one in PubSubProject with Run's options (a client it cannot create
	// fails the subscription check); with no PubSubProject either, the
	// subscription check is skipped.
	PubSub        *pubsub.Client
	PubSubProject string
	// Subscription is the subscription's id (in the Pub/Sub client's
	// project) or full name.
	Subscription string
	// ServiceName is the Service Control service name of the product
	// ("<product>.endpoints.<project>.cloud.goog"); empty skips the check.
	ServiceName string
	// ServiceControl is the Service Control client the service name is
	// checked with. nil: Run creates one with Run's options (a client it
	// cannot create fails the check).
	ServiceControl *servicecontrol.Service
	// SignupAudience is the audience the sign-up JWT is verified against
	// (the product domain); empty skips the check.
	SignupAudience string
}

// Check is the result of one check.
type Check struct {
	Name   string // what was checked
	OK     bool   // it passed, or was skipped (Detail says so)
	Detail string // what was found
	Fix    string // how to fix a failure: the role to grant, where in Producer Portal
}

// Report is what Run found, one check after another.
type Report struct {
	Checks []Check
}

// OK reports whether every check passed.
func (r Report) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// String prints every check, and for each failure what is wrong and how to
// fix it.
func (r Report) String() string {
	var b strings.Builder
	failed := 0
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
			failed++
		}
		fmt.Fprintf(&b, "[%s] %s: %s\n", mark, c.Name, c.Detail)
		if !c.OK && c.Fix != "" {
			fmt.Fprintf(&b, "       fix: %s\n", c.Fix)
		}
	}
	if failed == 0 {
		b.WriteString("all checks passed\n")
	} else {
		fmt.Fprintf(&b, "%d of %d checks failed\n", failed, len(r.Checks))
	}
	return b.String()
}

// Names of the checks (Check.Name).
const (
	CheckEntitlements   = "procurement: read entitlements"
	CheckAccounts       = "procurement: read accounts"
	CheckSubscription   = "pubsub: subscription"
	CheckServiceControl = "service control: service name and permission to report"
	CheckSignupAudience = "sign-up: JWT audience"
)

// TopicProject is the project of Marketplace's notification topics:
// projects/cloudcommerceproc-prod/topics/<provider id>.
const TopicProject = "cloudcommerceproc-prod"

const (
	producerPortal = "Producer Portal (https://console.cloud.google.com/producer-portal)"
	setupGuide     = "https://cloud.google.com/marketplace/docs/partners/integrated-saas/technical-integration-setup"
	// doctorTimeout bounds each check's calls.
	doctorTimeout = 30 * time.Second
)

// Run checks a Marketplace integration's configuration against Google's
// APIs and says, for each problem found, how to fix it: the Procurement API
// can be read for the provider (entitlements.list and accounts.list, one
// item each), the Pub/Sub subscription exists and receives the provider's
// Marketplace topic, the Service Control service name is right and the
// caller may report usage for it (a services.check for a consumer that does
// not exist: any check error means the service answered), and the sign-up
// audience looks like a domain. It changes nothing.
//
// opts configure the clients Run creates, those p leaves nil (credentials,
// endpoint). Every check runs,
// whatever the others found: a client that cannot be created (no
// credentials, say) fails the checks that need it, each saying so, and the
// report lists every problem at once.
func Run(ctx context.Context, p Params, opts ...option.ClientOption) Report {
	if p.ProviderID == "" && p.Procurement != nil {
		p.ProviderID = p.Procurement.ProviderID()
	}
	var r Report
	r.Checks = append(r.Checks, checkProcurement(ctx, p, opts)...)
	r.Checks = append(r.Checks, checkSubscription(ctx, p, opts))
	r.Checks = append(r.Checks, checkServiceControl(ctx, p, opts))
	r.Checks = append(r.Checks, checkAudience(p))
	return r
}

func checkProcurement(ctx context.Context, p Params, opts []option.ClientOption) []Check {
	client := p.Procurement
	if client == nil {
		var err error
		// Two attempts: a diagnosis should not wait out the default backoff.
		client, err = procurement.NewClientWithConfig(ctx, p.ProviderID,
			&procurement.Config{Retry: procurement.RetryPolicy{MaxAttempts: 2}}, opts...)
		if err != nil {
			fix := "set the partner id shown in " + producerPortal + " → Technical integration; the notification topic is projects/" +
				TopicProject + "/topics/<partner id>"
			if !errors.Is(err, procurement.ErrInvalidName) {
				fix = "check the credentials (Application Default Credentials, or the client options given)"
			}
			d := "cannot create a Procurement API client: " + err.Error()
			return []Check{{Name: CheckEntitlements, Detail: d, Fix: fix}, {Name: CheckAccounts, Detail: d, Fix: fix}}
		}
	}
	ents := Check{Name: CheckEntitlements}
	cctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	page, err := client.ListEntitlementsPage(cctx, &procurement.ListEntitlementsParams{PageSize: 1})
	cancel()
	if err == nil {
		ents.OK = true
		ents.Detail = fmt.Sprintf("providers/%s/entitlements answered (%d on the first page of 1)", p.ProviderID, len(page.Entitlements))
	} else {
		ents.Detail, ents.Fix = procurementFailure(p.ProviderID, "commerceprocurement.providerEntitlements.list", err)
	}
	accts := Check{Name: CheckAccounts}
	cctx, cancel = context.WithTimeout(ctx, doctorTimeout)
	apage, err := client.ListAccountsPage(cctx, &procurement.ListAccountsParams{PageSize: 1})
	cancel()
	if err == nil {
		accts.OK = true
		accts.Detail = fmt.Sprintf("providers/%s/accounts answered (%d on the first page of 1)", p.ProviderID, len(apage.Accounts))
	} else {
		accts.Detail, accts.Fix = procurementFailure(p.ProviderID, "commerceprocurement.providerAccounts.list", err)
	}
	return []Check{ents, accts}
}

func procurementFailure(provider, perm string, err error) (detail, fix string) {
	detail = err.Error()
	switch {
	case errors.Is(err, procurement.ErrPermissionDenied), errors.Is(err, procurement.ErrNotFound):
		fix = fmt.Sprintf("check the partner id %q (%s → Technical integration); then make sure the service account "+
			"the integration runs as is the one linked there (it needs %s; Google grants Procurement API access to "+
			"the linked account, ask your Partner Engineer otherwise). See %s", provider, producerPortal, perm, setupGuide)
	case errors.Is(err, procurement.ErrUnauthenticated):
		fix = "the credentials were refused: on Google Cloud run as the linked service account; locally use " +
			"`gcloud auth application-default login` or GOOGLE_APPLICATION_CREDENTIALS"
	default:
		fix = "the Procurement API (cloudcommerceprocurement.googleapis.com) could not be reached or failed; " +
			"check that it is enabled in your project and retry"
	}
	return detail, fix
}

func checkSubscription(ctx context.Context, p Params, opts []option.ClientOption) Check {
	c := Check{Name: CheckSubscription}
	topic := "projects/" + TopicProject + "/topics/" + p.ProviderID
	switch {
	case p.PubSub == nil && p.PubSubProject == "":
		c.OK, c.Detail = true, "skipped: no Pub/Sub client given"
		return c
	case p.Subscription == "":
		c.Detail = "no subscription configured"
		c.Fix = "create a pull subscription on " + topic + " in your project and configure its id"
		return c
	case p.PubSub == nil:
		ps, err := pubsub.NewClient(ctx, p.PubSubProject, opts...)
		if err != nil {
			c.Detail = fmt.Sprintf("cannot create a Pub/Sub client for project %q: %v", p.PubSubProject, err)
			c.Fix = "check the project and the credentials (Application Default Credentials, or the client options given)"
			return c
		}
		defer ps.Close()
		p.PubSub = ps
	}
	name := p.Subscription
	if !strings.HasPrefix(name, "projects/") {
		name = "projects/" + p.PubSub.Project() + "/subscriptions/" + name
	}
	create := fmt.Sprintf("gcloud pubsub subscriptions create %s --topic=%s --project=%s",
		name[strings.LastIndex(name, "/")+1:], topic, projectOf(name))
	cctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	sub, err := p.PubSub.SubscriptionAdminClient.GetSubscription(cctx, &pubsubpb.GetSubscriptionRequest{Subscription: name})
	if err != nil {
		c.Detail = fmt.Sprintf("reading %s: %v", name, err)
		switch status.Code(err) {
		case codes.NotFound:
			c.Detail = name + " does not exist"
			c.Fix = "create it: " + create
		case codes.PermissionDenied:
			c.Fix = "grant the service account roles/pubsub.subscriber on " + name + " (to pull) and roles/pubsub.viewer (for this check)"
		default:
			c.Fix = "check the Pub/Sub project and credentials, then retry"
		}
		return c
	}
	if sub.GetTopic() != topic {
		c.Detail = fmt.Sprintf("%s receives %s, not the Marketplace topic %s", name, sub.GetTopic(), topic)
		c.Fix = "create a subscription on the Marketplace topic of this partner id (" + create +
			"); if the topic does not exist, ask your Partner Engineer or check the partner id in " + producerPortal
		return c
	}
	c.OK = true
	c.Detail = name + " receives " + topic
	if ep := sub.GetPushConfig().GetPushEndpoint(); ep != "" {
		c.Detail += " (push to " + ep + ")"
	}
	return c
}

func projectOf(name string) string {
	rest, _ := strings.CutPrefix(name, "projects/")
	project, _, _ := strings.Cut(rest, "/")
	return project
}

// doctorConsumer is a syntactically valid consumer that is no customer:
// services.check answers it with a check error if the service exists and
// the caller may use it.
const doctorConsumer = "project:gcpmarketplace-doctor-no-such-project"

func checkServiceControl(ctx context.Context, p Params, opts []option.ClientOption) Check {
	c := Check{Name: CheckServiceControl}
	if p.ServiceName == "" {
		c.OK, c.Detail = true, "skipped: no service name given"
		return c
	}
	fixRole := fmt.Sprintf("check the service name %q (%s → your product → Technical integration; usually "+
		"<product>.endpoints.<project>.cloud.goog), and grant the service account roles/servicemanagement.serviceController "+
		"on it: gcloud endpoints services add-iam-policy-binding %s --member=serviceAccount:<email> "+
		"--role=roles/servicemanagement.serviceController", p.ServiceName, producerPortal, p.ServiceName)
	svc := p.ServiceControl
	if svc == nil {
		var err error
		if svc, err = servicecontrol.NewService(ctx, opts...); err != nil {
			c.Detail = "cannot create a Service Control client: " + err.Error()
			c.Fix = "check the credentials (Application Default Credentials, or the client options given)"
			return c
		}
	}
	cctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	resp, err := svc.Services.Check(p.ServiceName, &servicecontrol.CheckRequest{Operation: &servicecontrol.Operation{
		OperationId:   uuid.NewString(),
		OperationName: "gcpmarketplace doctor",
		ConsumerId:    doctorConsumer,
		StartTime:     time.Now().UTC().Format(time.RFC3339Nano),
	}}).Context(cctx).Do()
	if err != nil {
		c.Detail = "services.check: " + err.Error()
		var gerr *googleapi.Error
		switch {
		case errors.As(err, &gerr) && (gerr.Code == http.StatusForbidden || gerr.Code == http.StatusNotFound):
			c.Detail = fmt.Sprintf("services.check on %s refused (HTTP %d): the service name is wrong or the caller "+
				"lacks roles/servicemanagement.serviceController on it", p.ServiceName, gerr.Code)
			c.Fix = fixRole
		case errors.As(err, &gerr) && gerr.Code == http.StatusUnauthorized:
			c.Fix = "the credentials were refused: run as the service account that reports usage"
		default:
			c.Fix = "Service Control (servicecontrol.googleapis.com) could not be reached or failed; check that it is enabled and retry"
		}
		return c
	}
	c.OK = true
	if len(resp.CheckErrors) > 0 {
		c.Detail = fmt.Sprintf("%s answered (%s for a test consumer, as expected)", p.ServiceName, resp.CheckErrors[0].Code)
	} else {
		c.Detail = p.ServiceName + " answered"
	}
	return c
}

func checkAudience(p Params) Check {
	c := Check{Name: CheckSignupAudience}
	a := p.SignupAudience
	switch {
	case a == "":
		c.OK, c.Detail = true, "skipped: no audience given"
	case strings.Contains(a, "://") || strings.ContainsAny(a, "/ ?#"):
		c.Detail = fmt.Sprintf("%q is not a domain: the sign-up JWT's aud is the product's domain, without scheme or path", a)
		c.Fix = "use the product domain shown in " + producerPortal + " → your product → Technical integration (e.g. example.com)"
	default:
		c.OK, c.Detail = true, fmt.Sprintf("%q (sign-up tokens for another audience will be refused)", a)
	}
	return c
}
