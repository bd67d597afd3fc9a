package marketplace

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A message in flight holds its entitlement; a failed one holds it until a
// later message about it succeeds, or for at most failedHoldLimit (the
// redelivery may go to another replica).
func TestUnsettledHolds(t *testing.T) {
	now := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	u := newUnsettled(func() time.Time { return now })
	require.False(t, u.HoldSeal("e"))

	done := u.begin("e")
	require.True(t, u.HoldSeal("e"))
	require.False(t, u.HoldSeal("other"))
	done(true)
	require.False(t, u.HoldSeal("e"))

	u.begin("e")(false)
	require.True(t, u.HoldSeal("e"), "failed: awaits redelivery")
	u.begin("e")(true)
	require.False(t, u.HoldSeal("e"), "the redelivery settled it")

	u.begin("e")(false)
	now = now.Add(failedHoldLimit - time.Second)
	require.True(t, u.HoldSeal("e"))
	now = now.Add(time.Second)
	require.False(t, u.HoldSeal("e"), "the hold of a failed message is bounded")
}
