package ledger

import (
	"fmt"
	"time"
)

// Admit is the rule that decides whether a Ledger accepts u for the
// consumer c (as the store has it, in the transaction that adds u), and
// into which bucket. Every store's AddUsage applies it, in this order:
//  1. u.At before a non-zero c.Start: ErrBeforeStart; u.At at or after a
//     non-zero c.End: ErrAfterEnd;
//  2. the bucket is max(u.Bucket, c.Frontier): usage for a bucket already
//     sealed goes to the consumer's first unsealed window; if c.End is
//     non-zero and that bucket is not before it (the final window is
//     already sealed): ErrWindowSealed.
//
// It returns the bucket, in UTC, or an error wrapping one of those three.
// A store that checks the rule in its own query (sqlitestore and pgstore
// do it in SQL, in one statement) calls Admit to explain a refusal, so
// that every store refuses with the same error. ErrUnknownConsumer (no
// consumer u.EntitlementID) is the store's to return: Admit needs c.
func Admit(c ConsumerState, u Usage) (bucket time.Time, err error) {
	switch {
	case !c.Start.IsZero() && u.At.Before(c.Start):
		return time.Time{}, fmt.Errorf("usage for %q at %v: %w", u.EntitlementID, u.At.UTC(), ErrBeforeStart)
	case !c.End.IsZero() && !u.At.Before(c.End):
		return time.Time{}, fmt.Errorf("usage for %q at %v: %w", u.EntitlementID, u.At.UTC(), ErrAfterEnd)
	}
	bucket = u.Bucket.UTC()
	if bucket.Before(c.Frontier) {
		bucket = c.Frontier.UTC()
	}
	if !c.End.IsZero() && !bucket.Before(c.End) {
		return time.Time{}, fmt.Errorf("usage for %q at %v: %w", u.EntitlementID, u.At.UTC(), ErrWindowSealed)
	}
	return bucket, nil
}
