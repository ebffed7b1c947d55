package logging_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/commentflow/commentflow/platform/logging"
)

func TestJSONWithLevelAndService(t *testing.T) {
	var buf bytes.Buffer
	log, err := logging.New(&buf, "warn", "producer")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "n", 1)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON line: %q", buf.String())
	}
	if rec["msg"] != "shown" || rec["service"] != "producer" || rec["level"] != "WARN" {
		t.Fatalf("record %v", rec)
	}
	if _, err := logging.New(&buf, "loud", "x"); err == nil {
		t.Fatal("unknown level accepted")
	}
}
