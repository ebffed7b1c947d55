package mongoconn_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"

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

// Fatal tells what waiting cannot cure (refused credentials, a user
// without a privilege, an untrusted server certificate: each names
// MONGODB_URI, without the password) from what may heal.
func TestFatal(t *testing.T) {
	c := mongoconn.Config{URI: "mongodb://u:hunter2@db1:27017,db2:27017/", Database: "d", Collection: "c"}
	for _, tc := range []struct {
		err   error
		words string // "" when it may heal
	}{
		{mongo.CommandError{Code: 18, Name: "AuthenticationFailed", Message: "Authentication failed."}, "refused the credentials"},
		{fmt.Errorf("create index: %w", mongo.CommandError{Code: 18, Message: "auth u:hunter2"}), "refused the credentials"},
		{mongo.CommandError{Code: 13, Name: "Unauthorized", Message: "not authorized on d to execute command insert"}, "refused access"},
		{mongo.CommandError{Code: 91, Name: "ShutdownInProgress"}, ""},
		{mongo.CommandError{Code: 10107, Name: "NotWritablePrimary"}, ""},
		{context.DeadlineExceeded, ""},
		{errors.New("server selection error: connection refused"), ""},
	} {
		got := c.Fatal(tc.err)
		var ce *config.Error
		switch {
		case tc.words == "" && got != nil:
			t.Errorf("Fatal(%v) = %v; want nil (it may heal)", tc.err, got)
		case tc.words != "" && (!errors.As(got, &ce) || ce.Var != "MONGODB_URI" || !strings.Contains(got.Error(), tc.words) ||
			!strings.Contains(got.Error(), "db1:27017,db2:27017") || strings.Contains(got.Error(), "hunter2")):
			t.Errorf("Fatal(%v) = %v; want a MONGODB_URI error saying %q, with the hosts, without the password", tc.err, got, tc.words)
		}
	}

	// A server whose certificate no CA of this machine signed: the TLS
	// handshake fails, which no retry can change.
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake errors are expected
	srv.StartTLS()
	defer srv.Close()
	tc := mongoconn.Config{URI: "mongodb://u:hunter2@" + srv.Listener.Addr().String() + "/?tls=true&serverSelectionTimeoutMS=3000", Database: "d", Collection: "c"}
	client, _, err := tc.Connect("test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	perr := client.Ping(context.Background(), nil)
	got := tc.Fatal(perr)
	var ce *config.Error
	if perr == nil || !errors.As(got, &ce) || ce.Var != "MONGODB_URI" || !strings.Contains(got.Error(), "not trusted") || strings.Contains(got.Error(), "hunter2") {
		t.Errorf("Ping = %v, Fatal = %v; want a MONGODB_URI error saying the certificate is not trusted", perr, got)
	}
}
