// Command rpk is the fake rpk of package fakerpk: it acts on the cluster in
// the JSON file named by $FAKE_RPK_STATE.
package main

import (
	"github.com/commentflow/commentflow/devstack/stackfile/internal/fakerpk"
	"github.com/commentflow/commentflow/devstack/stackfile/internal/fakestate"
)

func main() { fakestate.Main(fakerpk.Name, fakerpk.StateEnv, fakerpk.Run) }
