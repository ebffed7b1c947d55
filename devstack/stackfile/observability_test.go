package stackfile

import (
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"

	"github.com/commentflow/commentflow/devstack/observability"
)

// observabilityStack is `docker compose --profile observability`.
var observabilityStack = stackSpec{files: []string{"docker-compose.yml"}, profiles: []string{"observability"}}

// clusterObservabilityStack is the cluster with the profile.
var clusterObservabilityStack = stackSpec{files: clusterStack.files, profiles: observabilityStack.profiles}

var observabilityServices = []string{"prometheus", "grafana"}

func TestObservabilityProfile(t *testing.T) {
	base, _ := loadStack(t, baseStack)
	for _, name := range observabilityServices {
		if slices.Contains(base.ServiceNames(), name) {
			t.Errorf("%s runs without --profile observability", name)
		}
	}
	p, warnings := loadStack(t, observabilityStack)
	if warnings != "" {
		t.Errorf("compose-go warned:\n%s", warnings)
	}
	want := slices.Concat(base.ServiceNames(), observabilityServices)
	slices.Sort(want)
	got := p.ServiceNames()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("services with --profile observability = %v, want %v", got, want)
	}
	for _, name := range observabilityServices {
		s := stackService(t, observabilityStack, name)
		if !slices.Equal(s.Profiles, []string{"observability"}) {
			t.Errorf("%s: profiles = %v, want [observability]", name, s.Profiles)
		}
		repo, tag := splitImage(s.Image)
		if !pinnedTag.MatchString(tag) {
			t.Errorf("%s: image %q is not pinned to an exact release", name, s.Image)
		}
		if want := map[string]string{"prometheus": "prom/prometheus", "grafana": "grafana/grafana"}[name]; repo != want {
			t.Errorf("%s: image %q, want the official %s", name, s.Image, want)
		}
		if s.Restart != types.RestartPolicyUnlessStopped {
			t.Errorf("%s: restart = %q, want unless-stopped", name, s.Restart)
		}
		if hc := s.HealthCheck; hc == nil || hc.Disable || len(hc.Test) == 0 {
			t.Errorf("%s: no healthcheck", name)
		}
	}
	if d := stackService(t, observabilityStack, "grafana").DependsOn["prometheus"]; d.Condition != types.ServiceConditionHealthy {
		t.Errorf("grafana: depends_on prometheus = %+v, want service_healthy", d)
	}
}

// promConfig is the part of prometheus.yml this test reads.
type promConfig struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
		DNSSDConfigs []struct {
			Names []string `yaml:"names"`
			Type  string   `yaml:"type"`
			Port  int      `yaml:"port"`
		} `yaml:"dns_sd_configs"`
	} `yaml:"scrape_configs"`
}

