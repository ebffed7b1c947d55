package stackfile

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"

	"github.com/commentflow/commentflow/devstack/stackfile/internal/fakemongosh"
	"github.com/commentflow/commentflow/devstack/stackfile/internal/fakerpk"
	"github.com/commentflow/commentflow/schemas"
)

// clusterStack is `docker compose -f docker-compose.yml -f compose.cluster.yml`.
var clusterStack = stackSpec{files: []string{"docker-compose.yml", "compose.cluster.yml"}}

var (
	brokers    = []string{"redpanda", "redpanda-1", "redpanda-2"}
	rsMembers  = []string{"mongo", "mongo-1", "mongo-2"}
	oneShots   = []string{"redpanda-init", "mongo-init"}
	rsName     = "rs0"
	mongoPort  = "27017"
	rpcPort    = "33145"
	adminPort  = "9644"
	kafkaPort  = "9092"
	registryPt = "8081"
)

func cluster(t testing.TB, name string) types.ServiceConfig {
	t.Helper()
	return stackService(t, clusterStack, name)
}

// checkOwnVolume checks that the service s keeps target on a named volume
// that no other service in volumes (volume -> service, which it extends) has.
func checkOwnVolume(t *testing.T, s types.ServiceConfig, target string, volumes map[string]string) {
	t.Helper()
	var data string
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Target == target {
			data = v.Source
		}
	}
	if data == "" {
		t.Errorf("%s: no named volume at %s", s.Name, target)
	} else if other, ok := volumes[data]; ok {
		t.Errorf("%s and %s share the volume %s", s.Name, other, data)
	}
	volumes[data] = s.Name
}

func hostsWithPort(names []string, port string) []string {
	var out []string
	for _, n := range names {
		out = append(out, n+":"+port)
	}
	return out
}

func TestClusterFileLoads(t *testing.T) {
	p, warnings := loadStack(t, clusterStack)
	if warnings != "" {
		t.Errorf("compose-go warned:\n%s", warnings)
	}
	base, _ := loadStack(t, baseStack)
	want := slices.Concat(base.ServiceNames(), []string{"redpanda-1", "redpanda-2", "mongo-1", "mongo-2", "mongo-init"})
	slices.Sort(want)
	got := p.ServiceNames()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("services = %v, want %v", got, want)
	}
}

func TestClusterBrokers(t *testing.T) {
	image := service(t, "redpanda").Image
	hostPorts := map[string]string{} // host port -> who publishes it
	volumes := map[string]string{}
	for _, name := range brokers {
		s := cluster(t, name)
		if s.Image != image {
			t.Errorf("%s: image %q, want the single-broker stack's %q", name, s.Image, image)
		}
		if len(s.Command) < 2 || s.Command[0] != "redpanda" || s.Command[1] != "start" {
			t.Fatalf("%s: command = %q, want redpanda start ...", name, s.Command)
		}
		flags := commandFlags(s.Command)
		if got, want := flags["seeds"], "redpanda:"+rpcPort; got != want {
			t.Errorf("%s: --seeds = %q, want %q (the same list on every broker)", name, got, want)
		}
		for _, f := range []string{"rpc-addr", "advertise-rpc-addr"} {
			if want := name + ":" + rpcPort; flags[f] != want {
				t.Errorf("%s: --%s = %q, want %q", name, f, flags[f], want)
			}
		}
		kafka := listeners(t, "kafka-addr", flags["kafka-addr"])
		adv := listeners(t, "advertise-kafka-addr", flags["advertise-kafka-addr"])
		registry := listeners(t, "schema-registry-addr", flags["schema-registry-addr"])
		if kafka["internal"] != "0.0.0.0:"+kafkaPort || registry["internal"] != "0.0.0.0:"+registryPt {
			t.Errorf("%s: internal listeners kafka %q registry %q, want 0.0.0.0:%s and 0.0.0.0:%s", name, kafka["internal"], registry["internal"], kafkaPort, registryPt)
		}
		if adv["internal"] != name+":"+kafkaPort {
			t.Errorf("%s: advertised internal Kafka address %q, want %s:%s", name, adv["internal"], name, kafkaPort)
		}
		extPort := port(t, kafka["external"])
		if adv["external"] != "localhost:"+extPort {
			t.Errorf("%s: advertised external Kafka address %q, want localhost:%s (the published port)", name, adv["external"], extPort)
		}
		published := publishedPorts(s)
		for _, p := range []string{extPort, port(t, registry["external"])} {
			if published[p] != p {
				t.Errorf("%s: external listener port %s is published as %q, want the same port (published: %v)", name, p, published[p], published)
			}
		}
		if published[adminPort] == "" {
			t.Errorf("%s: admin API %s is not published", name, adminPort)
		}
		for _, p := range s.Ports {
			if other, ok := hostPorts[p.Published]; ok {
				t.Errorf("%s and %s both publish host port %s", name, other, p.Published)
			}
			hostPorts[p.Published] = name
		}
		checkOwnVolume(t, s, "/var/lib/redpanda/data", volumes)
	}
}

