package marketplace

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

// DoctorParams is the configuration Doctor checks: the values the
// integration runs with.
type DoctorParams struct {
	// ProviderID is the partner id (Producer Portal → Technical
	// integration).
	ProviderID string
	// ProcurementOptions are the Procurement API client options
	// (credentials, endpoint), as passed to procurement.NewClient.
	ProcurementOptions []option.ClientOption
	// PubSubClient is the client the subscription is read with. When it is
	// nil, Doctor creates one in PubSubProject with PubSubOptions (a client
	// it cannot create fails the subscription check, and the other checks
	// still run); with neither, the subscription check is skipped.
	PubSubClient  *pubsub.Client
	PubSubProject string
	PubSubOptions []option.ClientOption
	// Subscription is the subscription's id (in PubSubClient's project) or
	// full name.
	Subscription string
	// ServiceName is the Service Control service name of the product
	// ("<product>.endpoints.<project>.cloud.goog"); empty skips the check.
	ServiceName string
	// ServiceControlOptions are the Service Control client options, as
	// passed to usage.New.
	ServiceControlOptions []option.ClientOption
	// SignupAudience is the audience the sign-up JWT is verified against
	// (the product domain); empty skips the check.
	SignupAudience string
}

// DoctorCheck is the result of one check.
type DoctorCheck struct {
	Name   string // what was checked
	OK     bool   // it passed, or was skipped (Detail says so)
	Detail string // what was found
	Fix    string // how to fix a failure: the role to grant, where in Producer Portal
}

// DoctorReport is what Doctor found, one check after another.
type DoctorReport struct {
	Checks []DoctorCheck
}

