// Package fakemongosh is a stand-in for mongosh that keeps a fake replica set
// in a JSON file. devstack/stackfile runs mongo/rs-init.sh against it
// (cmd/mongosh is the executable) to test the script's control flow without
// mongod. It understands exactly the evaluations rs-init.sh makes.
package fakemongosh

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/commentflow/commentflow/devstack/stackfile/internal/fakestate"
)

// StateEnv names the environment variable that holds the state file's path.
const StateEnv = "FAKE_MONGOSH_STATE"

// Config is a replica set configuration document as rs.initiate takes it.
type Config struct {
	ID      string `json:"_id"`
	Members []struct {
		ID   int    `json:"_id"`
		Host string `json:"host"`
	} `json:"members"`
}

// State is the fake replica set.
type State struct {
	Down        map[string]int // host -> ping fails this many more times
	Initiated   *Config        // nil until rs.initiate
	NoPrimaryN  int            // no primary is reported this many more times
	InitiateErr string         // if set, rs.initiate fails with this error
	// RaceInitiate: another run initiates the set between this run's
	// rs.status() and rs.initiate (rs.initiate then fails as mongod does).
	RaceInitiate bool
	Initiates    int      // rs.initiate calls
	Calls        []string // "host: eval" of every invocation
}

// New returns a replica set whose members are up and not initiated.
func New() *State { return &State{Down: map[string]int{}} }

// Run implements `mongosh --host H --quiet --norc --eval JS` for the
// evaluations of mongo/rs-init.sh, printing what mongosh prints (a thrown
// server error goes to stderr with exit code 1). It returns the exit code.
func Run(statePath string, args []string, stdout, stderr io.Writer) int {
	return fakestate.Update(Name, statePath, stderr, func(s *State) int { return s.run(args, stdout, stderr) })
}

// Name is the fake's name in its error messages.
const Name = "fake mongosh"

func (s *State) run(args []string, stdout, stderr io.Writer) int {
	var host, eval string
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--host":
			i++
			host = args[i]
		case "--eval":
			i++
			eval = args[i]
		case "--quiet", "--norc":
		default:
			fmt.Fprintf(stderr, "fake mongosh: unexpected argument %q\n", args[i])
			return 2
		}
	}
	s.Calls = append(s.Calls, host+": "+eval)
	if host == "" || eval == "" {
		fmt.Fprintln(stderr, "fake mongosh: want --host and --eval")
		return 2
	}
	if s.Down[host] > 0 {
		s.Down[host]--
		fmt.Fprintf(stderr, "MongoNetworkError: connect ECONNREFUSED %s\n", host)
		return 1
	}

	switch {
	case strings.Contains(eval, "ping"):
		fmt.Fprintln(stdout, 1)
		return 0

	case strings.HasPrefix(eval, "rs.initiate("):
		s.Initiates++
		raw := strings.TrimSuffix(strings.TrimPrefix(eval, "rs.initiate("), ").ok")
		var cfg Config
		if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
			fmt.Fprintf(stderr, "SyntaxError: %v\n", err)
			return 1
		}
		switch {
		case s.InitiateErr != "":
			fmt.Fprintln(stderr, s.InitiateErr)
			return 1
		case s.RaceInitiate:
			s.RaceInitiate = false
			s.Initiated = &cfg
			fmt.Fprintln(stderr, "MongoServerError[AlreadyInitialized]: already initialized")
			return 1
		case s.Initiated != nil:
			fmt.Fprintln(stderr, "MongoServerError[AlreadyInitialized]: already initialized")
			return 1
		}
		s.Initiated = &cfg
		fmt.Fprintln(stdout, 1)
		return 0

	case strings.Contains(eval, "NotYetInitialized"):
		if s.Initiated == nil {
			fmt.Fprintln(stdout, "uninitialized")
		} else {
			fmt.Fprintln(stdout, "initialized")
		}
		return 0

	case strings.Contains(eval, "'PRIMARY'"):
		if s.Initiated == nil {
			fmt.Fprintln(stderr, "MongoServerError[NotYetInitialized]: no replset config has been received")
			return 1
		}
		if s.NoPrimaryN > 0 {
			s.NoPrimaryN--
			fmt.Fprintln(stdout, false)
			return 0
		}
		fmt.Fprintln(stdout, true)
		return 0
	}
	fmt.Fprintf(stderr, "fake mongosh: unexpected --eval %q\n", eval)
	return 2
}
