package config_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/commentflow/commentflow/platform/config"
)

type cfg struct {
	Rate    int
	Brokers []string
	Wait    time.Duration
	TLS     bool
	Mode    string
	Pass    string
	URI     string
}

func declare(c *cfg) *config.Set {
	s := config.New("svc")
	s.Int(&c.Rate, "SVC_RATE", 20, "events per second", config.Min(0))
	s.List(&c.Brokers, "KAFKA_BROKERS", "localhost:19092", "brokers")
	s.Duration(&c.Wait, "SVC_WAIT", time.Second, "wait", config.Positive)
	s.Bool(&c.TLS, "SVC_TLS", false, "tls")
	s.Enum(&c.Mode, "SVC_MODE", "zstd", "compression", "none", "zstd")
	s.Secret(&c.Pass, "SVC_PASSWORD", "password")
	s.String(&c.URI, "SVC_URI", "mongodb://localhost:27017", "uri")
	return s
}

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestDefaultsEnvAndFlags(t *testing.T) {
	var c cfg
	if err := declare(&c).Parse(nil, env()); err != nil {
		t.Fatal(err)
	}
	if c.Rate != 20 || c.Brokers[0] != "localhost:19092" || c.Wait != time.Second || c.TLS || c.Mode != "zstd" {
		t.Fatalf("defaults: %+v", c)
	}
	c = cfg{}
	err := declare(&c).Parse([]string{"--svc-rate", "7"}, env("SVC_RATE", "5", "KAFKA_BROKERS", "a:1, b:2", "SVC_TLS", "yes", "SVC_MODE", "NONE"))
	if err != nil {
		t.Fatal(err)
	}
	c2 := cfg{}
	if err := declare(&c2).Parse([]string{"--svc-tls"}, env()); err != nil || !c2.TLS {
		t.Errorf("bare boolean flag: %v, tls=%v", err, c2.TLS)
	}
	if err := declare(&c2).Parse([]string{"--svc-tls=false"}, env("SVC_TLS", "true")); err != nil || c2.TLS {
		t.Errorf("--svc-tls=false over env: %v, tls=%v", err, c2.TLS)
	}
	if c.Rate != 7 {
		t.Errorf("flag must win over env: rate %d", c.Rate)
	}
	if fmt.Sprint(c.Brokers) != "[a:1 b:2]" || !c.TLS || c.Mode != "none" {
		t.Errorf("env: %+v", c)
	}
}

func TestErrorsNameTheVariable(t *testing.T) {
	cases := map[string]struct {
		env  []string
		args []string
		want string
	}{
		"negative":   {env: []string{"SVC_RATE", "-1"}, want: "SVC_RATE (--svc-rate): must be at least 0"},
		"not int":    {env: []string{"SVC_RATE", "fast"}, want: "SVC_RATE"},
		"duration":   {env: []string{"SVC_WAIT", "10"}, want: "SVC_WAIT"},
		"zero dur":   {env: []string{"SVC_WAIT", "0s"}, want: "SVC_WAIT"},
		"bool":       {env: []string{"SVC_TLS", "maybe"}, want: "SVC_TLS"},
		"enum":       {env: []string{"SVC_MODE", "brotli"}, want: "SVC_MODE"},
		"bad flag":   {args: []string{"--svc-rate", "x"}, want: "SVC_RATE"},
		"unknown":    {args: []string{"--nope"}, want: "-nope"},
		"positional": {args: []string{"extra"}, want: `"extra"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var c cfg
			err := declare(&c).Parse(tc.args, env(tc.env...))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
		})
	}
	var c cfg
	var ce *config.Error
	if err := declare(&c).Parse(nil, env("SVC_RATE", "-3")); !errors.As(err, &ce) || ce.Var != "SVC_RATE" {
		t.Fatalf("want *config.Error for SVC_RATE, got %v", err)
	}
}

func TestHelpUsageAndMasking(t *testing.T) {
	var c cfg
	s := declare(&c)
	if err := s.Parse([]string{"--help"}, env()); !errors.Is(err, config.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	var buf bytes.Buffer
	s.Usage(&buf)
	for _, name := range s.Names() {
		if !strings.Contains(buf.String(), name) || !strings.Contains(buf.String(), "--"+config.FlagName(name)) {
			t.Errorf("usage lacks %s", name)
		}
	}
	if !strings.Contains(buf.String(), "localhost:19092") {
		t.Error("usage lacks defaults")
	}

	s = declare(&c)
	if err := s.Parse(nil, env("SVC_PASSWORD", "hunter2", "SVC_URI", "mongodb://app:s3cret@db:27017/x")); err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprint(s.Attrs())
	if strings.Contains(line, "hunter2") || strings.Contains(line, "s3cret") {
		t.Fatalf("secret in startup log: %s", line)
	}
	if !strings.Contains(line, "mongodb://app:*****@db:27017/x") {
		t.Fatalf("masked uri missing: %s", line)
	}
}

func TestMaskPassword(t *testing.T) {
	for in, want := range map[string]string{
		"mongodb://u:pw@h1:27017,h2:27017/db": "mongodb://u:*****@h1:27017,h2:27017/db",
		"http://reg:8081":                     "http://reg:8081",
		"http://user@reg:8081":                "http://user@reg:8081",
		"https://h/path@x":                    "https://h/path@x",
	} {
		if got := config.MaskPassword(in, in); got != want {
			t.Errorf("MaskPassword(%q) = %q, want %q", in, got, want)
		}
	}
	if got := config.MaskPassword("dial mongodb://u:s3cr3t@h failed: s3cr3t", "mongodb://u:s3cr3t@h"); strings.Contains(got, "s3cr3t") {
		t.Errorf("MaskPassword left the password in %q", got)
	}
}
