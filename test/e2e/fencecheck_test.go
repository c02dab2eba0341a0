package e2e

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The singleton's pods keep their own records: one line per event, appended
// (O_APPEND, one write per line, well under PIPE_BUF) to a file every copy
// shares:
//
//	start <id> <epoch> <unix-nanos>
//	beat  <id> <epoch> <unix-nanos>     every 100 ms
//	stop  <id> <epoch> <unix-nanos>     on SIGTERM, then exit
//
// id is "<pod IP>/<start nanos>": the IP says which member ran it. A copy killed
// without a stop record (SIGKILL) lived at most until its last record plus
// one beat interval plus slack: beatBound.

// singletonScript is the container command of the recording singleton.
func singletonScript(file string) string {
	return fmt.Sprintf(`f=%q
e=${MERIDIAN_FENCING_EPOCH:-0}
id="$POD_IP/$(date +%%s%%N)"
echo "start $id $e $(date +%%s%%N)" >> "$f"
trap 'echo "stop $id $e $(date +%%s%%N)" >> "$f"; exit 0' TERM
while true; do echo "beat $id $e $(date +%%s%%N)" >> "$f"; sleep 0.1; done
`, file)
}

// beatBound is how long after its last record a copy that left no stop
// record may still have been alive: a beat interval, with generous slack
// for a loaded machine.
const beatBound = 300 * time.Millisecond

// copyLife is one copy of the singleton as its records show it.
type copyLife struct {
	id      string
	epoch   int64
	start   time.Time
	end     time.Time // the stop record, or the last record + beatBound
	stopped bool      // a stop record was written
	records int
}

func (c copyLife) member() string { ip, _, _ := strings.Cut(c.id, "/"); return ip }

func (c copyLife) String() string {
	how := "stop record"
	if !c.stopped {
		how = "killed: last record + " + beatBound.String()
	}
	return fmt.Sprintf("%s epoch %d [%s, %s] (%s)", c.id, c.epoch, c.start.Format("15:04:05.000"), c.end.Format("15:04:05.000"), how)
}

