package host

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"testing"

	hclog "github.com/hashicorp/go-hclog"
)

func TestLineWriter(t *testing.T) {
	var lines []string
	w := &lineWriter{log: func(l string) { lines = append(lines, l) }}
	for _, chunk := range []string{"first li", "ne\r\nsecond\n\nthi", "rd\n", "partial"} {
		if n, err := w.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if want := []string{"first line", "second", "third"}; !slices.Equal(lines, want) {
		t.Errorf("lines = %q, want %q", lines, want)
	}
	w.Write(bytes.Repeat([]byte("x"), maxLine+1))
	if len(lines) != 4 || len(lines[3]) != len("partial")+maxLine+1 {
		t.Errorf("an overlong partial line is not flushed: %d lines", len(lines))
	}
}

func TestHCLogger(t *testing.T) {
	var buf bytes.Buffer
	l := newHCLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})).With("plugin", "residency"))
	if l.GetLevel() != hclog.Info || l.IsDebug() || !l.IsWarn() {
		t.Errorf("level = %s, want info", l.GetLevel())
	}
	l.Named("stdio").With("k", 1).Warn("plugin process exited", "plugin", "/opt/residency")
	l.Debug("dropped")
	got := buf.String()
	for _, want := range []string{"level=WARN", `msg="plugin process exited"`, "plugin=residency", "logger=stdio", "k=1", "executable=/opt/residency"} {
		if !strings.Contains(got, want) {
			t.Errorf("log %q lacks %s", got, want)
		}
	}
	if strings.Contains(got, "dropped") {
		t.Errorf("a debug line got through: %q", got)
	}
}
