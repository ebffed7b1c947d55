package stackfile

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/commentflow/commentflow/schemas"
)

func TestComposeFileLoadsAndValidates(t *testing.T) {
	p, warnings := loadStack(t, baseStack)
	if p.Name != "commentflow" {
		t.Errorf("project name = %q, want commentflow (volumes and networks are named after it)", p.Name)
	}
	if warnings != "" {
		t.Errorf("compose-go warned while loading docker-compose.yml:\n%s", warnings)
	}
}

func TestComposeHasEveryService(t *testing.T) {
	want := slices.Concat(infraServices, goServices)
	slices.Sort(want)
	got := composeProject(t).ServiceNames()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("services = %v, want %v", got, want)
	}
}

func TestConsumerRunsThreeReplicasThatCanScale(t *testing.T) {
	c := service(t, "consumer")
	if c.Deploy == nil || c.Deploy.Replicas == nil {
		t.Fatal("consumer: deploy.replicas is not set")
	}
	if got := *c.Deploy.Replicas; got != schemas.Partitions {
		t.Errorf("consumer: deploy.replicas = %d, want %d (one replica per partition of %s)", got, schemas.Partitions, schemas.Topic)
	}
	if c.ContainerName != "" {
		t.Errorf("consumer: container_name %q prevents more than one replica", c.ContainerName)
	}
	if len(c.Ports) != 0 {
		t.Errorf("consumer: host ports %+v collide between replicas", c.Ports)
	}
	// Static membership: each replica's id is its hostname (the container
	// id), which survives a restart of that container, so a crashed replica
	// that compose restarts takes its partitions back without a rebalance.
	if id, _ := env(c, "CONSUMER_INSTANCE_ID"); id != "@hostname" {
		t.Errorf("consumer: CONSUMER_INSTANCE_ID = %q, want @hostname (a per-replica id that survives a restart)", id)
	}
	if c.Hostname != "" {
		t.Errorf("consumer: hostname %q is the same for every replica, so their instance ids would clash", c.Hostname)
	}
	for _, name := range composeProject(t).ServiceNames() {
		if s := service(t, name); s.ContainerName != "" {
			t.Errorf("service %s: container_name %q (fixed names break `docker compose up --scale` and parallel projects)", name, s.ContainerName)
		}
	}
}

func TestHealthchecks(t *testing.T) {
	tests := []struct {
		service string
		// want is a healthcheck test; for CMD-SHELL tests, substrings of the shell command.
		want []string
	}{
		{"redpanda", []string{"CMD-SHELL", "rpk cluster health", "Healthy:.+true"}},
		{"mongo", []string{"CMD", "mongosh", "--quiet", "--norc", "--eval", "db.adminCommand('ping').ok"}},
		{"producer", []string{"CMD", "/app", "healthcheck"}},
		{"consumer", []string{"CMD", "/app", "healthcheck"}},
		{"gateway", []string{"CMD", "/app", "healthcheck"}},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			hc := service(t, tt.service).HealthCheck
			if hc == nil || hc.Disable || len(hc.Test) == 0 {
				t.Fatalf("%s: no healthcheck", tt.service)
			}
			if tt.want[0] == "CMD-SHELL" {
				if hc.Test[0] != "CMD-SHELL" || len(hc.Test) != 2 {
					t.Fatalf("%s: healthcheck test = %q, want [CMD-SHELL <command>]", tt.service, hc.Test)
				}
				for _, sub := range tt.want[1:] {
					if !strings.Contains(hc.Test[1], sub) {
						t.Errorf("%s: healthcheck %q does not contain %q", tt.service, hc.Test[1], sub)
					}
				}
			} else if !slices.Equal([]string(hc.Test), tt.want) {
				t.Errorf("%s: healthcheck test = %q, want %q", tt.service, hc.Test, tt.want)
			}
			if hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil {
				t.Errorf("%s: healthcheck needs interval, timeout and retries", tt.service)
			} else if time.Duration(*hc.Timeout) > time.Duration(*hc.Interval)*2 {
				t.Errorf("%s: healthcheck timeout %v is long for interval %v", tt.service, *hc.Timeout, *hc.Interval)
			}
		})
	}
	// The distroless images have no shell: their healthcheck must be exec
	// form, and run the binary the image's ENTRYPOINT runs.
	entrypoint := dockerfileEntrypoint(t)
	for _, name := range goServices {
		if hc := service(t, name).HealthCheck; hc != nil && len(hc.Test) > 1 && hc.Test[1] != entrypoint {
			t.Errorf("%s: healthcheck runs %q, but the image's binary is %q", name, hc.Test[1], entrypoint)
		}
	}
}

