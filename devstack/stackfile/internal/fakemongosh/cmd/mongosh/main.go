// Command mongosh is the fake mongosh of package fakemongosh: it acts on the
// replica set in the JSON file named by $FAKE_MONGOSH_STATE.
package main

import (
	"fmt"
	"os"

	"github.com/commentflow/commentflow/devstack/stackfile/internal/fakemongosh"
)

func main() {
	state := os.Getenv(fakemongosh.StateEnv)
	if state == "" {
		fmt.Fprintln(os.Stderr, "fake mongosh: set", fakemongosh.StateEnv)
		os.Exit(99)
	}
	os.Exit(fakemongosh.Run(state, os.Args[1:], os.Stdout, os.Stderr))
}
