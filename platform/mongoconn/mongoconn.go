// Package mongoconn is the MongoDB connection every service that stores or
// reads comments shares: the MONGODB_URI, MONGODB_DATABASE and
// MONGODB_COLLECTION settings, declared once with one validation (the
// shape only: parsing never resolves DNS, so a mongodb+srv:// lookup that
// fails is a runtime failure, retried, not bad configuration), the
// password masked in messages (config.MaskPassword), and Connect, whose
// failures are runtime errors and whose clients trace their commands when
// the service traces (platform/telemetry's command monitor).
package mongoconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/commentflow/commentflow/platform/backoff"
	"github.com/commentflow/commentflow/platform/config"
	"github.com/commentflow/commentflow/platform/telemetry"
)

// DefaultURI is MONGODB_URI's default.
const DefaultURI = "mongodb://localhost:27017"

// Config is the connection and the collection of the comments.
type Config struct {
	URI        string
	Database   string
	Collection string
}

// Declare adds MONGODB_URI, MONGODB_DATABASE and MONGODB_COLLECTION to s,
// with the given default database and collection (schemas/names).
func (c *Config) Declare(s *config.Set, database, collection string) {
	s.String(&c.URI, "MONGODB_URI", DefaultURI,
		"MongoDB connection string, mongodb:// or mongodb+srv:// (auth and TLS options as the Go driver supports)", CheckURI)
	s.String(&c.Database, "MONGODB_DATABASE", database, "database of the comments collection", CheckDatabase)
	s.String(&c.Collection, "MONGODB_COLLECTION", collection, "collection the comments are stored in", CheckCollection)
}

// CheckURI checks the shape of a connection string without resolving
// anything and without echoing the password.
func CheckURI(uri string) error {
	check := uri
	switch {
	case strings.HasPrefix(uri, "mongodb://"):
	case strings.HasPrefix(uri, "mongodb+srv://"):
		// The driver's parser would look up the SRV and TXT records. The
		// same text as a mongodb:// string has the same options to check;
		// what is particular to SRV is one host name without a port.
		u, err := url.Parse(uri)
		if err != nil || u.Host == "" {
			return errors.New("not a valid MongoDB connection string: mongodb+srv:// needs a host name")
		}
		if u.Port() != "" || strings.Contains(u.Host, ",") {
			return errors.New("not a valid MongoDB connection string: mongodb+srv:// takes one host name without a port")
		}
		check = "mongodb://" + strings.TrimPrefix(uri, "mongodb+srv://")
	default:
		return errors.New("must start with mongodb:// or mongodb+srv://")
	}
	if _, err := connstring.ParseAndValidate(check); err != nil {
		return fmt.Errorf("not a valid MongoDB connection string: %s", config.MaskPassword(err.Error(), uri))
	}
	return nil
}

// CheckDatabase applies MongoDB's database name rules.
func CheckDatabase(name string) error {
	switch {
	case name == "":
		return errors.New("must not be empty")
	case len(name) > 63:
		return errors.New("must be at most 63 bytes long")
	case strings.ContainsAny(name, "/\\. \"$*<>:|?\x00"):
		return fmt.Errorf("%q contains a character MongoDB does not allow in database names", name)
	}
	return nil
}

// CheckCollection applies MongoDB's collection name rules.
func CheckCollection(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return errors.New("must not be empty")
	case strings.ContainsAny(name, "$\x00"):
		return fmt.Errorf("%q contains $ or a null character", name)
	case strings.HasPrefix(name, "system."):
		return fmt.Errorf("%q is in the reserved system. namespace", name)
	}
	return nil
}

// Connect makes a client for c.URI (with the service's app name and any
// further options) and returns c's collection. With tel on, the client
// makes a span per command run under a span (tel.MongoMonitor). The URI
// was checked when the configuration was read, so a failure here (a
// mongodb+srv:// name that does not resolve yet) is a runtime error: retry
// it.
func (c *Config) Connect(appName string, tel *telemetry.Telemetry, opts ...*options.ClientOptions) (*mongo.Client, *mongo.Collection, error) {
	o := options.Client().ApplyURI(c.URI).SetAppName(appName)
	if mon := tel.MongoMonitor(); mon != nil {
		o.SetMonitor(mon)
	}
	client, err := mongo.Connect(append([]*options.ClientOptions{o}, opts...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("mongodb: %s", config.MaskPassword(err.Error(), c.URI))
	}
	return client, client.Database(c.Database).Collection(c.Collection), nil
}

// WaitReady calls probe with backoff until it succeeds, for at most
// timeout (STARTUP_TIMEOUT), with c.Fatal's classification: the policy of
// kafkaconn.Config.WaitReady, for MongoDB.
func (c *Config) WaitReady(ctx context.Context, log *slog.Logger, timeout time.Duration, probe func(context.Context) error) error {
	return backoff.WaitReady(ctx, log, "mongodb", timeout, c.Fatal, probe)
}

// MongoDB's error codes for refused credentials and for a user without
// the privileges a command needs.
const (
	codeAuthenticationFailed = 18
	codeUnauthorized         = 13
)

// Fatal classifies a MongoDB failure: it returns the error naming
// MONGODB_URI (which holds the credentials and the TLS settings) when
// waiting cannot cure it (the credentials are refused, the user lacks a
// privilege, the server's certificate is not trusted), and nil when it
// may heal (unreachable, not elected yet, a name that does not resolve
// yet). The message never holds the password.
func (c *Config) Fatal(err error) error {
	// A server that fails its monitor's handshake (TLS) is not selected:
	// the cause is in the topology the selection error describes.
	var sel topology.ServerSelectionError
	if errors.As(err, &sel) {
		for _, srv := range sel.Desc.Servers {
			if srv.LastError != nil {
				if ferr := c.Fatal(srv.LastError); ferr != nil {
					return ferr
				}
			}
		}
	}
	// The host list is parsed only for an error returned (this runs on
	// every retried startup probe).
	fatal := func(what string) error {
		return config.Errorf("MONGODB_URI", what, c.hosts(), config.MaskPassword(err.Error(), c.URI))
	}
	var se mongo.ServerError
	if errors.As(err, &se) {
		switch {
		case se.HasErrorCode(codeAuthenticationFailed):
			return fatal("MongoDB at %s refused the credentials: %s")
		case se.HasErrorCode(codeUnauthorized):
			return fatal("MongoDB at %s refused access to this user: %s")
		}
	}
	if config.UntrustedCert(err) {
		return fatal("the certificate of MongoDB at %s is not trusted (tlsCAFile): %s")
	}
	return nil
}

// hosts is the URI's host list, for messages (no credentials).
func (c *Config) hosts() string {
	cs, err := connstring.Parse(c.URI)
	if err != nil || len(cs.Hosts) == 0 {
		return "MONGODB_URI"
	}
	return strings.Join(cs.Hosts, ",")
}