func TestClusterClientsUseEveryBroker(t *testing.T) {
	want := strings.Join(hostsWithPort(brokers, kafkaPort), ",")
	for _, name := range []string{"producer", "consumer", "gateway"} {
		if v, _ := env(cluster(t, name), "KAFKA_BROKERS"); v != want {
			t.Errorf("%s: KAFKA_BROKERS = %q, want %q", name, v, want)
		}
	}
	init := cluster(t, "redpanda-init")
	for key, port := range map[string]string{"RPK_BROKERS": kafkaPort, "RPK_ADMIN_HOSTS": adminPort, "RPK_REGISTRY_HOSTS": registryPt} {
		if v, _ := env(init, key); v != strings.Join(hostsWithPort(brokers, port), ",") {
			t.Errorf("redpanda-init: %s = %q, want all three brokers", key, v)
		}
	}
	if v, _ := env(init, "REPLICAS"); v != "3" {
		t.Errorf("redpanda-init: REPLICAS = %q, want 3", v)
	}

	// Console sees the three brokers.
	console := cluster(t, "console")
	target, _ := bindMount(t, console, "redpanda/console-config.cluster.yml")
	if v, _ := env(console, "CONFIG_FILEPATH"); v != target {
		t.Errorf("console: CONFIG_FILEPATH = %q, but the cluster configuration is mounted at %q", v, target)
	}
	for _, v := range console.Volumes {
		if v.Target == target && !strings.HasSuffix(v.Source, "console-config.cluster.yml") {
			t.Errorf("console: %s also mounted at %s", v.Source, target)
		}
	}
	var cfg consoleConfig
	dec := yaml.NewDecoder(strings.NewReader(readRepoFile(t, "redpanda/console-config.cluster.yml")))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("redpanda/console-config.cluster.yml: %v", err)
	}
	var registries, admins []string
	for _, b := range brokers {
		registries = append(registries, "http://"+b+":"+registryPt)
		admins = append(admins, "http://"+b+":"+adminPort)
	}
	if !slices.Equal(cfg.Kafka.Brokers, hostsWithPort(brokers, kafkaPort)) {
		t.Errorf("console kafka.brokers = %q, want the three brokers", cfg.Kafka.Brokers)
	}
	if !cfg.SchemaRegistry.Enabled || !slices.Equal(cfg.SchemaRegistry.URLs, registries) {
		t.Errorf("console schemaRegistry = %+v, want %q", cfg.SchemaRegistry, registries)
	}
	if !cfg.Redpanda.AdminAPI.Enabled || !slices.Equal(cfg.Redpanda.AdminAPI.URLs, admins) {
		t.Errorf("console adminApi = %+v, want %q", cfg.Redpanda.AdminAPI, admins)
	}
}