func TestPrometheusScrapesEveryService(t *testing.T) {
	prom := stackService(t, observabilityStack, "prometheus")
	cfgTarget, ro := bindMount(t, prom, observability.PrometheusConfigFile)
	if !ro {
		t.Error("prometheus: prometheus.yml is not mounted read-only")
	}
	if !slices.Contains(prom.Command, "--config.file="+cfgTarget) {
		t.Errorf("prometheus: command %q does not load the mounted %s", prom.Command, cfgTarget)
	}
	var cfg promConfig
	if err := yaml.Unmarshal([]byte(readRepoFile(t, observability.PrometheusConfigFile)), &cfg); err != nil {
		t.Fatal(err)
	}
	// Rule files are relative to the configuration file; each is mounted there.
	for _, rf := range cfg.RuleFiles {
		want := path.Join(path.Dir(cfgTarget), rf)
		if target, _ := bindMount(t, prom, path.Join(path.Dir(observability.PrometheusConfigFile), rf)); target != want {
			t.Errorf("prometheus: rule file %s is mounted at %s, the configuration reads %s", rf, target, want)
		}
	}

	listenPort := func(name string) string {
		s := stackService(t, observabilityStack, name)
		addr, ok := env(s, "HTTP_ADDR")
		if !ok {
			t.Fatalf("%s: HTTP_ADDR is not set", name)
		}
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("%s: HTTP_ADDR %q: %v", name, addr, err)
		}
		return p
	}
	jobs := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		jobs[sc.JobName] = true
		switch sc.JobName {
		case "producer", "gateway":
			if len(sc.StaticConfigs) != 1 || !slices.Equal(sc.StaticConfigs[0].Targets, []string{sc.JobName + ":" + listenPort(sc.JobName)}) {
				t.Errorf("job %s: static targets %+v, want [%s:%s]", sc.JobName, sc.StaticConfigs, sc.JobName, listenPort(sc.JobName))
			}
		case "consumer":
			// Every replica, found through Docker's DNS: no container names.
			if len(sc.StaticConfigs) != 0 || len(sc.DNSSDConfigs) != 1 {
				t.Fatalf("job consumer: want one dns_sd_configs entry and no static targets, got %+v", sc)
			}
			d := sc.DNSSDConfigs[0]
			if !slices.Equal(d.Names, []string{"consumer"}) || d.Type != "A" || strconv.Itoa(d.Port) != listenPort("consumer") {
				t.Errorf("job consumer: dns_sd_configs %+v, want names [consumer], type A, port %s", d, listenPort("consumer"))
			}
		case "redpanda":
			// Every broker's Admin API, in the single-broker stack and in
			// the cluster (compose.cluster.yml with the profile): redpanda
			// as a static target (a stopped one is up == 0), the others
			// through Docker's DNS, so that the single-broker stack gets no
			// target for the brokers it does not have.
			if sc.MetricsPath != "/public_metrics" || len(sc.StaticConfigs) != 1 ||
				!slices.Equal(sc.StaticConfigs[0].Targets, []string{"redpanda:" + adminPort}) {
				t.Errorf("job redpanda: %+v, want the static target redpanda:%s at /public_metrics (the Admin API)", sc, adminPort)
			}
			scraped := []string{"redpanda"}
			for _, d := range sc.DNSSDConfigs {
				if d.Type != "A" || strconv.Itoa(d.Port) != adminPort {
					t.Errorf("job redpanda: dns_sd_configs %+v, want type A, port %s", d, adminPort)
				}
				scraped = append(scraped, d.Names...)
			}
			for _, spec := range []stackSpec{observabilityStack, clusterObservabilityStack} {
				p, _ := loadStack(t, spec)
				for _, name := range p.ServiceNames() {
					s := stackService(t, spec, name)
					if strings.Contains(s.Image, "redpandadata/redpanda:") && s.Entrypoint == nil && !slices.Contains(scraped, name) {
						t.Errorf("%s: job redpanda does not scrape broker %s (it scrapes %q)", spec, name, scraped)
					}
				}
			}
		default:
			t.Errorf("unexpected scrape job %s", sc.JobName)
		}
	}
	for _, name := range slices.Concat(goServices, []string{"redpanda"}) {
		if !jobs[name] {
			t.Errorf("prometheus.yml does not scrape %s", name)
		}
	}
}

func TestGrafanaProvisioning(t *testing.T) {
	g := stackService(t, observabilityStack, "grafana")
	prov, _ := bindMount(t, g, "observability/grafana/provisioning")
	if prov != "/etc/grafana/provisioning" {
		t.Errorf("grafana: provisioning mounted at %s, want /etc/grafana/provisioning", prov)
	}
	dashDir, _ := bindMount(t, g, path.Dir(observability.DashboardFile))

	var ds struct {
		Datasources []struct {
			UID, Type, URL string
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal([]byte(readRepoFile(t, "observability/grafana/provisioning/datasources/prometheus.yml")), &ds); err != nil {
		t.Fatal(err)
	}
	promPorts := publishedPorts(stackService(t, observabilityStack, "prometheus"))
	if len(ds.Datasources) != 1 || ds.Datasources[0].UID != observability.DatasourceUID || ds.Datasources[0].Type != "prometheus" ||
		ds.Datasources[0].URL != "http://prometheus:9090" || promPorts["9090"] == "" {
		t.Errorf("datasources = %+v, want one prometheus datasource uid %s at http://prometheus:9090", ds.Datasources, observability.DatasourceUID)
	}

	var dp struct {
		Providers []struct {
			Type    string
			Options struct{ Path string }
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal([]byte(readRepoFile(t, "observability/grafana/provisioning/dashboards/commentflow.yml")), &dp); err != nil {
		t.Fatal(err)
	}
	if len(dp.Providers) != 1 || dp.Providers[0].Type != "file" || dp.Providers[0].Options.Path != dashDir {
		t.Errorf("dashboard providers = %+v, want one file provider reading %s", dp.Providers, dashDir)
	}
	if v, _ := env(g, "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"); v != path.Join(dashDir, path.Base(observability.DashboardFile)) {
		t.Errorf("grafana: home dashboard %q is not the provisioned %s", v, path.Base(observability.DashboardFile))
	}
}
