package gossip

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
)

func TestMetaEncoding(t *testing.T) {
	m := Meta{
		Role: RoleMember, Region: "region-a", Datacenter: "dc-a2", Cluster: "prod-a2",
		Addresses: map[string]string{"sync": "10.1.2.3:7701", "api": "10.1.2.3:7700"},
		Version:   "v1.4.2",
	}
	b, err := encodeMeta(m, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("typical member meta: %d bytes: %s", len(b), b)
	if len(b) > 200 {
		t.Errorf("typical meta is %d bytes, want compact (<= 200 of %d)", len(b), memberlist.MetaMaxSize)
	}
	// Deterministic: the same meta always gives the same bytes (memberlist
	// treats any byte change as an update).
	for range 20 {
		again, _ := encodeMeta(m.clone(), false)
		if !bytes.Equal(again, b) {
			t.Fatalf("encoding not deterministic: %s vs %s", again, b)
		}
	}
	got, leaving, err := decodeMeta(b)
	if err != nil || leaving || !got.equal(m) {
		t.Errorf("round trip: %+v leaving=%v err=%v", got, leaving, err)
	}
	lb, _ := encodeMeta(m, true)
	if _, leaving, _ := decodeMeta(lb); !leaving {
		t.Error("leaving flag lost")
	}

	// A newer node's extra fields are ignored.
	newer := []byte(`{"f":2,"r":"hub","rg":"region-b","dc":"dc-b1","zone":"z1"}`)
	if got, _, err := decodeMeta(newer); err != nil || got.Role != RoleHub || got.Region != "region-b" {
		t.Errorf("newer meta: %+v %v", got, err)
	}
	for _, bad := range [][]byte{nil, []byte("not json"), []byte(`{"r":"hub"}`)} {
		if _, _, err := decodeMeta(bad); err == nil {
			t.Errorf("decodeMeta(%q) succeeded", bad)
		}
	}
}

func TestSubscriberDropsOldest(t *testing.T) {
	s := &subscriber{ch: make(chan Event, 3)}
	for i := range 10 {
		s.deliver(Event{Member: Member{Name: string(rune('a' + i))}})
	}
	var names []string
	missed := 0
	for len(s.ch) > 0 {
		ev := <-s.ch
		names = append(names, ev.Member.Name)
		missed += ev.Missed
	}
	if got := strings.Join(names, ""); got != "hij" {
		t.Errorf("kept %q, want the newest three %q", got, "hij")
	}
	if missed != 7 {
		t.Errorf("events report %d missed, want 7", missed)
	}
	// Once read, delivery resumes with no loss to report.
	s.deliver(Event{Member: Member{Name: "k"}})
	if ev := <-s.ch; ev.Missed != 0 {
		t.Errorf("Missed = %d after catching up", ev.Missed)
	}
}

// recordingHandler keeps slog records for inspection.
type recordingHandler struct{ records []slog.Record }

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.records = append(h.records, r)
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func TestMemberlistLogsGoToSlogAtDebug(t *testing.T) {
	h := &recordingHandler{}
	l := newMemberlistLogger(slog.New(h))
	l.Printf("[WARN] memberlist: Refuting a suspect message (from: %s)", "hub")
	l.Printf("no level at all")

	if len(h.records) != 2 {
		t.Fatalf("got %d records, want 2", len(h.records))
	}
	r := h.records[0]
	if r.Level != slog.LevelDebug || r.Message != "memberlist: Refuting a suspect message (from: hub)" {
		t.Errorf("record %v %q", r.Level, r.Message)
	}
	var level string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "memberlist_level" {
			level = a.Value.String()
		}
		return true
	})
	if level != "WARN" {
		t.Errorf("memberlist_level = %q, want WARN", level)
	}
	if h.records[1].Message != "memberlist: no level at all" {
		t.Errorf("unprefixed line: %q", h.records[1].Message)
	}
	// At the default info level, memberlist is silent.
	var buf bytes.Buffer
	quiet := newMemberlistLogger(slog.New(slog.NewTextHandler(&buf, nil)))
	quiet.Printf("[ERR] memberlist: Failed fallback TCP ping")
	if buf.Len() != 0 {
		t.Errorf("logged at info level: %s", buf.String())
	}
}
