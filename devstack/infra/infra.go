// Package infra runs commentflow's infrastructure in-process, on loopback, with
// stand-ins that speak the real wire protocols: a Kafka cluster (kfake), a
// Confluent-compatible schema registry (srfake) and a MongoDB-wire database
// (embedded FerretDB on SQLite).
//
// Service tests use it in a line or two:
//
//	st := infra.StartT(t, infra.Options{})
//	brokers, registry, mongo := st.KafkaAddr(), st.RegistryURL(), st.MongoURI()
//
// It is linked only by tests and by `go run ./devstack`, never by a service
// binary.
//
// Known FerretDB v1 limits: no index is used (sorted and filtered finds scan
// the collection), and a createIndexes command with several indexes fails
// (create them one at a time).
package infra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/commentflow/commentflow/schemas/names"
)

// Options says what to start. The zero value starts everything on random
// loopback ports with the default topics in a temporary folder.
type Options struct {
	// KafkaPort, RegistryPort and MongoPort are loopback ports; 0 picks a
	// free one.
	KafkaPort, RegistryPort, MongoPort int

	// Host is the address to listen on; default 127.0.0.1.
	Host string

	// Topics to create, with their partition counts. Nil means
	// DefaultTopics.
	Topics map[string]int32

	// DataDir holds the broker's log (kfake DataDir) and the database's
	// SQLite files. Empty means a temporary folder removed by Close; a
	// given folder is kept, so a restart continues where it stopped.
	DataDir string

	// Logger receives the stand-ins' own logs; nil discards them.
	Logger *slog.Logger
}

// ferretMu serializes ferretdb.New, which writes a package-level variable
// (the version's Package field): two stacks starting at once, or a restart
// beside another start, would race on it.
var ferretMu sync.Mutex

// DefaultTopics are the topics of the product (schemas/names): the
// comments topic and its dead-letter topic, with their partition counts.
func DefaultTopics() map[string]int32 {
	return map[string]int32{names.Topic: names.Partitions, names.DLQTopic: names.DLQPartitions}
}

// Stack is running infrastructure. Close stops it.
type Stack struct {
	// Kafka is the broker, exposed for fault injection (Fault, Control).
	Kafka *kfake.Cluster
	// Registry is the schema registry, exposed for seeding and
	// interceptors.
	Registry *srfake.Registry

	opts        Options
	registrySrv *http.Server
	registryLn  net.Listener
	registryErr chan error
	persistStop context.CancelFunc
	persistDone chan struct{}

	mu        sync.Mutex
	mongo     *ferretdb.FerretDB
	mongoStop context.CancelFunc
	mongoDone chan struct{}
	mongoAddr string

	tempDir string
}

// Start starts the Kafka cluster, the schema registry and the database, and
// returns once all three accept connections.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Topics == nil {
		opts.Topics = DefaultTopics()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Stack{opts: opts}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	if s.opts.DataDir == "" {
		s.tempDir, err = os.MkdirTemp("", "commentflow-infra-")
		if err != nil {
			return nil, fmt.Errorf("infra: temp dir: %w", err)
		}
		s.opts.DataDir = s.tempDir
	}
	for _, sub := range []string{"kafka", "mongo"} {
		if err := os.MkdirAll(filepath.Join(s.opts.DataDir, sub), 0o750); err != nil {
			return nil, fmt.Errorf("infra: data dir: %w", err)
		}
	}

	if err := s.startKafka(); err != nil {
		return nil, err
	}
	if err := s.startRegistry(); err != nil {
		return nil, err
	}
	if err := s.StartMongo(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// StartT starts a Stack for a test, fails the test if it cannot, and closes
// it when the test ends.
func StartT(t testing.TB, opts Options) *Stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("start infrastructure: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Main runs a test binary against one Stack shared by its tests: it starts
// the Stack, calls setup (seeding, connecting), runs the tests and closes
// the Stack. setup may return a teardown, run after the tests (nil is
// fine). In TestMain: os.Exit(infra.Main(m, infra.Options{}, setup)).
func Main(m *testing.M, opts Options, setup func(ctx context.Context, st *Stack) (teardown func(), err error)) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := Start(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start infrastructure:", err)
		return 1
	}
	defer st.Close()
	if setup != nil {
		teardown, err := setup(ctx, st)
		if teardown != nil {
			defer teardown()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "set up the tests:", err)
			return 1
		}
	}
	return m.Run()
}

func (s *Stack) startKafka() error {
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(s.opts.KafkaPort),
		kfake.DataDir(filepath.Join(s.opts.DataDir, "kafka")),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.KafkaPort)))
		}),
	}
	for topic, partitions := range s.opts.Topics {
		kopts = append(kopts, kfake.SeedTopics(partitions, topic))
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return fmt.Errorf("infra: start kafka on port %d: %w", s.opts.KafkaPort, err)
	}
	s.Kafka = c
	return nil
}

