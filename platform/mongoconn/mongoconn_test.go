package mongoconn_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/commentflow/commentflow/platform/config"
	"github.com/commentflow/commentflow/platform/mongoconn"
)

// CheckURI checks the shape only: a mongodb+srv:// name is not looked up
// (commentflow.invalid cannot resolve), and the password is never echoed.
func TestCheckURI(t *testing.T) {
	for uri, ok := range map[string]bool{
		"mongodb://localhost:27017":                                    true,
		"mongodb://u:pw@h1:27017,h2:27017/?replicaSet=rs0":             true,
		"mongodb+srv://u:hunter2@commentflow.invalid/?w=1":             true,
		"mongodb+srv://commentflow.invalid:27017/":                     false,
		"mongodb+srv://a.invalid,b.invalid/":                           false,
		"mongodb+srv:///db":                                            false,
		"mongodb://u:hunter2@h:27017/?maxPoolSize=abc":                 false,
		"mongodb+srv://u:hunter2@commentflow.invalid/?maxPoolSize=abc": false,
		"mongodb://user:hunter2@/db":                                   false,
		"http://localhost:27017":                                       false,
	} {
		err := mongoconn.CheckURI(uri)
		if (err == nil) != ok {
			t.Errorf("CheckURI(%q) = %v, want ok=%v", uri, err, ok)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("CheckURI(%q) leaks the password: %v", uri, err)
		}
	}
	for name, ok := range map[string]bool{"commentflow": true, "comment.flow": false, "a/b": false, "": false, strings.Repeat("d", 64): false} {
		if err := mongoconn.CheckDatabase(name); (err == nil) != ok {
			t.Errorf("CheckDatabase(%q) = %v", name, err)
		}
	}
	for name, ok := range map[string]bool{"comments": true, "com$ments": false, "system.x": false, " ": false} {
		if err := mongoconn.CheckCollection(name); (err == nil) != ok {
			t.Errorf("CheckCollection(%q) = %v", name, err)
		}
	}
}

// Connect fails on a name that does not resolve, as a runtime error (no
// *config.Error: waiting may cure it), without the password.
func TestConnectFailureIsARuntimeError(t *testing.T) {
	c := mongoconn.Config{URI: "mongodb+srv://u:hunter2@commentflow.invalid/", Database: "d", Collection: "c"}
	if err := mongoconn.CheckURI(c.URI); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.Connect("test", nil)
	var ce *config.Error
	if err == nil || errors.As(err, &ce) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Connect = %v; want a runtime error without the password", err)
	}
}
