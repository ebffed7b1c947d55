// Command devstack runs the whole of commentflow on a machine with nothing
// but Go: Kafka, the schema registry and MongoDB as in-process stand-ins that
// speak the real protocols, and the real producer, consumer and gateway
// binaries as processes, wired exactly as docker-compose.yml wires them.
//
//	go run ./devstack            # from the repository root
//	go run ./devstack --jaeger   # and Jaeger, with every service tracing to it
//	go run ./devstack --help
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/commentflow/commentflow/devstack/system"
	"github.com/commentflow/commentflow/schemas/names"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg system.Config
	fs.Float64Var(&cfg.Rate, "rate", 20, "producer events per second (0 = as fast as possible)")
	fs.IntVar(&cfg.ProducerCount, "count", 0, "events to produce, then the producer stops (0 = until Ctrl-C)")
	fs.BoolVar(&cfg.NoProducer, "no-producer", false, "start no producer (produce with your own tools)")
	fs.IntVar(&cfg.Consumers, "consumers", 3, "consumer replicas in the group")
	fs.IntVar(&cfg.KafkaPort, "kafka-port", 19092, "Kafka API port")
	fs.IntVar(&cfg.RegistryPort, "registry-port", 18081, "Schema Registry port")
	fs.IntVar(&cfg.MongoPort, "mongo-port", 27017, "MongoDB wire protocol port")
	fs.IntVar(&cfg.GatewayPort, "gateway-port", 8000, "gateway (REST API, Swagger UI) port")
	fs.StringVar(&cfg.DataDir, "data", ".devstack", "data folder: broker log, database, schemas, binaries; kept across runs")
	fs.BoolVar(&cfg.Fresh, "fresh", false, "delete the data folder first and start from nothing")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "services' LOG_LEVEL (debug, info, warn, error)")
	withJaeger := fs.Bool("jaeger", false, "also run Jaeger (built from tools/jaeger; the first build takes several minutes) and trace every service to it")
	jaegerUI := fs.Int("jaeger-ui-port", 16686, "Jaeger UI port (with --jaeger)")
	jaegerOTLP := fs.Int("jaeger-otlp-port", 4318, "Jaeger OTLP/HTTP port (with --jaeger)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: go run ./devstack [flags]\n\n"+
			"Runs commentflow without Docker: in-process Kafka (kfake), Schema Registry (srfake) and\n"+
			"MongoDB (FerretDB on SQLite), plus the producer, the consumers and the gateway as processes.\n"+
			"Ctrl-C stops the services gracefully, then the infrastructure.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case cfg.Rate < 0:
		return errors.New("--rate must be >= 0")
	case cfg.ProducerCount < 0:
		return errors.New("--count must be >= 0")
	case cfg.Consumers < 0:
		return errors.New("--consumers must be >= 0")
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("component", "devstack")
	cfg.Out, cfg.Log = stdout, log
	// The stand-ins (FerretDB above all) narrate every connection at info
	// and dump whole wire messages at warn for commands they lack (such as
	// the driver's endSessions at disconnect): only their errors are shown.
	cfg.InfraLog = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError})).With("component", "infra")

	start := time.Now()
	var j *jaeger
	if *withJaeger {
		var err error
		if j, err = startJaeger(ctx, cfg.DataDir, *jaegerUI, *jaegerOTLP, stdout, log); err != nil {
			return err
		}
		defer j.stop() // last: the services' final spans are flushed to it
		cfg.Env = append(cfg.Env, j.env()...)
	}
	sys, err := system.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		log.Info("stopping: services first, then the infrastructure")
		sys.Stop()
		log.Info("stopped")
	}()
	fmt.Fprint(stderr, banner(sys, cfg, time.Since(start)))
	if j != nil {
		fmt.Fprintf(stderr, "  Jaeger            %s   (built in %s; the first build takes about 9 minutes of CPU, later ones seconds)\n"+
			"  Follow a comment  its trace_id from the API -> curl -s %s/api/traces/<trace_id>\n"+
			"                    (Jaeger built from the Go module has no UI pages, only its query API; compose's image has the UI)\n\n",
			j.ui, j.buildTook.Round(time.Second), j.ui)
	}
	<-ctx.Done()
	return nil
}

func banner(sys *system.System, cfg system.Config, took time.Duration) string {
	kafka, registry, mongo, gw := sys.Infra.KafkaAddr(), sys.Infra.RegistryURL(), sys.Infra.MongoURI(), sys.GatewayURL()
	return fmt.Sprintf(`
commentflow devstack is up (%s). Data in %s — Ctrl-C to stop.

  Swagger UI        %[3]s/api/openapi
  REST API          %[3]s/api/v1/comments?limit=5
  Live comments     curl -N '%[3]s/api/v1/comments/stream'   (Server-Sent Events; ?post_id=<uuid> for one post)
  OpenAPI spec      %[3]s/api/openapi.json
  Kafka             %[4]s        topics: %[10]s (%[11]d partitions), %[12]s
  Schema Registry   %[5]s   subject: %[13]s
  MongoDB           %[6]s  database %[14]s, collection %[15]s
  Services          producer (%[7]g events/s), %[8]d consumers in group %[16]s, gateway

Inspect:
  curl -s '%[3]s/api/v1/comments?limit=3'
  curl -N '%[3]s/api/v1/comments/stream?post_id=<uuid>'
  rpk topic consume %[10]s -X brokers=%[4]s -X registry.hosts=%[9]s --use-schema-registry=value -o :end -n 5
  kcat -b %[4]s -C -t %[10]s -s value=avro -r %[5]s -c 5 -e    (a kcat built with Avro support)
  mongosh '%[6]s%[14]s' --eval 'db.%[15]s.find().sort({created_at: -1}).limit(3)'

`, took.Round(100*time.Millisecond), cfg.DataDir, gw, kafka, registry, mongo, cfg.Rate, cfg.Consumers, registry[len("http://"):],
		names.Topic, names.Partitions, names.DLQTopic, names.Subject, names.Database, names.Collection, names.ConsumerGroup)
}
