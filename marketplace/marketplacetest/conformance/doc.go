// Package conformance holds the behaviours of Google's Partner Procurement
// API (cloudcommerceprocurement/v1) that the SDK depends on, written once as
// tests against any endpoint: in CI against the emulator
// (marketplace/marketplacetest), and against Google itself so that a vendor
// can check the emulator against the real API and report a difference.
//
// It imports no package of the SDK, nor the emulator: a behaviour is checked
// through the generated Google clients only, so the same test means the same
// thing on both sides.
//
// # Running against Google
//
// Only read-only parts run against Google: reading one entitlement and one
// account of a sandbox listing, listing and paging, and the errors of reads
// that must fail. Set, then run go test:
//
//	GCPMARKETPLACE_CONFORMANCE_PROVIDER=<provider id>          # providers/<id>
//	GCPMARKETPLACE_CONFORMANCE_SERVICE=<service name>          # e.g. example.endpoints.<project>.cloud.goog
//	GCPMARKETPLACE_CONFORMANCE_ENTITLEMENT=<entitlement id>    # any entitlement of the listing
//	GCPMARKETPLACE_CONFORMANCE_ACCOUNT=<account id>            # the account owning it
//	gcloud auth application-default login                      # or GOOGLE_APPLICATION_CREDENTIALS
//	go test -run TestGoogle -v ./marketplace/marketplacetest/conformance/
//
// CheckAfterCancel (services.check of a cancelled entitlement's
// usageReportingId after its cancellation: a check bills nothing) also runs
// against Google when a cancelled consumer of the listing is named:
//
//	GCPMARKETPLACE_CONFORMANCE_CANCELLED_CONSUMER=<usageReportingId>  # e.g. project_number:123
//	GCPMARKETPLACE_CONFORMANCE_CANCELLED_AT=<RFC 3339 time>            # its cancellation (updateTime)
//
// The other Service Control lifecycle behaviours (reports before approval,
// after the end, after a rejection or the account's deletion, late reports
// of usage before the end) call services.report, which bills, so they run
// against the emulator only (Target.ReportMetric, Target.Lifecycle).
//
// The credentials are Application Default Credentials of an identity with
// roles/commerceprocurement.viewer (or admin) on the provider. Without the
// variables TestGoogle skips and names them. A failure there that passes on
// the emulator is a departure of the emulator: please report it with the
// test name and the response body.
package conformance
