package usage

import "time"

// Deadline is when Google must have a window's usage: one hour after the
// window ends (google-apis.md §4.1: "within one hour of the usage being
// generated", read per window as the docs' hourly reporting does), and no
// later than 1 AM US Pacific time on the first day of the next month for
// usage of the month the window starts in, so that it lands on that month's
// invoice.
func Deadline(start, end time.Time) time.Time {
	d := end.Add(time.Hour)
	if c := monthCutoff(start); c.Before(d) {
		d = c
	}
	return d.UTC()
}

// monthCutoff is 1 AM US Pacific time on the first day of the month after
// the Pacific month containing t. It uses the US daylight-saving rule rather
// than the time zone database, which minimal images often lack: 1 AM on a
// first of the month is PDT (UTC-7) from April to November (1 AM on
// 1 November comes before the 2 AM change, and of an ambiguous 1 AM the
// earlier is taken) and PST (UTC-8) from December to March.
func monthCutoff(t time.Time) time.Time {
	// The Pacific month containing t: shift by the larger offset first,
	// then correct near the month boundary.
	pt := t.UTC().Add(-pacificOffset(t))
	y, m, _ := pt.Date()
	next := time.Date(y, m+1, 1, 1, 0, 0, 0, time.UTC)
	return next.Add(pacificOffsetAtFirst(next.Month()))
}

// pacificOffsetAtFirst is how far UTC is ahead of Pacific time at 1 AM on
// the first day of month m.
func pacificOffsetAtFirst(m time.Month) time.Duration {
	if m >= time.April && m <= time.November {
		return 7 * time.Hour
	}
	return 8 * time.Hour
}

// pacificOffset is how far UTC is ahead of US Pacific time at instant t
// (7 h during daylight saving time, 8 h otherwise): DST runs from the second
// Sunday of March, 2 AM PST (10:00 UTC), to the first Sunday of November,
// 2 AM PDT (09:00 UTC).
func pacificOffset(t time.Time) time.Duration {
	t = t.UTC()
	y := t.Year()
	start := nthSunday(y, time.March, 2).Add(10 * time.Hour)
	end := nthSunday(y, time.November, 1).Add(9 * time.Hour)
	if !t.Before(start) && t.Before(end) {
		return 7 * time.Hour
	}
	return 8 * time.Hour
}

func nthSunday(y int, m time.Month, n int) time.Time {
	first := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	offset := (7 - int(first.Weekday())) % 7
	return first.AddDate(0, 0, offset+7*(n-1))
}