func (s *Stack) startRegistry() error {
	s.Registry = srfake.NewRegistry()
	if err := s.loadRegistry(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.RegistryPort)))
	if err != nil {
		return fmt.Errorf("infra: start schema registry on port %d: %w", s.opts.RegistryPort, err)
	}
	s.registryLn = ln
	s.registrySrv = &http.Server{Handler: s.Registry.Handler(), ReadHeaderTimeout: 5 * time.Second}
	s.registryErr = make(chan error, 1)
	go func() { s.registryErr <- s.registrySrv.Serve(ln) }()
	if s.tempDir == "" { // a kept DataDir: save the schemas beside the records
		ctx, stop := context.WithCancel(context.Background())
		s.persistStop, s.persistDone = stop, make(chan struct{})
		go s.persistRegistry(ctx, s.persistDone)
	}
	return nil
}

// StartMongo starts the database (again), on the same port and data as
// before a StopMongo. Start calls it.
func (s *Stack) StartMongo(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mongo != nil {
		return nil
	}
	port := s.opts.MongoPort
	if s.mongoAddr != "" { // a restart keeps the address clients know
		_, p, _ := net.SplitHostPort(s.mongoAddr)
		port, _ = strconv.Atoi(p)
	}
	if port == 0 {
		var err error
		if port, err = FreePort(s.opts.Host); err != nil {
			return fmt.Errorf("infra: start mongo: %w", err)
		}
	}
	addr := net.JoinHostPort(s.opts.Host, strconv.Itoa(port))

	dir := filepath.Join(s.opts.DataDir, "mongo") + string(filepath.Separator)
	var (
		f   *ferretdb.FerretDB
		err error
	)
	// A port just released by StopMongo can take a moment to be free again.
	for deadline := time.Now().Add(10 * time.Second); ; {
		ferretMu.Lock()
		f, err = ferretdb.New(&ferretdb.Config{
			Listener:  ferretdb.ListenerConfig{TCP: addr},
			Handler:   "sqlite",
			SQLiteURL: "file:" + dir,
			Logger:    s.opts.Logger,
		})
		ferretMu.Unlock()
		if err == nil || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("infra: start mongo on %s: %w", addr, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("infra: start mongo on %s: %w", addr, err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(runCtx)
	}()
	if err := waitTCP(ctx, addr); err != nil {
		stop()
		<-done
		return fmt.Errorf("infra: mongo did not come up on %s: %w", addr, err)
	}
	s.mongo, s.mongoStop, s.mongoDone, s.mongoAddr = f, stop, done, addr
	return nil
}

// StopMongo stops the database, keeping its data and address, so that
// StartMongo brings it back (for outage tests).
func (s *Stack) StopMongo(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mongo == nil {
		return nil
	}
	s.mongoStop()
	select {
	case <-s.mongoDone:
	case <-ctx.Done():
		return fmt.Errorf("infra: stop mongo: %w", ctx.Err())
	}
	s.mongo = nil
	return nil
}

// KafkaAddr is the broker's host:port.
func (s *Stack) KafkaAddr() string { return s.Kafka.ListenAddrs()[0] }

// RegistryURL is the schema registry's base URL.
func (s *Stack) RegistryURL() string { return "http://" + s.registryLn.Addr().String() }

// MongoURI is the database's connection string; it stays the same across
// StopMongo/StartMongo.
func (s *Stack) MongoURI() string { return "mongodb://" + s.mongoAddr + "/" }

// DataDir is the folder holding the broker's and the database's data.
func (s *Stack) DataDir() string { return s.opts.DataDir }

// Close stops everything and removes a temporary data folder. It is safe to
// call more than once.
func (s *Stack) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = s.StopMongo(ctx)
	if s.persistStop != nil {
		s.persistStop()
		<-s.persistDone
		s.persistStop = nil
	}
	if s.registrySrv != nil {
		_ = s.registrySrv.Shutdown(ctx)
		if err := <-s.registryErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.opts.Logger.Warn("schema registry stopped", "err", err)
		}
		s.registrySrv = nil
	}
	if s.Registry != nil {
		s.Registry.Close()
	}
	if s.Kafka != nil {
		s.Kafka.Close()
		s.Kafka = nil
	}
	if s.tempDir != "" {
		_ = os.RemoveAll(s.tempDir)
		s.tempDir = ""
	}
}

// FreePort is a loopback port free at the time of the call.
func FreePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		return 0, err
	}
	return port, nil
}

func waitTCP(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: time.Second}
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return c.Close()
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}
