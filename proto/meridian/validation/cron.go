package validation

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// CronSchedule is a parsed standard five-field cron expression
// ("minute hour day-of-month month day-of-week"), as a CronJob's schedule.
// Each field is a bit set: bit n is set when value n matches.
type CronSchedule struct {
	Minute     uint64 // bits 0-59
	Hour       uint64 // bits 0-23
	DayOfMonth uint64 // bits 1-31
	Month      uint64 // bits 1-12
	DayOfWeek  uint64 // bits 0-6, Sunday is 0

	// domAny and dowAny record a day field written as "*" or "?". Cron's
	// rule: when both day fields are restricted a day matches if either
	// does; otherwise both must.
	domAny, dowAny bool
}

// cronField describes one field of a cron expression.
type cronField struct {
	name     string
	min, max int
	names    []string // names[i] stands for min+i ("JAN" is 1)
}

var cronFields = [5]cronField{
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day of month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}},
	{name: "day of week", min: 0, max: 6, names: []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}},
}

// cronDescriptors are the predefined schedules.
var cronDescriptors = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

// ParseCronSchedule parses a standard five-field cron expression: each field
// is "*", a value, a range "a-b", any of those with a step ("*/15", "1-30/5",
// "5/10" meaning 5 to the end by 10), or a comma-separated list of them.
// Months and days of the week may be written as names (JAN-DEC, SUN-SAT, in
// any case); "?" stands for "*" in the day fields. The descriptors @yearly,
// @annually, @monthly, @weekly, @daily, @midnight and @hourly are accepted.
// A time zone prefix (TZ=, CRON_TZ=) is not: a CronJob has spec.timeZone.
func ParseCronSchedule(spec string) (*CronSchedule, error) {
	spec = strings.TrimSpace(spec)
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return nil, fmt.Errorf("cannot use TZ or CRON_TZ in schedule, use the timeZone field instead")
	}
	if strings.HasPrefix(spec, "@") {
		expanded, ok := cronDescriptors[strings.ToLower(spec)]
		if !ok {
			return nil, fmt.Errorf("unsupported descriptor %q (use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)", spec)
		}
		spec = expanded
	}
	parts := strings.Fields(spec)
	if len(parts) != len(cronFields) {
		return nil, fmt.Errorf("expected exactly 5 fields (minute hour day-of-month month day-of-week), found %d", len(parts))
	}
	var bits [5]uint64
	var stars [5]bool
	for i, part := range parts {
		b, star, err := parseCronField(part, cronFields[i], i >= 2)
		if err != nil {
			return nil, err
		}
		bits[i], stars[i] = b, star
	}
	return &CronSchedule{
		Minute: bits[0], Hour: bits[1], DayOfMonth: bits[2], Month: bits[3], DayOfWeek: bits[4],
		domAny: stars[2], dowAny: stars[4],
	}, nil
}

// parseCronField parses one field; star reports a plain "*" (or "?").
func parseCronField(s string, f cronField, questionMark bool) (bits uint64, star bool, err error) {
	for _, item := range strings.Split(s, ",") {
		b, st, err := parseCronItem(item, f, questionMark)
		if err != nil {
			return 0, false, err
		}
		bits |= b
		star = star || st
	}
	return bits, star, nil
}

// parseCronItem parses one element of a field's list.
func parseCronItem(item string, f cronField, questionMark bool) (uint64, bool, error) {
	rng, stepText, hasStep := strings.Cut(item, "/")
	step := 1
	if hasStep {
		n, err := strconv.Atoi(stepText)
		if err != nil || n <= 0 || n > f.max-f.min+1 {
			return 0, false, fmt.Errorf("invalid step %q in %s field %q: must be between 1 and %d", stepText, f.name, item, f.max-f.min+1)
		}
		step = n
	}
	var lo, hi int
	star := false
	switch {
	case rng == "*" || (rng == "?" && questionMark):
		lo, hi, star = f.min, f.max, step == 1
	case strings.Contains(rng, "-"):
		a, b, _ := strings.Cut(rng, "-")
		var err error
		if lo, err = cronValue(a, f, item); err != nil {
			return 0, false, err
		}
		if hi, err = cronValue(b, f, item); err != nil {
			return 0, false, err
		}
		if lo > hi {
			return 0, false, fmt.Errorf("invalid range %q in %s field: the start is after the end", rng, f.name)
		}
	default:
		v, err := cronValue(rng, f, item)
		if err != nil {
			return 0, false, err
		}
		lo, hi = v, v
		if hasStep {
			// "5/10" runs from 5 to the end of the field.
			hi = f.max
		}
	}
	var bits uint64
	for v := lo; v <= hi; v += step {
		bits |= 1 << uint(v)
	}
	return bits, star, nil
}

// cronValue parses a number or a name of a field and checks its range.
func cronValue(s string, f cronField, item string) (int, error) {
	for i, n := range f.names {
		if strings.EqualFold(s, n) {
			return f.min + i, nil
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < f.min || v > f.max {
		allowed := fmt.Sprintf("%d-%d", f.min, f.max)
		if len(f.names) > 0 {
			allowed += fmt.Sprintf(" or %s-%s", f.names[0], f.names[len(f.names)-1])
		}
		return 0, fmt.Errorf("invalid %s %q in %q: must be %s", f.name, s, item, allowed)
	}
	return v, nil
}

// maxCronSearchYears bounds how far Next looks: a schedule that matches no
// day at all ("0 0 30 2 *") has no next time.
const maxCronSearchYears = 5

// Next returns the first time after t, to the minute, that the schedule
// matches, in t's location; the zero time if there is none within five
// years.
func (s *CronSchedule) Next(t time.Time) time.Time {
	loc := t.Location()
	t = t.Add(time.Minute - time.Duration(t.Second())*time.Second - time.Duration(t.Nanosecond()))
	limit := t.Year() + maxCronSearchYears
	// Each loop skips a whole unit that cannot match; after a wrap into the
	// next larger unit the search starts over, as the month (or day) changed.
	for t.Year() <= limit {
		switch {
		case s.Month&(1<<uint(t.Month())) == 0:
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, loc)
		case !s.dayMatches(t):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, loc)
		case s.Hour&(1<<uint(t.Hour())) == 0:
			next := time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, loc)
			if !next.After(t) {
				// A daylight saving change folded the hour back; step past it.
				next = t.Add(time.Hour).Truncate(time.Hour)
			}
			t = next
		case s.Minute&(1<<uint(t.Minute())) == 0:
			t = t.Add(time.Minute)
		default:
			return t
		}
	}
	return time.Time{}
}

func (s *CronSchedule) dayMatches(t time.Time) bool {
	dom := s.DayOfMonth&(1<<uint(t.Day())) != 0
	dow := s.DayOfWeek&(1<<uint(t.Weekday())) != 0
	if s.domAny || s.dowAny {
		return dom && dow
	}
	return dom || dow
}
