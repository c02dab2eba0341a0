package cronjob

import (
	"fmt"
	"sort"
	"time"

	// A CronJob's timeZone must resolve on any machine, with or without
	// the system's zoneinfo files.
	_ "time/tzdata"

	"github.com/meridian-fed/meridian/proto/meridian/validation"
)

// Schedule is a parsed five-field cron schedule in a time zone.
type Schedule struct {
	cron *validation.CronSchedule
	loc  *time.Location
}

// ParseSchedule parses a CronJob's schedule — five fields (minute, hour,
// day of month, month, day of week) with ranges, steps, lists and names,
// or one of @yearly, @annually, @monthly, @weekly, @daily, @midnight,
// @hourly — in the IANA time zone tz ("" is the member's local time, as in
// Kubernetes). It uses the same parser as validation, so a schedule that
// validated always parses here.
func ParseSchedule(spec, tz string) (*Schedule, error) {
	c, err := validation.ParseCronSchedule(spec)
	if err != nil {
		return nil, fmt.Errorf("failed to parse schedule %q: %w", spec, err)
	}
	loc := time.Local
	if tz != "" {
		if loc, err = time.LoadLocation(tz); err != nil {
			return nil, fmt.Errorf("failed to load time zone %q: %w", tz, err)
		}
	}
	return &Schedule{cron: c, loc: loc}, nil
}

// Next returns the first scheduled time strictly after t (the zero time if
// the schedule never fires, such as "0 0 30 2 *").
//
// When both day fields are restricted a day matches if either does (cron's
// rule: "0 0 13 * FRI" fires on every 13th and on every Friday); when one
// is "*" the other alone decides.
func (s *Schedule) Next(t time.Time) time.Time {
	n := s.cron.Next(t.In(s.loc))
	if n.IsZero() {
		return n
	}
	return n.In(t.Location())
}

// maxMissedToCount bounds the count of missed start times (only its
// crossing is reported, as Kubernetes does).
const maxMissedToCount = 100

// mostRecent returns the latest scheduled time after earliest and at or
// before now (zero if there is none), and how many scheduled times fell in
// between, counted up to maxMissedToCount+1. It does not walk every missed
// minute: it binary-searches the latest start point whose next time is
// still not after now.
func (s *Schedule) mostRecent(earliest, now time.Time) (time.Time, int) {
	first := s.Next(earliest)
	if first.IsZero() || first.After(now) {
		return time.Time{}, 0
	}
	missed := 1
	for t := s.Next(first); !t.IsZero() && !t.After(now) && missed <= maxMissedToCount; t = s.Next(t) {
		missed++
	}
	if missed == 1 {
		return first, 1
	}
	// Next(first + m minutes) <= now holds for small m and fails for large
	// m; find the largest m for which it holds.
	minutes := int(now.Sub(first) / time.Minute)
	m := sort.Search(minutes+1, func(m int) bool {
		n := s.Next(first.Add(time.Duration(m) * time.Minute))
		return n.IsZero() || n.After(now)
	}) - 1
	if m < 0 {
		return first, missed
	}
	return s.Next(first.Add(time.Duration(m) * time.Minute)), missed
}
