// Package fakerpk is a stand-in for rpk, the Redpanda CLI, that keeps a fake
// cluster in a JSON file. devstack/stackfile runs redpanda/init.sh against it
// (cmd/rpk is the executable) to test the script's control flow without a
// broker.
package fakerpk

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/commentflow/commentflow/devstack/stackfile/internal/fakestate"
)

// StateEnv names the environment variable that holds the state file's path.
const StateEnv = "FAKE_RPK_STATE"

// New returns an empty cluster.
func New() *State {
	return &State{
		Topics: map[string]int{}, Replicas: map[string]int{},
		Subjects: map[string]string{}, SchemaIDs: map[string]int{}, Versions: map[string]int{},
		Compat: map[string]string{},
	}
}

// State is the fake cluster the fake rpk works on, kept in a JSON file
// between invocations.
type State struct {
	Topics       map[string]int    // name -> partitions
	Replicas     map[string]int    // name -> replication factor
	Subjects     map[string]string // subject -> schema text (latest version)
	SchemaIDs    map[string]int    // subject -> schema ID
	Versions     map[string]int    // subject -> latest version
	Compat       map[string]string // subject -> level
	Brokers      int               // brokers in the cluster (0 = 1): the highest replication factor
	UnhealthyN   int               // cluster health reports false this many more times
	RegistryN    int               // the registry refuses this many more requests
	SchemaErrN   int               // schema create fails (transiently) this many more times
	CreateErr    string            // if set, topic create fails with this error
	CompatErr    string            // if set, compatibility-level set reports this error
	CompatGetErr string            // if set, compatibility-level get reports this error
	Calls        []string          // every invocation, args joined by spaces
	Env          []string          // RPK_* variables seen by the last invocation
}

// Run implements the rpk commands redpanda/init.sh uses, with rpk's output
// formats (tables printed by rpk's out.NewTable, exit codes as in rpk's
// sources): enough to test the script's control flow without a broker. It
// returns the exit code.
func Run(statePath string, args []string, stdout, stderr io.Writer) int {
	return fakestate.Update(Name, statePath, stderr, func(s *State) int { return s.run(args, stdout, stderr) })
}

// Name is the fake's name in its error messages.
const Name = "fake rpk"