func TestClusterReplicaSet(t *testing.T) {
	image := service(t, "mongo").Image
	volumes := map[string]string{}
	for _, name := range rsMembers {
		s := cluster(t, name)
		if s.Image != image {
			t.Errorf("%s: image %q, want %q", name, s.Image, image)
		}
		flags := commandFlags(s.Command)
		if len(s.Command) == 0 || s.Command[0] != "mongod" || flags["replSet"] != rsName {
			t.Errorf("%s: command %q, want mongod --replSet %s", name, s.Command, rsName)
		}
		if _, ok := flags["bind_ip_all"]; !ok {
			t.Errorf("%s: command %q lacks --bind_ip_all (the other members could not connect)", name, s.Command)
		}
		if v, _ := env(s, "GLIBC_TUNABLES"); v != "glibc.pthread.rseq=1" {
			t.Errorf("%s: GLIBC_TUNABLES = %q, want glibc.pthread.rseq=1", name, v)
		}
		checkOwnVolume(t, s, "/data/db", volumes)
	}

	init := cluster(t, "mongo-init")
	if init.Image != image {
		t.Errorf("mongo-init: image %q, want the members' %q (mongosh matches the server)", init.Image, image)
	}
	target, ro := bindMount(t, init, "mongo/rs-init.sh")
	if !ro {
		t.Error("mongo-init: rs-init.sh is not mounted read-only")
	}
	if want := []string{"/bin/sh", target}; !slices.Equal([]string(init.Entrypoint), want) {
		t.Errorf("mongo-init: entrypoint %q, want %q", init.Entrypoint, want)
	}
	members := strings.Join(hostsWithPort(rsMembers, mongoPort), ",")
	if v, _ := env(init, "RS_MEMBERS"); v != members {
		t.Errorf("mongo-init: RS_MEMBERS = %q, want %q", v, members)
	}
	if v, _ := env(init, "RS_NAME"); v != rsName {
		t.Errorf("mongo-init: RS_NAME = %q, want %q", v, rsName)
	}

	// Both MongoDB clients use the replica set, by every member.
	for _, c := range []struct {
		service  string
		readPref []string
	}{
		{"consumer", []string{""}},
		{"gateway", []string{"secondaryPreferred", "nearest"}},
	} {
		raw, _ := env(cluster(t, c.service), "MONGODB_URI")
		hostsPart, query, _ := strings.Cut(strings.TrimPrefix(raw, "mongodb://"), "/?")
		q, err := url.ParseQuery(query)
		if err != nil || !strings.HasPrefix(raw, "mongodb://") {
			t.Errorf("%s: MONGODB_URI %q is not a mongodb:// URI (%v)", c.service, raw, err)
			continue
		}
		if hostsPart != members || q.Get("replicaSet") != rsName {
			t.Errorf("%s: MONGODB_URI = %q, want hosts %s and replicaSet=%s", c.service, raw, members, rsName)
		}
		if !slices.Contains(c.readPref, q.Get("readPreference")) {
			t.Errorf("%s: MONGODB_URI readPreference = %q, want one of %q", c.service, q.Get("readPreference"), c.readPref)
		}
	}
	if v, _ := env(cluster(t, "consumer"), "MONGODB_WRITE_CONCERN"); v != "majority" {
		t.Errorf("consumer: MONGODB_WRITE_CONCERN = %q, want majority (two of three members)", v)
	}
}

