package validation

import (
	"testing"
	"time"
)

func TestParseCronScheduleAccepts(t *testing.T) {
	for _, s := range []string{
		"* * * * *", "*/15 * * * *", "0 0 * * *", "5 4 * * sun", "0 9-17 * * MON-FRI", "0,30 * * * *",
		"0 0 1,15 * *", "0 0 * JAN,jul *", "1-59/2 * * * *", "5/10 * * * *", "0 0 ? * 1", "0 0 31 12 6",
		"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually", "@Daily", "  0  0  *  *  *  ",
	} {
		if _, err := ParseCronSchedule(s); err != nil {
			t.Errorf("ParseCronSchedule(%q): %v", s, err)
		}
	}
}

func TestParseCronScheduleRejects(t *testing.T) {
	for s, want := range map[string]string{
		"":                     "expected exactly 5 fields (minute hour day-of-month month day-of-week), found 0",
		"* * * *":              "expected exactly 5 fields (minute hour day-of-month month day-of-week), found 4",
		"0 0 0 * * *":          "expected exactly 5 fields (minute hour day-of-month month day-of-week), found 6",
		"60 * * * *":           `invalid minute "60" in "60": must be 0-59`,
		"* 24 * * *":           `invalid hour "24" in "24": must be 0-23`,
		"* * 0 * *":            `invalid day of month "0" in "0": must be 1-31`,
		"* * * 13 *":           `invalid month "13" in "13": must be 1-12 or JAN-DEC`,
		"* * * * 7":            `invalid day of week "7" in "7": must be 0-6 or SUN-SAT`,
		"* * * * FUNDAY":       `invalid day of week "FUNDAY" in "FUNDAY": must be 0-6 or SUN-SAT`,
		"*/0 * * * *":          `invalid step "0" in minute field "*/0": must be between 1 and 60`,
		"*/x * * * *":          `invalid step "x" in minute field "*/x": must be between 1 and 60`,
		"30-10 * * * *":        `invalid range "30-10" in minute field: the start is after the end`,
		"1- * * * *":           `invalid minute "" in "1-": must be 0-59`,
		"? * * * *":            `invalid minute "?" in "?": must be 0-59`,
		"1,,2 * * * *":         `invalid minute "" in "": must be 0-59`,
		"@every 5m":            `unsupported descriptor "@every 5m" (use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)`,
		"TZ=UTC * * * * *":     "cannot use TZ or CRON_TZ in schedule, use the timeZone field instead",
		"-1 * * * *":           `invalid minute "" in "-1": must be 0-59`,
		"99999999999 * * * *":  `invalid minute "99999999999" in "99999999999": must be 0-59`,
		"* * * JAN-FOO *":      `invalid month "FOO" in "JAN-FOO": must be 1-12 or JAN-DEC`,
		"0 0 * * MON-SUN":      `invalid range "MON-SUN" in day of week field: the start is after the end`,
		"0 0 1 1 * extra more": "expected exactly 5 fields (minute hour day-of-month month day-of-week), found 7",
	} {
		_, err := ParseCronSchedule(s)
		if err == nil || err.Error() != want {
			t.Errorf("ParseCronSchedule(%q) = %v, want %q", s, err, want)
		}
	}
}

func TestCronScheduleNext(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse("2006-01-02 15:04 Mon", s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		schedule, from, want string
	}{
		{"*/15 * * * *", "2024-05-01 10:07 Wed", "2024-05-01 10:15 Wed"},
		{"*/15 * * * *", "2024-05-01 10:15 Wed", "2024-05-01 10:30 Wed"},
		{"0 9-17 * * MON-FRI", "2024-05-03 17:30 Fri", "2024-05-06 09:00 Mon"},
		{"@monthly", "2024-01-31 12:00 Wed", "2024-02-01 00:00 Thu"},
		{"0 0 29 2 *", "2023-03-01 00:00 Wed", "2024-02-29 00:00 Thu"},
		{"@yearly", "2024-12-31 23:59 Tue", "2025-01-01 00:00 Wed"},
		// Both day fields restricted: either matches (the 13th, or a Friday).
		{"0 0 13 * FRI", "2024-05-01 00:00 Wed", "2024-05-03 00:00 Fri"},
		// Day of week "*": only the day of month counts.
		{"0 0 13 * *", "2024-05-01 00:00 Wed", "2024-05-13 00:00 Mon"},
		// A stepped star is a restriction, as in other cron implementations.
		{"0 0 1 * */7", "2024-05-02 00:00 Thu", "2024-05-05 00:00 Sun"},
	}
	for _, tt := range tests {
		s, err := ParseCronSchedule(tt.schedule)
		if err != nil {
			t.Fatal(err)
		}
		from := at(tt.from)
		if got := s.Next(from).Format("2006-01-02 15:04 Mon"); got != tt.want {
			t.Errorf("%q.Next(%s) = %s, want %s", tt.schedule, tt.from, got, tt.want)
		}
	}
	never, _ := ParseCronSchedule("0 0 30 2 *")
	if got := never.Next(at("2024-01-01 00:00 Mon")); !got.IsZero() {
		t.Errorf("Feb 30 schedule has a next time: %s", got)
	}
}

func TestCronScheduleNextAcrossDaylightSaving(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	s, err := ParseCronSchedule("30 2 * * *")
	if err != nil {
		t.Fatal(err)
	}
	// 2024-03-31 02:30 does not exist in Paris; the next run is a day later.
	from := time.Date(2024, 3, 30, 3, 0, 0, 0, loc)
	got := s.Next(from)
	if got.IsZero() || !got.After(from) || got.Minute() != 30 {
		t.Errorf("Next = %s", got)
	}
	// Every hour, including the repeated one when clocks go back.
	hourly, _ := ParseCronSchedule("0 * * * *")
	t0 := time.Date(2024, 10, 27, 1, 30, 0, 0, loc)
	for i := 0; i < 5; i++ {
		next := hourly.Next(t0)
		if !next.After(t0) || next.Sub(t0) > time.Hour {
			t.Fatalf("hourly after %s = %s", t0, next)
		}
		t0 = next
	}
}
