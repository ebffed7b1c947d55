// Command mongosh is the fake mongosh of package fakemongosh: it acts on the
// replica set in the JSON file named by $FAKE_MONGOSH_STATE.
package main

import (
	"github.com/commentflow/commentflow/devstack/stackfile/internal/fakemongosh"
	"github.com/commentflow/commentflow/devstack/stackfile/internal/fakestate"
)

func main() { fakestate.Main(fakemongosh.Name, fakemongosh.StateEnv, fakemongosh.Run) }
