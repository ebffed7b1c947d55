// Package fakestate holds what the fake command-line tools of
// devstack/stackfile (fakerpk, fakemongosh) share: a state kept in a JSON
// file between invocations, and the main that runs one invocation on it.
package fakestate

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// Load reads the state v from the JSON file at path.
func Load(path string, v any) error {
	b, err := os.ReadFile(path) //nolint:gosec // G304: the fake reads the state file its test names
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// Save writes the state v to the JSON file at path.
func Save(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// Update loads the state at path, runs f on it and saves it back (also when f
// fails), returning f's exit code, or 99 when the state file cannot be read
// or written; name (the fake's) prefixes those errors on stderr.
func Update[S any](name, path string, stderr io.Writer, f func(*S) int) (code int) {
	var s S
	if err := Load(path, &s); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 99
	}
	defer func() {
		if err := Save(path, &s); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			code = 99
		}
	}()
	return f(&s)
}

// Main is the main function of a fake tool: it exits with the code of run
// on the state file named by the environment variable stateEnv, or with 99
// when that variable is not set.
func Main(name, stateEnv string, run func(statePath string, args []string, stdout, stderr io.Writer) int) {
	state := os.Getenv(stateEnv)
	if state == "" {
		fmt.Fprintln(os.Stderr, name+": set", stateEnv)
		os.Exit(99)
	}
	os.Exit(run(state, os.Args[1:], os.Stdout, os.Stderr))
}
