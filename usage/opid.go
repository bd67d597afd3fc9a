package usage

import (
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
)

// OperationNamespace is the UUIDv5 namespace of operation ids: the SHA-1
// name-based UUID of "https://github.com/gcpmarketplace/gcpmarketplace/usage"
// in the URL namespace. It is part of the ids already sent to Google: never
// change it.
const OperationNamespace = "41011756-6b34-584c-85b5-f28b183eecb6"

// operationNamespace is OperationNamespace parsed.
var operationNamespace = uuid.MustParse(OperationNamespace)

// OperationID returns the operation id of a window: the UUIDv5, in
// OperationNamespace, of the name
//
//	"usage/v1" NUL entitlementID NUL start (RFC 3339, UTC, nanoseconds) NUL
//	metric names sorted and joined by "," NUL canonical user labels
//
// (NUL is the byte 0). A window is sealed once, so the id never changes;
// being derived from content rather than random, it is also the same if the
// ledger is restored from a backup and the window sealed again, which is what
// lets Google deduplicate a resend.
func OperationID(entitlementID string, start time.Time, metrics []string, labels string) string {
	ms := append([]string(nil), metrics...)
	sort.Strings(ms)
	name := strings.Join([]string{"usage/v1", entitlementID, start.UTC().Format(time.RFC3339Nano), strings.Join(ms, ","), labels}, "\x00")
	return uuid.NewSHA1(operationNamespace, []byte(name)).String()
}

// afterEndOperationID is the ledger id of a window of usage recorded at or
// after its consumer's End: such a window is Rejected and never sent, so
// its id need not be stable, but it must never be the id a billable window
// gets. If End is later cleared (a reverted cancellation), a window with
// the same start, metrics and labels is sealed and sent under
// OperationID; sharing that id, it would be taken for the rejected one and
// its usage lost. The seal time keeps two such windows apart too.
func afterEndOperationID(entitlementID string, start time.Time, metrics []string, labels string, sealedAt time.Time) string {
	ms := append([]string(nil), metrics...)
	sort.Strings(ms)
	name := strings.Join([]string{"usage/v1/after-end", entitlementID, start.UTC().Format(time.RFC3339Nano),
		strings.Join(ms, ","), labels, sealedAt.UTC().Format(time.RFC3339Nano)}, "\x00")
	return uuid.NewSHA1(operationNamespace, []byte(name)).String()
}