func (s *State) run(args []string, stdout, stderr io.Writer) int {
	s.Calls = append(s.Calls, strings.Join(args, " "))
	s.Env = nil
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "RPK_") {
			s.Env = append(s.Env, kv)
		}
	}
	slices.Sort(s.Env)

	flag := func(name string) string {
		for i, a := range args {
			if a == name && i+1 < len(args) {
				return args[i+1]
			}
			if v, ok := strings.CutPrefix(a, name+"="); ok {
				return v
			}
		}
		return ""
	}
	cmd := strings.Join(args[:min(2, len(args))], " ")
	if len(args) >= 3 && args[0] == "registry" {
		cmd = strings.Join(args[:3], " ")
	}
	switch cmd {
	case "cluster health":
		healthy := s.UnhealthyN <= 0
		s.UnhealthyN--
		fmt.Fprintf(stdout, "CLUSTER HEALTH OVERVIEW\n=======================\nHealthy:               %v\nController ID:               0\nAll nodes:                   [0]\nNodes down:                  []\n", healthy)
		return 0

	case "topic create":
		name := args[2]
		p, _ := strconv.Atoi(flag("--partitions"))
		r, _ := strconv.Atoi(flag("--replicas"))
		fmt.Fprintln(stdout, "TOPIC  STATUS")
		switch {
		case s.CreateErr != "":
			fmt.Fprintf(stdout, "%s  %s\n", name, s.CreateErr)
			return 1
		case s.Topics[name] > 0:
			fmt.Fprintf(stdout, "%s  TOPIC_ALREADY_EXISTS: Topic with this name already exists.\n", name)
			return 1
		case p <= 0 || r <= 0:
			fmt.Fprintf(stdout, "%s  INVALID_PARTITIONS\n", name)
			return 1
		case r > max(1, s.Brokers):
			fmt.Fprintf(stdout, "%s  INVALID_REPLICATION_FACTOR: Replication factor is below 1 or larger than the number of available brokers.\n", name)
			return 1
		}
		s.Topics[name], s.Replicas[name] = p, r
		fmt.Fprintf(stdout, "%s  OK\n", name)
		return 0

	case "topic list":
		fmt.Fprintln(stdout, "NAME  PARTITIONS  REPLICAS")
		for _, name := range args[2:] {
			fmt.Fprintf(stdout, "%s  %d  %d\n", name, s.Topics[name], s.Replicas[name])
		}
		return 0

	case "topic add-partitions":
		name := args[2]
		n, _ := strconv.Atoi(flag("--num"))
		fmt.Fprintln(stdout, "TOPIC  STATUS")
		if s.Topics[name] == 0 || n <= 0 {
			fmt.Fprintf(stdout, "%s  UNKNOWN_TOPIC_OR_PARTITION\n", name)
			return 1
		}
		s.Topics[name] += n
		fmt.Fprintf(stdout, "%s  OK\n", name)
		return 0

	case "registry subject list":
		if s.RegistryN > 0 {
			s.RegistryN--
			fmt.Fprintln(stderr, "unable to request subjects: dial tcp: connect: connection refused")
			return 1
		}
		for subject := range s.Subjects {
			fmt.Fprintln(stdout, subject)
		}
		return 0

	case "registry schema create":
		subject := args[3]
		if flag("--type") != "avro" {
			fmt.Fprintln(stderr, "fake rpk: want --type avro")
			return 1
		}
		text, err := os.ReadFile(flag("--schema"))
		if err != nil {
			fmt.Fprintf(stderr, "unable to read %q: %v\n", flag("--schema"), err)
			return 1
		}
		if s.SchemaErrN > 0 {
			s.SchemaErrN--
			fmt.Fprintln(stderr, "unable to create schema: Post \"http://redpanda:8081/subjects/comments-value/versions\": EOF")
			return 1
		}
		switch old, ok := s.Subjects[subject]; {
		case ok && old == string(text):
			// The registry returns the existing ID and version.
		case ok && s.Compat[subject] == "BACKWARD":
			fmt.Fprintln(stderr, "unable to create schema: Schema being registered is incompatible with an earlier schema (409)")
			return 1
		default:
			s.Subjects[subject] = string(text)
			s.Versions[subject]++
			s.SchemaIDs[subject] = len(s.Calls) // any new ID
		}
		fmt.Fprintf(stdout, "SUBJECT  VERSION  ID  TYPE\n%s  %d  %d  AVRO\n", subject, s.Versions[subject], s.SchemaIDs[subject])
		return 0

	case "registry compatibility-level get":
		subject := args[3]
		// Like rpk (franz-go's sr.Client.Compatibility without
		// defaultToGlobal, which Redpanda and Confluent take as false): a
		// subject without a level of its own is a per-subject error, 404
		// with code 40408; the exit code stays 0.
		fmt.Fprintln(stdout, "SUBJECT  LEVEL  ERROR")
		switch level, ok := s.Compat[subject]; {
		case s.CompatGetErr != "":
			fmt.Fprintf(stdout, "%s    %s\n", subject, s.CompatGetErr)
		case !ok:
			fmt.Fprintf(stdout, "%s    Subject '%s' does not have subject-level compatibility configured\n", subject, subject)
		default:
			fmt.Fprintf(stdout, "%s  %s  \n", subject, level)
		}
		return 0
	case "registry compatibility-level set":
		subject := args[3]
		// Like rpk: a per-subject error goes in the table, the exit code stays 0.
		fmt.Fprintln(stdout, "SUBJECT  LEVEL  ERROR")
		if s.CompatErr != "" {
			fmt.Fprintf(stdout, "%s    %s\n", subject, s.CompatErr)
			return 0
		}
		s.Compat[subject] = flag("--level")
		fmt.Fprintf(stdout, "%s  %s  \n", subject, s.Compat[subject])
		return 0
	}
	fmt.Fprintf(stderr, "fake rpk: unexpected command %q\n", args)
	return 2
}