func TestClusterHealthchecksAndStartOrder(t *testing.T) {
	const (
		healthy   = types.ServiceConditionHealthy
		completed = types.ServiceConditionCompletedSuccessfully
	)
	p, _ := loadStack(t, clusterStack)
	for _, name := range p.ServiceNames() {
		s := cluster(t, name)
		oneShot := slices.Contains(oneShots, name)
		if oneShot {
			if s.Restart != types.RestartPolicyNo {
				t.Errorf("%s: restart = %q, want no (one-shot)", name, s.Restart)
			}
		} else {
			if s.Restart != types.RestartPolicyUnlessStopped {
				t.Errorf("%s: restart = %q, want unless-stopped", name, s.Restart)
			}
			if name != "console" && (s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0) {
				t.Errorf("%s: no healthcheck", name)
			}
		}
		for dep, d := range s.DependsOn {
			if !d.Required {
				t.Errorf("%s: depends_on %s is not required", name, dep)
			}
			ds := cluster(t, dep)
			switch d.Condition {
			case healthy:
				if ds.HealthCheck == nil || ds.HealthCheck.Disable || len(ds.HealthCheck.Test) == 0 {
					t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
				}
			case completed:
				if !slices.Contains(oneShots, dep) {
					t.Errorf("%s waits for %s to complete, but %s is not a one-shot", name, dep, dep)
				}
			default:
				t.Errorf("%s: depends_on %s with condition %q", name, dep, d.Condition)
			}
		}
	}
	want := map[string]map[string]string{
		"redpanda-init": {"redpanda": healthy, "redpanda-1": healthy, "redpanda-2": healthy},
		"console":       {"redpanda": healthy, "redpanda-1": healthy, "redpanda-2": healthy},
		"mongo-init":    {"mongo": healthy, "mongo-1": healthy, "mongo-2": healthy},
		"producer":      {"redpanda": healthy, "redpanda-1": healthy, "redpanda-2": healthy, "redpanda-init": completed},
		"consumer": {"redpanda": healthy, "redpanda-1": healthy, "redpanda-2": healthy, "redpanda-init": completed,
			"mongo": healthy, "mongo-init": completed},
		"gateway": {"mongo": healthy, "mongo-init": completed, "redpanda-init": completed},
	}
	for name, deps := range want {
		got := map[string]string{}
		for dep, d := range cluster(t, name).DependsOn {
			got[dep] = d.Condition
		}
		if fmt.Sprint(got) != fmt.Sprint(deps) {
			t.Errorf("%s: depends_on = %v, want %v", name, got, deps)
		}
	}
	for _, name := range slices.Concat(brokers[1:], rsMembers[1:]) {
		if len(cluster(t, name).DependsOn) != 0 {
			t.Errorf("%s: depends on %v; the members start together (the seeds and mongo-init wait for each other)", name, cluster(t, name).DependsOn)
		}
	}
}

func TestClusterInitCreatesTopicsWithThreeReplicas(t *testing.T) {
	t.Parallel() // slow (a build, or shell scripts run many times): overlap the rest
	var clusterEnv []string
	for k, v := range cluster(t, "redpanda-init").Environment {
		if v != nil {
			clusterEnv = append(clusterEnv, k+"="+*v)
		}
	}
	s := fakerpk.New()
	s.Brokers = len(brokers)
	out, err := runInit(t, s, clusterEnv...)
	if err != nil {
		t.Fatalf("init.sh with the cluster's environment: %v\n%s", err, out)
	}
	for _, topic := range []string{schemas.Topic, schemas.DLQTopic} {
		if s.Replicas[topic] != 3 {
			t.Errorf("topic %s: replication factor %d, want 3\n%s", topic, s.Replicas[topic], out)
		}
	}
	if !slices.Contains(s.Env, "RPK_BROKERS="+strings.Join(hostsWithPort(brokers, kafkaPort), ",")) {
		t.Errorf("rpk did not see the three brokers: %v", s.Env)
	}

	// On a single broker, the same environment fails loudly.
	s = fakerpk.New()
	out, err = runInit(t, s, clusterEnv...)
	if err == nil || !strings.Contains(out, "INVALID_REPLICATION_FACTOR") {
		t.Errorf("init.sh with REPLICAS=3 on one broker: err %v, want INVALID_REPLICATION_FACTOR\n%s", err, out)
	}
}

// runRSInit runs mongo/rs-init.sh against the fake mongosh on state, with the
// environment compose.cluster.yml gives mongo-init.
func runRSInit(t *testing.T, state *fakemongosh.State, extraEnv ...string) (string, error) {
	t.Helper()
	return runScript(t, fakeMongosh, "mongo/rs-init.sh", state,
		[]string{"INIT_RETRY_DELAY=0", "INIT_ATTEMPTS=5"}, cluster(t, "mongo-init"), extraEnv)
}