func TestRestartPolicies(t *testing.T) {
	for _, name := range composeProject(t).ServiceNames() {
		s := service(t, name)
		want := types.RestartPolicyUnlessStopped
		if name == "redpanda-init" {
			// A one-shot job: restarting it after exit 0 would loop forever.
			want = types.RestartPolicyNo
		}
		if s.Restart != want {
			t.Errorf("%s: restart = %q, want %q", name, s.Restart, want)
		}
	}
}

func TestStartOrder(t *testing.T) {
	const (
		healthy   = types.ServiceConditionHealthy
		completed = types.ServiceConditionCompletedSuccessfully
	)
	want := map[string]map[string]string{
		"redpanda":      {},
		"mongo":         {},
		"jaeger":        {},
		"redpanda-init": {"redpanda": healthy},
		"console":       {"redpanda": healthy},
		"producer":      {"redpanda": healthy, "redpanda-init": completed},
		"consumer":      {"redpanda": healthy, "redpanda-init": completed, "mongo": healthy},
		"gateway":       {"mongo": healthy, "redpanda-init": completed},
	}
	for name, deps := range want {
		got := map[string]string{}
		for dep, d := range service(t, name).DependsOn {
			got[dep] = d.Condition
			if !d.Required {
				t.Errorf("%s: depends_on %s is not required", name, dep)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(deps) {
			t.Errorf("%s: depends_on = %v, want %v", name, got, deps)
		}
	}
	// Whatever talks to Kafka waits for the init: otherwise a client could
	// auto-create the topic (dev-container mode enables that) with the wrong
	// partition count before redpanda-init creates it.
	for _, name := range composeProject(t).ServiceNames() {
		s := service(t, name)
		if _, ok := env(s, "KAFKA_BROKERS"); !ok {
			continue
		}
		if d, ok := s.DependsOn["redpanda-init"]; !ok || d.Condition != completed {
			t.Errorf("%s: uses Kafka but does not wait for redpanda-init to complete successfully", name)
		}
	}
	// Every service a healthy condition waits for has a healthcheck.
	for _, name := range composeProject(t).ServiceNames() {
		for dep, d := range service(t, name).DependsOn {
			if d.Condition != healthy {
				continue
			}
			if hc := service(t, dep).HealthCheck; hc == nil || hc.Disable || len(hc.Test) == 0 {
				t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
			}
		}
	}
}

// pinnedTag is an exact release: major.minor.patch, optionally with a leading v.
var pinnedTag = regexp.MustCompile(`^v?\d+\.\d+\.\d+$`)

// splitImage splits an image reference into repository and tag.
func splitImage(ref string) (repo, tag string) {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	slash := strings.LastIndex(ref, "/")
	if colon := strings.LastIndex(ref, ":"); colon > slash {
		return ref[:colon], ref[colon+1:]
	}
	return ref, ""
}

func TestImagesArePinned(t *testing.T) {
	for _, name := range infraServices {
		s := service(t, name)
		if s.Build != nil {
			t.Errorf("%s: third-party service has a build section", name)
		}
		repo, tag := splitImage(s.Image)
		switch {
		case tag == "":
			t.Errorf("%s: image %q has no tag", name, s.Image)
		case tag == "latest" || !pinnedTag.MatchString(tag):
			t.Errorf("%s: image %q is not pinned to an exact release (want tag like 1.2.3 or v1.2.3)", name, s.Image)
		}
		if repo == "" {
			t.Errorf("%s: image %q has no repository", name, s.Image)
		}
	}
	// rpk in redpanda-init must be the broker's own version.
	if a, b := service(t, "redpanda").Image, service(t, "redpanda-init").Image; a != b {
		t.Errorf("redpanda-init image %q differs from redpanda image %q", b, a)
	}
	for _, name := range goServices {
		s := service(t, name)
		repo, tag := splitImage(s.Image)
		if repo != "commentflow/"+name || tag == "" || tag == "latest" {
			t.Errorf("%s: image = %q, want commentflow/%s:<version>", name, s.Image, name)
		}
		// The image exists in no registry: compose must build it, not try to pull it.
		if s.PullPolicy != types.PullPolicyBuild {
			t.Errorf("%s: pull_policy = %q, want %q", name, s.PullPolicy, types.PullPolicyBuild)
		}
	}
}

func TestBuildsComeFromTheWorkspace(t *testing.T) {
	root := repoRoot(t)
	modules, _ := workspace(t)
	for _, name := range goServices {
		t.Run(name, func(t *testing.T) {
			b := service(t, name).Build
			if b == nil {
				t.Fatalf("%s: no build section", name)
			}
			if filepath.Clean(b.Context) != root {
				t.Errorf("%s: build context = %q, want the repository root %q (the workspace needs every module)", name, b.Context, root)
			}
			dockerfile := b.Dockerfile
			if !filepath.IsAbs(dockerfile) {
				dockerfile = filepath.Join(b.Context, dockerfile)
			}
			if _, err := os.Stat(dockerfile); err != nil {
				t.Errorf("%s: Dockerfile: %v", name, err)
			}
			arg := b.Args["SERVICE"]
			if arg == nil || *arg != name {
				t.Fatalf("%s: build arg SERVICE = %v, want %q", name, arg, name)
			}
			if v := b.Args["VERSION"]; v == nil || *v == "" {
				t.Errorf("%s: build arg VERSION is not set (it stamps main.version)", name)
			}
			if !slices.Contains(modules, name) {
				t.Errorf("%s: go.work has no module %q (use list: %v)", name, name, modules)
			}
			cmdDir := filepath.Join(root, name, "cmd", name)
			if _, err := os.Stat(cmdDir); err != nil {
				t.Skipf("%s: %s does not exist yet (the service is being written); the image cannot build until it does", name, cmdDir)
			}
		})
	}
}

func TestGracefulStopOutlastsShutdownTimeout(t *testing.T) {
	for _, name := range goServices {
		s := service(t, name)
		raw, ok := env(s, "SHUTDOWN_TIMEOUT")
		if !ok {
			raw = "10s" // the services' default
		}
		shutdown, err := time.ParseDuration(raw)
		if err != nil {
			t.Errorf("%s: SHUTDOWN_TIMEOUT %q: %v", name, raw, err)
			continue
		}
		grace := 10 * time.Second // Docker's default
		if s.StopGracePeriod != nil {
			grace = time.Duration(*s.StopGracePeriod)
		}
		if grace <= shutdown {
			t.Errorf("%s: stop_grace_period %v does not leave SHUTDOWN_TIMEOUT %v to finish before SIGKILL", name, grace, shutdown)
		}
	}
}

// commandFlags turns a command such as [redpanda start --smp 1 --mode=x] into
// flag name -> value.
func commandFlags(cmd []string) map[string]string {
	flags := map[string]string{}
	for i := 0; i < len(cmd); i++ {
		arg := cmd[i]
		if !strings.HasPrefix(arg, "--") {
			continue
		}
		name, value, ok := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
		if !ok && i+1 < len(cmd) && !strings.HasPrefix(cmd[i+1], "--") {
			value = cmd[i+1]
			i++
		}
		flags[name] = value
	}
	return flags
}

// listeners parses "internal://0.0.0.0:9092,external://0.0.0.0:19092" into
// listener name -> host:port.
func listeners(t *testing.T, flag, value string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range strings.Split(value, ",") {
		name, addr, ok := strings.Cut(l, "://")
		if !ok {
			t.Fatalf("--%s: listener %q is not name://host:port", flag, l)
		}
		out[name] = addr
	}
	return out
}

func port(t *testing.T, hostport string) string {
	t.Helper()
	_, p, ok := strings.Cut(hostport, ":")
	if !ok {
		t.Fatalf("%q has no port", hostport)
	}
	return p
}

func publishedPorts(s types.ServiceConfig) map[string]string {
	out := map[string]string{} // container port -> host port
	for _, p := range s.Ports {
		out[strconv.Itoa(int(p.Target))] = p.Published
	}
	return out
}

func TestRedpandaListenersAndClients(t *testing.T) {
	rp := service(t, "redpanda")
	if len(rp.Command) < 2 || rp.Command[0] != "redpanda" || rp.Command[1] != "start" {
		t.Fatalf("redpanda: command = %q, want redpanda start ...", rp.Command)
	}
	flags := commandFlags(rp.Command)
	for flag, want := range map[string]string{"mode": "dev-container", "smp": "1"} {
		if flags[flag] != want {
			t.Errorf("redpanda: --%s = %q, want %q", flag, flags[flag], want)
		}
	}

	kafka := listeners(t, "kafka-addr", flags["kafka-addr"])
	adv := listeners(t, "advertise-kafka-addr", flags["advertise-kafka-addr"])
	registry := listeners(t, "schema-registry-addr", flags["schema-registry-addr"])
	published := publishedPorts(rp)

	wantKafka := map[string]string{"internal": "0.0.0.0:9092", "external": "0.0.0.0:19092"}
	wantAdv := map[string]string{"internal": "redpanda:9092", "external": "localhost:19092"}
	wantRegistry := map[string]string{"internal": "0.0.0.0:8081", "external": "0.0.0.0:18081"}
	for _, c := range []struct {
		flag      string
		got, want map[string]string
	}{
		{"kafka-addr", kafka, wantKafka},
		{"advertise-kafka-addr", adv, wantAdv},
		{"schema-registry-addr", registry, wantRegistry},
	} {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("redpanda: --%s = %v, want %v", c.flag, c.got, c.want)
		}
	}
	// The external listeners are published on the same port on the host (the
	// advertised external address says localhost:19092), the admin API on 9644.
	for _, p := range []string{port(t, kafka["external"]), port(t, registry["external"]), "9644"} {
		if published[p] != p {
			t.Errorf("redpanda: container port %s is published as %q, want %s:%s (ports: %v)", p, published[p], p, p, published)
		}
	}
	for _, p := range []string{port(t, kafka["internal"]), port(t, registry["internal"])} {
		if _, ok := published[p]; ok {
			t.Errorf("redpanda: internal listener port %s is published; host clients must use the external listener", p)
		}
	}
	if host, _, _ := strings.Cut(adv["internal"], ":"); host != rp.Name {
		t.Errorf("redpanda: internal listener advertises host %q, want the service name %q", host, rp.Name)
	}
	if port(t, adv["internal"]) != port(t, kafka["internal"]) || port(t, adv["external"]) != port(t, kafka["external"]) {
		t.Errorf("redpanda: advertised ports %v do not match the listener ports %v", adv, kafka)
	}

	// Containers reach the broker through the internal listener, whose
	// advertised address resolves on the compose network.
	internalRegistry := "http://" + rp.Name + ":" + port(t, registry["internal"])
	for _, name := range goServices {
		s := service(t, name)
		if v, ok := env(s, "KAFKA_BROKERS"); ok && v != adv["internal"] {
			t.Errorf("%s: KAFKA_BROKERS = %q, want the internal listener %q", name, v, adv["internal"])
		}
		if v, ok := env(s, "SCHEMA_REGISTRY_URL"); ok && v != internalRegistry {
			t.Errorf("%s: SCHEMA_REGISTRY_URL = %q, want %q", name, v, internalRegistry)
		}
	}
	initSvc := service(t, "redpanda-init")
	for key, want := range map[string]string{
		"RPK_BROKERS":        adv["internal"],
		"RPK_REGISTRY_HOSTS": rp.Name + ":" + port(t, registry["internal"]),
		"RPK_ADMIN_HOSTS":    rp.Name + ":9644",
	} {
		if v, _ := env(initSvc, key); v != want {
			t.Errorf("redpanda-init: %s = %q, want %q", key, v, want)
		}
	}
}

// checkEnvURL checks that the service s sets key to a URL with the scheme,
// host and port of want; why says why it must.
func checkEnvURL(t *testing.T, s types.ServiceConfig, key, want, why string) {
	t.Helper()
	raw, ok := env(s, key)
	if !ok {
		t.Errorf("%s: %s is not set (%s)", s.Name, key, why)
		return
	}
	u, err := url.Parse(raw)
	w, _ := url.Parse(want)
	if err != nil || u.Scheme != w.Scheme || u.Hostname() != w.Hostname() || u.Port() != w.Port() {
		t.Errorf("%s: %s = %q, want %s (%s)", s.Name, key, raw, want, why)
	}
}

func TestMongoClients(t *testing.T) {
	mongo := service(t, "mongo")
	if published := publishedPorts(mongo); published["27017"] != "27017" {
		t.Errorf("mongo: port 27017 is not published as 27017 (the services' default MONGODB_URI is mongodb://localhost:27017)")
	}
	for _, name := range []string{"consumer", "gateway"} {
		checkEnvURL(t, service(t, name), "MONGODB_URI", "mongodb://"+mongo.Name+":27017",
			"its default, localhost, is not the mongo container")
	}
	// mongod 8.0.28+ refuses to start on Linux >= 6.19 unless glibc owns rseq
	// (SERVER-121912); the tunable keeps the stack starting on new kernels.
	if v, _ := env(mongo, "GLIBC_TUNABLES"); v != "glibc.pthread.rseq=1" {
		t.Errorf("mongo: GLIBC_TUNABLES = %q, want glibc.pthread.rseq=1", v)
	}
}

func TestNamesMatchTheSchemasConstants(t *testing.T) {
	tests := []struct {
		service, key, want string
	}{
		{"producer", "KAFKA_TOPIC", schemas.Topic},
		{"consumer", "KAFKA_TOPIC", schemas.Topic},
		{"consumer", "KAFKA_DLQ_TOPIC", schemas.DLQTopic},
		{"consumer", "CONSUMER_GROUP", schemas.ConsumerGroup},
		{"consumer", "MONGODB_DATABASE", schemas.Database},
		{"consumer", "MONGODB_COLLECTION", schemas.Collection},
		{"gateway", "MONGODB_DATABASE", schemas.Database},
		{"gateway", "MONGODB_COLLECTION", schemas.Collection},
		{"gateway", "KAFKA_TOPIC", schemas.Topic},
	}
	for _, tt := range tests {
		if v, ok := env(service(t, tt.service), tt.key); ok && v != tt.want {
			t.Errorf("%s: %s = %q, want %q", tt.service, tt.key, v, tt.want)
		}
	}
}

func TestPublishedPorts(t *testing.T) {
	want := map[string]map[string]string{
		"redpanda":      {"19092": "19092", "18081": "18081", "9644": "9644"},
		"redpanda-init": {},
		"console":       {"8080": "8080"},
		"mongo":         {"27017": "27017"},
		"jaeger":        {"16686": "16686"},
		"producer":      {},
		"consumer":      {},
		"gateway":       {"8000": "8000"},
	}
	for name, ports := range want {
		if got := publishedPorts(service(t, name)); fmt.Sprint(got) != fmt.Sprint(ports) {
			t.Errorf("%s: published ports (container -> host) = %v, want %v", name, got, ports)
		}
	}
	// The gateway listens where its port is published.
	gw := service(t, "gateway")
	addr, ok := env(gw, "HTTP_ADDR")
	if !ok {
		addr = ":8000"
	}
	if _, p, _ := strings.Cut(addr, ":"); publishedPorts(gw)[p] == "" {
		t.Errorf("gateway: HTTP_ADDR %q listens on a port that is not published (%v)", addr, publishedPorts(gw))
	}
}

func TestDataLivesInNamedVolumes(t *testing.T) {
	p := composeProject(t)
	for _, c := range []struct{ service, volume, target string }{
		{"redpanda", "redpanda-data", "/var/lib/redpanda/data"},
		{"mongo", "mongo-data", "/data/db"},
	} {
		if _, ok := p.Volumes[c.volume]; !ok {
			t.Errorf("volume %s is not declared", c.volume)
		}
		found := false
		for _, v := range service(t, c.service).Volumes {
			if v.Type == types.VolumeTypeVolume && v.Source == c.volume && v.Target == c.target {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: named volume %s is not mounted at %s", c.service, c.volume, c.target)
		}
	}
}

// TestServicesExportTracesToJaeger: every service sends its spans over
// OTLP/HTTP to the jaeger service, whose image is the official Jaeger v2
// all-in-one and listens for OTLP on the compose network.
func TestServicesExportTracesToJaeger(t *testing.T) {
	j := service(t, "jaeger")
	if repo, tag := splitImage(j.Image); repo != "jaegertracing/jaeger" || !strings.HasPrefix(tag, "2.") {
		t.Errorf("jaeger: image %q, want the official v2 all-in-one jaegertracing/jaeger:2.x.y", j.Image)
	}
	for _, name := range goServices {
		s := service(t, name)
		checkEnvURL(t, s, "OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318", "OTLP/HTTP on the compose network")
		if p, _ := env(s, "OTEL_EXPORTER_OTLP_PROTOCOL"); p != "http/protobuf" {
			t.Errorf("%s: OTEL_EXPORTER_OTLP_PROTOCOL = %q, want http/protobuf (port 4318)", name, p)
		}
		if v, ok := env(s, "OTEL_SDK_DISABLED"); ok && v == "true" {
			t.Errorf("%s: OTEL_SDK_DISABLED=true", name)
		}
	}
}

// The README names every third-party image the stacks and the Dockerfile
// use, with the very tag they pin (a registry host may be left out).
func TestReadmeNamesThePinnedImages(t *testing.T) {
	readme := readRepoFile(t, "README.md")
	images := map[string]string{} // image -> where
	for _, spec := range allStacks() {
		p, _ := loadStack(t, spec)
		for _, name := range p.ServiceNames() {
			img := stackService(t, spec, name).Image
			if !strings.HasPrefix(img, "commentflow/") {
				images[img] = fmt.Sprintf("%s: %s", spec, name)
			}
		}
	}
	_, stages := dockerfile(t)
	for _, s := range stages {
		images[s.image] = "Dockerfile"
	}
	for img, where := range images {
		short := img
		if host, rest, ok := strings.Cut(img, "/"); ok && strings.Contains(host, ".") {
			short = rest // docker.redpanda.com/redpandadata/redpanda:v1 -> redpandadata/redpanda:v1
		}
		if !strings.Contains(readme, "`"+img+"`") && !strings.Contains(readme, "`"+short+"`") {
			t.Errorf("README does not name the image %s (%s) as `%s`", img, where, short)
		}
	}
}

// The quick start's "Ports ... must be free" lists exactly the host ports
// `docker compose up` publishes.
func TestReadmeListsThePortsToFree(t *testing.T) {
	readme := strings.Join(strings.Fields(readRepoFile(t, "README.md")), " ")
	m := regexp.MustCompile(`Ports ([0-9, and]+) must be free`).FindStringSubmatch(readme)
	if m == nil {
		t.Fatal(`README: no "Ports ... must be free" sentence`)
	}
	listed := regexp.MustCompile(`\d+`).FindAllString(m[1], -1)
	var published []string
	for _, name := range composeProject(t).ServiceNames() {
		for _, p := range service(t, name).Ports {
			published = append(published, p.Published)
		}
	}
	slices.Sort(listed)
	slices.Sort(published)
	if !slices.Equal(listed, published) {
		t.Errorf("README says ports %v must be free; docker-compose.yml publishes %v", listed, published)
	}
}
