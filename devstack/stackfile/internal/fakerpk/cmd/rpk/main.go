// Command rpk is the fake rpk of package fakerpk: it acts on the cluster in
// the JSON file named by $FAKE_RPK_STATE.
package main

import (
	"fmt"
	"os"

	"github.com/commentflow/commentflow/devstack/stackfile/internal/fakerpk"
)

func main() {
	state := os.Getenv(fakerpk.StateEnv)
	if state == "" {
		fmt.Fprintln(os.Stderr, "fake rpk: set", fakerpk.StateEnv)
		os.Exit(99)
	}
	os.Exit(fakerpk.Run(state, os.Args[1:], os.Stdout, os.Stderr))
}
