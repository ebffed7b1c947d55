package api

import (
	"net/http"

	"github.com/getkin/kin-openapi/routers"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/commentflow/commentflow/platform/ops"
)

// routes is every route of the gateway, in one place. Routes under
// /api/v1 are operations of openapi.yaml and are validated against it
// before their handler runs.
func (s *server) routes() (http.Handler, error) {
	r := chi.NewRouter()
	r.Use(s.instrument)
	if len(s.cors) > 0 {
		r.Use(cors(s.cors))
	}
	r.Use(middleware.GetHead) // HEAD is answered like GET, without the body
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		notFound(w, r, "No resource at "+safeText(r.URL.EscapedPath(), 200)+".")
	})
	r.MethodNotAllowed(methodNotAllowed)

	// The API, one line per operation of openapi.yaml: its route in the
	// spec, validated and decoded into typed parameters for its handler.
	for _, op := range []struct {
		path    string
		handler func(*routers.Route) (http.Handler, error)
	}{
		{listPath, func(route *routers.Route) (http.Handler, error) {
			decode, err := s.listDecoder(route)
			return validated(s, route, decode, s.listComments), err
		}},
		{streamPath, func(route *routers.Route) (http.Handler, error) {
			decode, err := s.streamDecoder(route)
			return validated(s, route, decode, s.streamComments), err
		}},
		{itemPath, func(route *routers.Route) (http.Handler, error) {
			decode, err := itemDecoder(route)
			return validated(s, route, decode, s.getComment), err
		}},
	} {
		route, err := s.spec.Route(http.MethodGet, op.path)
		if err != nil {
			return nil, err
		}
		h, err := op.handler(route)
		if err != nil {
			return nil, err
		}
		r.Method(http.MethodGet, op.path, h)
	}

	// The contract and its UI.
	index, asset := swaggerUI()
	r.Method(http.MethodGet, docsPath, index)
	r.Method(http.MethodGet, docsPath+"/", index)
	r.Method(http.MethodGet, docsPath+"/{file}", asset)
	r.Method(http.MethodGet, specJSONPath, specHandler(jsonType, s.spec.JSON))
	r.Method(http.MethodGet, specYAMLPath, specHandler("application/yaml", s.spec.YAML))
	r.Method(http.MethodGet, "/", http.RedirectHandler(docsPath, http.StatusFound))

	// Operations.
	r.Method(http.MethodGet, "/healthz", ops.HealthzHandler())
	r.Method(http.MethodGet, "/readyz", ops.ReadyzHandler(s.readiness))
	r.Method(http.MethodGet, "/metrics", ops.MetricsHandler(s.registry))
	return r, nil
}