// readLives parses a record file into the copies it describes, by start.
// A copy whose start record is missing is an error.
func readLives(path string) ([]copyLife, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	byID := map[string]*copyLife{}
	var prev time.Time // the time of the line before: lines are appended in order
	s := bufio.NewScanner(f)
	for n := 1; s.Scan(); n++ {
		fields := strings.Fields(s.Text())
		if len(fields) == 3 {
			// No time: the pod's `date` was killed with its process group
			// while the shell wrote the line. A beat or stop without a time
			// says nothing (a missing stop counts as a kill); a start is
			// dated no later than the line before it.
			if fields[0] != "start" {
				continue
			}
			fields = append(fields, strconv.FormatInt(prev.UnixNano(), 10))
		}
		if len(fields) != 4 {
			return nil, fmt.Errorf("%s:%d: malformed record %q", path, n, s.Text())
		}
		epoch, err1 := strconv.ParseInt(fields[2], 10, 64)
		nanos, err2 := strconv.ParseInt(fields[3], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s:%d: malformed record %q", path, n, s.Text())
		}
		at := time.Unix(0, nanos)
		prev = at
		c := byID[fields[1]]
		if fields[0] == "start" {
			if c != nil {
				return nil, fmt.Errorf("%s:%d: %s started twice", path, n, fields[1])
			}
			c = &copyLife{id: fields[1], epoch: epoch, start: at, end: at}
			byID[c.id] = c
		}
		if c == nil {
			return nil, fmt.Errorf("%s:%d: a %s record of %s before its start", path, n, fields[0], fields[1])
		}
		c.records++
		if at.After(c.end) {
			c.end = at
		}
		if fields[0] == "stop" {
			c.stopped = true
		}
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	out := make([]copyLife, 0, len(byID))
	for _, c := range byID {
		if !c.stopped {
			c.end = c.end.Add(beatBound)
		}
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	return out, nil
}

// checkLives proves the records show no split brain: no two copies were
// alive at once, and a copy that starts on another member than the copy
// before it runs with a higher fencing epoch (epochs never go down).
// A copy still running is alive until now.
func checkLives(lives []copyLife, now time.Time) error {
	var errs []string
	for i := 1; i < len(lives); i++ {
		prev, cur := lives[i-1], lives[i]
		end := prev.end
		if !prev.stopped && i == len(lives)-1 && end.After(now) {
			end = now
		}
		if !cur.start.After(end) {
			errs = append(errs, fmt.Sprintf("overlap: %v started before %v ended (by %s)", cur, prev, end.Sub(cur.start)))
		}
		switch {
		case cur.epoch < prev.epoch:
			errs = append(errs, fmt.Sprintf("epoch went down: %v after %v", cur, prev))
		case cur.member() != prev.member() && cur.epoch == prev.epoch:
			errs = append(errs, fmt.Sprintf("moved without a higher epoch: %v after %v", cur, prev))
		}
	}
	// Copies that overlap anything earlier, not only their predecessor.
	for i := range lives {
		for j := i + 2; j < len(lives); j++ {
			if !lives[j].start.After(lives[i].end) {
				errs = append(errs, fmt.Sprintf("overlap: %v started before %v ended", lives[j], lives[i]))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("split brain:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}

// TestFenceChecker checks the checker on records written by hand.
func TestFenceChecker(t *testing.T) {
	base := time.Unix(1_800_000_000, 0)
	at := func(ms int) string {
		return strconv.FormatInt(base.Add(time.Duration(ms)*time.Millisecond).UnixNano(), 10)
	}
	write := func(lines ...string) string {
		p := t.TempDir() + "/records"
		if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name  string
		lines []string
		ok    bool
	}{
		{"stop then start elsewhere with a higher epoch", []string{
			"start 127.71.0.2/10 0 " + at(0), "beat 127.71.0.2/10 0 " + at(100), "stop 127.71.0.2/10 0 " + at(150),
			"start 127.72.0.2/11 1 " + at(400), "beat 127.72.0.2/11 1 " + at(500)}, true},
		{"overlap", []string{
			"start 127.71.0.2/10 0 " + at(0), "beat 127.71.0.2/10 0 " + at(1000),
			"start 127.72.0.2/11 1 " + at(500)}, false},
		{"killed: the last beat bounds it", []string{
			"start 127.71.0.2/10 0 " + at(0), "beat 127.71.0.2/10 0 " + at(100),
			"start 127.72.0.2/11 1 " + at(200)}, false},
		{"killed long before", []string{
			"start 127.71.0.2/10 0 " + at(0), "beat 127.71.0.2/10 0 " + at(100),
			"start 127.72.0.2/11 1 " + at(1000)}, true},
		{"same epoch elsewhere", []string{
			"start 127.71.0.2/10 1 " + at(0), "stop 127.71.0.2/10 1 " + at(100),
			"start 127.72.0.2/11 1 " + at(1000)}, false},
		{"a stop without a time counts as a kill", []string{
			"start 127.71.0.2/10 0 " + at(0), "beat 127.71.0.2/10 0 " + at(100), "stop 127.71.0.2/10 0",
			"start 127.72.0.2/11 1 " + at(250)}, false},
		{"a beat without a time is ignored", []string{
			"start 127.71.0.2/10 0 " + at(0), "beat 127.71.0.2/10 0", "stop 127.71.0.2/10 0 " + at(100),
			"start 127.72.0.2/11 1 " + at(250)}, true},
		{"restart in place keeps the epoch", []string{
			"start 127.71.0.2/10 1 " + at(0), "stop 127.71.0.2/10 1 " + at(100),
			"start 127.71.0.2/12 1 " + at(1000)}, true},
	}
	for _, c := range cases {
		lives, err := readLives(write(c.lines...))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := checkLives(lives, base.Add(time.Hour)); (err == nil) != c.ok {
			t.Errorf("%s: check = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