// OK reports whether every check passed.
func (r DoctorReport) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// String prints every check, and for each failure what is wrong and how to
// fix it.
func (r DoctorReport) String() string {
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

// Names of the Doctor checks.
const (
	CheckEntitlements   = "procurement: read entitlements"
	CheckAccounts       = "procurement: read accounts"
	CheckSubscription   = "pubsub: subscription"
	CheckServiceControl = "service control: service name and permission to report"
	CheckSignupAudience = "sign-up: JWT audience"
)

// MarketplaceTopicProject is the project of Marketplace's notification
// topics: projects/cloudcommerceproc-prod/topics/<provider id>.
const MarketplaceTopicProject = "cloudcommerceproc-prod"

const (
	producerPortal = "Producer Portal (https://console.cloud.google.com/producer-portal)"
	setupGuide     = "https://cloud.google.com/marketplace/docs/partners/integrated-saas/technical-integration-setup"
	// doctorTimeout bounds each check's calls.
	doctorTimeout = 30 * time.Second
)

// Doctor checks a Marketplace integration's configuration against Google's
// APIs and says, for each problem found, how to fix it: the Procurement API
// can be read for the provider (entitlements.list and accounts.list, one
// item each), the Pub/Sub subscription exists and receives the
// provider's Marketplace topic, the Service Control service name is right
// and the caller may report usage for it (a services.check for a consumer
// that does not exist: any check error means the service answered), and
// the sign-up audience looks like a domain. It changes nothing. Run it at
// deploy time, or from a -doctor flag.
//
// Every check runs, whatever the others found: a client that cannot be
// created (no credentials, say) fails the checks that need it, each saying
// so, and the report lists every problem at once.
func Doctor(ctx context.Context, p DoctorParams) DoctorReport {
	var r DoctorReport
	r.Checks = append(r.Checks, doctorProcurement(ctx, p)...)
	r.Checks = append(r.Checks, doctorSubscription(ctx, p))
	r.Checks = append(r.Checks, doctorServiceControl(ctx, p))
	r.Checks = append(r.Checks, doctorAudience(p))
	return r
}

func doctorProcurement(ctx context.Context, p DoctorParams) []DoctorCheck {
	client, err := procurement.NewClientWithConfig(ctx, p.ProviderID,
		&procurement.Config{Retry: procurement.RetryPolicy{MaxAttempts: 2}}, p.ProcurementOptions...)
	if err != nil {
		fix := "set the partner id shown in " + producerPortal + " → Technical integration; the notification topic is projects/" +
			MarketplaceTopicProject + "/topics/<partner id>"
		if !errors.Is(err, procurement.ErrInvalidName) {
			fix = "check the credentials (Application Default Credentials, or the client options given)"
		}
		d := "cannot create a Procurement API client: " + err.Error()
		return []DoctorCheck{{Name: CheckEntitlements, Detail: d, Fix: fix}, {Name: CheckAccounts, Detail: d, Fix: fix}}
	}
	ents := DoctorCheck{Name: CheckEntitlements}
	cctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	page, err := client.ListEntitlementsPage(cctx, &procurement.ListEntitlementsParams{PageSize: 1})
	cancel()
	if err == nil {
		ents.OK = true
		ents.Detail = fmt.Sprintf("providers/%s/entitlements answered (%d on the first page of 1)", p.ProviderID, len(page.Entitlements))
	} else {
		ents.Detail, ents.Fix = procurementFailure(p.ProviderID, "commerceprocurement.providerEntitlements.list", err)
	}
	accts := DoctorCheck{Name: CheckAccounts}
	cctx, cancel = context.WithTimeout(ctx, doctorTimeout)
	apage, err := client.ListAccountsPage(cctx, &procurement.ListAccountsParams{PageSize: 1})
	cancel()
	if err == nil {
		accts.OK = true
		accts.Detail = fmt.Sprintf("providers/%s/accounts answered (%d on the first page of 1)", p.ProviderID, len(apage.Accounts))
	} else {
		accts.Detail, accts.Fix = procurementFailure(p.ProviderID, "commerceprocurement.providerAccounts.list", err)
	}
	return []DoctorCheck{ents, accts}
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

func doctorSubscription(ctx context.Context, p DoctorParams) DoctorCheck {
	c := DoctorCheck{Name: CheckSubscription}
	topic := "projects/" + MarketplaceTopicProject + "/topics/" + p.ProviderID
	switch {
	case p.PubSubClient == nil && p.PubSubProject == "":
		c.OK, c.Detail = true, "skipped: no Pub/Sub client given"
		return c
	case p.Subscription == "":
		c.Detail = "no subscription configured"
		c.Fix = "create a pull subscription on " + topic + " in your project and configure its id"
		return c
	case p.PubSubClient == nil:
		ps, err := pubsub.NewClient(ctx, p.PubSubProject, p.PubSubOptions...)
		if err != nil {
			c.Detail = fmt.Sprintf("cannot create a Pub/Sub client for project %q: %v", p.PubSubProject, err)
			c.Fix = "check the project and the credentials (Application Default Credentials, or the client options given)"
			return c
		}
		defer ps.Close()
		p.PubSubClient = ps
	}
	name := p.Subscription
	if !strings.HasPrefix(name, "projects/") {
		name = "projects/" + p.PubSubClient.Project() + "/subscriptions/" + name
	}
	create := fmt.Sprintf("gcloud pubsub subscriptions create %s --topic=%s --project=%s",
		name[strings.LastIndex(name, "/")+1:], topic, projectOf(name))
	cctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	sub, err := p.PubSubClient.SubscriptionAdminClient.GetSubscription(cctx, &pubsubpb.GetSubscriptionRequest{Subscription: name})
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

func doctorServiceControl(ctx context.Context, p DoctorParams) DoctorCheck {
	c := DoctorCheck{Name: CheckServiceControl}
	if p.ServiceName == "" {
		c.OK, c.Detail = true, "skipped: no service name given"
		return c
	}
	fixRole := fmt.Sprintf("check the service name %q (%s → your product → Technical integration; usually "+
		"<product>.endpoints.<project>.cloud.goog), and grant the service account roles/servicemanagement.serviceController "+
		"on it: gcloud endpoints services add-iam-policy-binding %s --member=serviceAccount:<email> "+
		"--role=roles/servicemanagement.serviceController", p.ServiceName, producerPortal, p.ServiceName)
	svc, err := servicecontrol.NewService(ctx, p.ServiceControlOptions...)
	if err != nil {
		c.Detail = "cannot create a Service Control client: " + err.Error()
		c.Fix = "check the credentials (Application Default Credentials, or the client options given)"
		return c
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

func doctorAudience(p DoctorParams) DoctorCheck {
	c := DoctorCheck{Name: CheckSignupAudience}
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
