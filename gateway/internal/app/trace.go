package app

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"

	"github.com/commentflow/commentflow/platform/telemetry"
)

// traced wraps h in otelhttp (a server span per request, with the HTTP
// semantic conventions, continuing a caller's traceparent) and gives every
// response a traceparent header naming that span, so that a client can
// find its request's trace. With tracing off it returns h unchanged.
func traced(tel *telemetry.Telemetry, h http.Handler) http.Handler {
	if !tel.On() {
		return h
	}
	prop := tel.Propagator()
	withHeader := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Set before the handler writes the status: headers set later
		// are not sent.
		prop.Inject(r.Context(), propagation.HeaderCarrier(w.Header()))
		h.ServeHTTP(w, r)
	})
	return otelhttp.NewHandler(withHeader, "gateway",
		otelhttp.WithTracerProvider(tel.TracerProvider()),
		otelhttp.WithPropagators(prop),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return r.Method + " " + r.URL.Path
		}))
}
