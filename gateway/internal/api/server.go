// Package api is the gateway's HTTP surface: the chi router with every
// route (routes.go), kin-openapi request validation against the embedded
// openapi.yaml, the comment handlers, RFC 9457 problem documents, ETags,
// metrics, CORS, Swagger UI and the ops endpoints.
//
// Each operation of the spec is served by validated (validate.go): it
// checks the request against the spec and decodes the parameters once into
// the operation's typed struct (listParams, itemParams), which is all the
// handler receives. Bounds and defaults are read from the loaded spec; the
// decoders check only what the spec cannot express.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commentflow/commentflow/gateway/internal/cursor"
	"github.com/commentflow/commentflow/gateway/internal/store"
	"github.com/commentflow/commentflow/platform/ops"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Options are the dependencies of the HTTP server.
type Options struct {
	// Collection holds the comments (required).
	Collection *mongo.Collection
	// Spec is the loaded contract; nil loads the embedded one.
	Spec *Spec
	// Cursors signs pagination cursors; nil uses a random per-process key.
	Cursors *cursor.Codec
	// Logger; nil discards.
	Logger *slog.Logger
	// Registry receives the gateway's metrics and is served at /metrics;
	// nil makes a fresh one (ops.NewRegistry).
	Registry *prometheus.Registry
	// Readiness is served at /readyz; a "mongodb" probe is added to it.
	// Nil makes a fresh one.
	Readiness *ops.Readiness
	// DBTimeout bounds each request's database work; 0 means 5s.
	DBTimeout time.Duration
	// CORSOrigins allowed for cross-origin requests ("*" = any); empty
	// disables CORS.
	CORSOrigins []string
	// Stream is the comment stream's source and limits.
	Stream StreamOptions
}

type server struct {
	spec      *Spec
	store     *store.Store
	cursors   *cursor.Codec
	log       *slog.Logger
	registry  *prometheus.Registry
	readiness *ops.Readiness
	metrics   *metrics
	dbTimeout time.Duration
	cors      []string

	stream        StreamOptions
	streamMetrics *streamMetrics
	openStreams   openStreams
}

// NewServer builds the gateway's http.Handler.
func NewServer(ctx context.Context, o Options) (http.Handler, error) {
	if o.Collection == nil {
		return nil, errors.New("api: no collection")
	}
	s := &server{
		spec: o.Spec, cursors: o.Cursors, log: o.Logger, registry: o.Registry,
		readiness: o.Readiness, dbTimeout: o.DBTimeout, cors: o.CORSOrigins,
		stream: o.Stream,
	}
	s.stream.defaults()
	if s.spec == nil {
		spec, err := LoadSpec(ctx)
		if err != nil {
			return nil, err
		}
		s.spec = spec
	}
	if s.cursors == nil {
		s.cursors = cursor.NewRandom()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.registry == nil {
		s.registry = ops.NewRegistry()
	}
	if s.readiness == nil {
		s.readiness = ops.NewReadiness()
	}
	if s.dbTimeout <= 0 {
		s.dbTimeout = 5 * time.Second
	}
	m, err := newMetrics(s.registry)
	if err != nil {
		return nil, fmt.Errorf("api: register metrics: %w", err)
	}
	s.metrics = m
	if s.streamMetrics, err = newStreamMetrics(s.registry); err != nil {
		return nil, fmt.Errorf("api: register metrics: %w", err)
	}
	s.store = store.New(o.Collection, m.observeDB)
	s.readiness.Probe("mongodb", func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, s.dbTimeout)
		defer cancel()
		return s.store.Ping(ctx)
	})
	return s.routes()
}
