package cronjob

import (
	"strings"
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestScheduleNext(t *testing.T) {
	tests := []struct {
		name, spec, tz, from, want string
	}{
		{"step", "*/15 * * * *", "", "2026-02-01 10:07", "2026-02-01 10:15"},
		{"strictly after", "0 * * * *", "", "2026-02-01 10:00", "2026-02-01 11:00"},
		{"next day", "30 2 * * *", "", "2026-02-01 03:00", "2026-02-02 02:30"},
		{"next month", "0 0 1 * *", "", "2026-01-15 00:00", "2026-02-01 00:00"},
		{"list and range", "5,10-12 * * * *", "", "2026-02-01 10:06", "2026-02-01 10:10"},
		{"range with step", "10-30/10 8 * * *", "", "2026-02-01 08:11", "2026-02-01 08:20"},
		{"value with step", "50/5 * * * *", "", "2026-02-01 10:56", "2026-02-01 11:50"},
		{"weekday names", "0 9 * * MON-FRI", "", "2026-03-07 12:00", "2026-03-09 09:00"},
		{"month names, any case", "0 12 1 jan,JUL *", "", "2026-02-01 00:00", "2026-07-01 12:00"},
		{"sunday is 0", "0 0 * * 0", "", "2026-02-02 00:00", "2026-02-08 00:00"},
		// Both day fields restricted: either may match (cron's OR rule).
		{"dom or dow: friday first", "0 0 13 * FRI", "", "2026-02-01 00:00", "2026-02-06 00:00"},
		{"dom or dow: the 12th, a thursday", "0 0 12 * FRI", "", "2026-02-07 00:00", "2026-02-12 00:00"},
		{"dom or dow: stepped dom is restricted", "0 0 */10 * MON", "", "2026-02-01 00:00", "2026-02-02 00:00"},
		// One day field is "*": the other alone decides (AND with "*").
		{"dom only", "0 0 13 * *", "", "2026-02-01 00:00", "2026-02-13 00:00"},
		{"dow only", "0 0 * * FRI", "", "2026-02-01 00:00", "2026-02-06 00:00"},
		{"question mark is any", "0 0 13 * ?", "", "2026-02-01 00:00", "2026-02-13 00:00"},
		{"@hourly", "@hourly", "", "2026-02-01 10:30", "2026-02-01 11:00"},
		{"@daily", "@daily", "", "2026-02-01 10:30", "2026-02-02 00:00"},
		{"@midnight", "@midnight", "", "2026-02-01 10:30", "2026-02-02 00:00"},
		{"@weekly", "@weekly", "", "2026-02-02 10:30", "2026-02-08 00:00"},
		{"@monthly", "@monthly", "", "2026-02-02 10:30", "2026-03-01 00:00"},
		{"@yearly", "@yearly", "", "2026-02-02 10:30", "2027-01-01 00:00"},
		{"@annually", "@ANNUALLY", "", "2026-02-02 10:30", "2027-01-01 00:00"},
		{"leap day", "0 0 29 2 *", "", "2026-03-01 00:00", "2028-02-29 00:00"},
		{"never", "0 0 30 2 *", "", "2026-01-01 00:00", ""},
		// 09:00 in New York is 14:00 UTC in winter, 13:00 in summer.
		{"time zone, winter", "0 9 * * *", "America/New_York", "2026-02-01 00:00", "2026-02-01 14:00"},
		{"time zone, summer", "0 9 * * *", "America/New_York", "2026-07-01 00:00", "2026-07-01 13:00"},
		{"time zone, ahead of UTC", "0 9 * * *", "Asia/Tokyo", "2026-02-01 00:30", "2026-02-02 00:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tz := tt.tz
			if tz == "" {
				tz = "UTC"
			}
			s, err := ParseSchedule(tt.spec, tz)
			if err != nil {
				t.Fatalf("ParseSchedule(%q, %q): %v", tt.spec, tz, err)
			}
			got := s.Next(at(tt.from))
			if tt.want == "" {
				if !got.IsZero() {
					t.Fatalf("Next = %v, want none", got)
				}
				return
			}
			if want := at(tt.want); !got.Equal(want) {
				t.Fatalf("Next(%s) = %v, want %v", tt.from, got.UTC(), want)
			}
			if got.Location() != time.UTC {
				t.Fatalf("Next returned a time in %v, want the caller's location", got.Location())
			}
		})
	}
}

func TestParseScheduleErrors(t *testing.T) {
	tests := []struct{ spec, tz, want string }{
		{"61 * * * *", "", "minute"},
		{"* 24 * * *", "", "hour"},
		{"* * 0 * *", "", "day of month"},
		{"* * * 13 *", "", "month"},
		{"* * * * 7", "", "day of week"},
		{"* * *", "", "5 fields"},
		{"*/0 * * * *", "", "step"},
		{"5-1 * * * *", "", "range"},
		{"@every 5m", "", "descriptor"},
		{"TZ=UTC * * * * *", "", "timeZone"},
		{"* * * * *", "Mars/Olympus_Mons", "time zone"},
	}
	for _, tt := range tests {
		_, err := ParseSchedule(tt.spec, tt.tz)
		if err == nil {
			t.Errorf("ParseSchedule(%q, %q) succeeded, want an error", tt.spec, tt.tz)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseSchedule(%q, %q) = %v, want it to mention %q", tt.spec, tt.tz, err, tt.want)
		}
	}
}

func TestScheduleMostRecent(t *testing.T) {
	tests := []struct {
		name, spec, earliest, now, want string
		missed                          int
	}{
		{"none yet", "*/5 * * * *", "2026-02-01 10:00", "2026-02-01 10:04", "", 0},
		{"exactly now", "*/5 * * * *", "2026-02-01 10:00", "2026-02-01 10:05", "2026-02-01 10:05", 1},
		{"several missed", "*/5 * * * *", "2026-02-01 10:00", "2026-02-01 10:37", "2026-02-01 10:35", 7},
		{"irregular", "0 0 1,15 * *", "2026-01-01 00:00", "2026-04-20 00:00", "2026-04-15 00:00", 7},
		{"a year of minutes", "* * * * *", "2026-01-01 00:00", "2027-01-01 00:30", "2027-01-01 00:30", maxMissedToCount + 1},
		{"dom or dow", "0 0 13 * FRI", "2026-02-01 00:00", "2026-02-13 12:00", "2026-02-13 00:00", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSchedule(tt.spec, "UTC")
			if err != nil {
				t.Fatal(err)
			}
			got, missed := s.mostRecent(at(tt.earliest), at(tt.now))
			switch {
			case tt.want == "" && !got.IsZero():
				t.Fatalf("mostRecent = %v, want none", got)
			case tt.want != "" && !got.Equal(at(tt.want)):
				t.Fatalf("mostRecent = %v, want %s", got, tt.want)
			case missed != tt.missed:
				t.Fatalf("missed = %d, want %d", missed, tt.missed)
			}
		})
	}
}
