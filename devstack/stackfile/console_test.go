package stackfile

import (
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// consoleConfig is the part of the Redpanda Console v3 configuration the
// stack sets. In v3, schemaRegistry is a top-level block; v2 had it under
// kafka, a key v3 refuses (Console then does not start). Decoding with
// KnownFields mirrors that strictness for the keys this struct knows.
type consoleConfig struct {
	Kafka struct {
		Brokers        []string       `yaml:"brokers"`
		SchemaRegistry map[string]any `yaml:"schemaRegistry"`
	} `yaml:"kafka"`
	SchemaRegistry struct {
		Enabled bool     `yaml:"enabled"`
		URLs    []string `yaml:"urls"`
	} `yaml:"schemaRegistry"`
	Redpanda struct {
		AdminAPI struct {
			Enabled bool     `yaml:"enabled"`
			URLs    []string `yaml:"urls"`
		} `yaml:"adminApi"`
	} `yaml:"redpanda"`
}

func TestConsoleConfig(t *testing.T) {
	console := service(t, "console")
	_, tag := splitImage(console.Image)
	if !strings.HasPrefix(tag, "v3.") {
		t.Fatalf("console image %q: this configuration uses the Console v3 schema", console.Image)
	}

	target, ro := bindMount(t, console, "redpanda/console-config.yml")
	if !ro {
		t.Error("console: console-config.yml is not mounted read-only")
	}
	if v, _ := env(console, "CONFIG_FILEPATH"); v != target {
		t.Errorf("console: CONFIG_FILEPATH = %q, want the mounted file %q", v, target)
	}

	var cfg consoleConfig
	dec := yaml.NewDecoder(strings.NewReader(readRepoFile(t, "redpanda/console-config.yml")))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("redpanda/console-config.yml: %v", err)
	}
	if cfg.Kafka.SchemaRegistry != nil {
		t.Error("console-config.yml: kafka.schemaRegistry is the v2 location; v3 reads the top-level schemaRegistry")
	}

	// The addresses are the broker's internal listeners on the compose network.
	rp := service(t, "redpanda")
	flags := commandFlags(rp.Command)
	broker := listeners(t, "advertise-kafka-addr", flags["advertise-kafka-addr"])["internal"]
	registry := "http://" + rp.Name + ":" + port(t, listeners(t, "schema-registry-addr", flags["schema-registry-addr"])["internal"])
	admin := "http://" + rp.Name + ":9644"
	if !slices.Equal(cfg.Kafka.Brokers, []string{broker}) {
		t.Errorf("console kafka.brokers = %q, want [%s]", cfg.Kafka.Brokers, broker)
	}
	if !cfg.SchemaRegistry.Enabled || !slices.Equal(cfg.SchemaRegistry.URLs, []string{registry}) {
		t.Errorf("console schemaRegistry = %+v, want enabled with [%s]", cfg.SchemaRegistry, registry)
	}
	if !cfg.Redpanda.AdminAPI.Enabled || !slices.Equal(cfg.Redpanda.AdminAPI.URLs, []string{admin}) {
		t.Errorf("console redpanda.adminApi = %+v, want enabled with [%s]", cfg.Redpanda.AdminAPI, admin)
	}
}
