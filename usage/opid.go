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
var OperationNamespace = uuid.MustParse("41011756-6b34-584c-85b5-f28b183eecb6")

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
	return uuid.NewSHA1(OperationNamespace, []byte(name)).String()
}