func TestRSInitScriptIsPOSIXShell(t *testing.T) {
	script := filepath.Join(repoRoot(t), "mongo", "rs-init.sh")
	text := readRepoFile(t, "mongo/rs-init.sh")
	if first, _, _ := strings.Cut(text, "\n"); first != "#!/bin/sh" {
		t.Errorf("rs-init.sh starts with %q, want #!/bin/sh", first)
	}
	for _, sh := range []string{"sh", "dash"} {
		if _, err := exec.LookPath(sh); err != nil {
			continue
		}
		if out, err := exec.CommandContext(t.Context(), sh, "-n", script).CombinedOutput(); err != nil {
			t.Errorf("%s -n mongo/rs-init.sh: %v\n%s", sh, err, out)
		}
	}
	for _, bashism := range []string{"[[", "function ", "pipefail", "$'", "<<<", "local "} {
		if strings.Contains(text, bashism) {
			t.Errorf("rs-init.sh uses %q, which POSIX sh does not have", bashism)
		}
	}
}

func TestRSInitScript(t *testing.T) {
	t.Parallel() // slow (a build, or shell scripts run many times): overlap the rest
	members := hostsWithPort(rsMembers, mongoPort)
	initiated := func(t *testing.T, s *fakemongosh.State) {
		t.Helper()
		if s.Initiated == nil {
			t.Fatal("the replica set was not initiated")
		}
		var hosts []string
		for i, m := range s.Initiated.Members {
			hosts = append(hosts, m.Host)
			if m.ID != i {
				t.Errorf("member %s has _id %d, want %d", m.Host, m.ID, i)
			}
		}
		if s.Initiated.ID != rsName || !slices.Equal(hosts, members) {
			b, _ := json.Marshal(s.Initiated)
			t.Errorf("initiated with %s, want _id %s and members %q", b, rsName, members)
		}
	}
	tests := []scriptCase[fakemongosh.State]{
		{name: "fresh members are initiated once", check: func(t *testing.T, s *fakemongosh.State) {
			initiated(t, s)
			if s.Initiates != 1 {
				t.Errorf("rs.initiate called %d times, want 1", s.Initiates)
			}
		}},
		{name: "waits for every member", setup: func(s *fakemongosh.State) { s.Down[members[2]] = 3; s.Down[members[0]] = 2 }, check: initiated},
		{name: "waits for a primary", setup: func(s *fakemongosh.State) { s.NoPrimaryN = 3 }, check: initiated},
		{name: "another run initiated it meanwhile", setup: func(s *fakemongosh.State) { s.RaceInitiate = true }, check: initiated},
		{name: "member never reachable", setup: func(s *fakemongosh.State) { s.Down[members[1]] = 100 }, wantErr: "member mongo-1:27017: not ready after 5 attempts"},
		{name: "no primary elected", setup: func(s *fakemongosh.State) { s.NoPrimaryN = 100 }, wantErr: "primary of rs0: not ready after 5 attempts"},
		{
			name: "initiate refused",
			setup: func(s *fakemongosh.State) {
				s.InitiateErr = "MongoServerError[InvalidReplicaSetConfig]: replSet initiate got NodeNotFound"
			},
			wantErr: "rs.initiate failed",
		},
	}
	runScriptCases(t, "rs-init.sh", tests, fakemongosh.New, runRSInit, nil)

	t.Run("second run changes nothing", func(t *testing.T) {
		s := fakemongosh.New()
		if out, err := runRSInit(t, s); err != nil {
			t.Fatalf("first run: %v\n%s", err, out)
		}
		out, err := runRSInit(t, s)
		if err != nil {
			t.Fatalf("second run: %v\n%s", err, out)
		}
		if s.Initiates != 1 || !strings.Contains(out, "already initiated") {
			t.Errorf("second run: rs.initiate calls %d (want 1 in total), output:\n%s", s.Initiates, out)
		}
		initiated(t, s)
	})
}
