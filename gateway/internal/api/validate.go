package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/go-chi/chi/v5"
)

// input is a request's parameters as validated checked them against the
// spec: the query (one value per declared name) and the path parameters,
// unescaped. Only decoders read it.
type input struct {
	query  url.Values
	path   map[string]string
	header http.Header // the request's; only declared header parameters are read
}

// decoder turns an operation's validated input into its typed parameters,
// and checks what the spec cannot express (relations between parameters,
// cursor signatures). It runs once per request, inside validated; each
// error names a parameter.
type decoder[P any] func(in input) (P, []ParameterError)

// validated is the handler of one operation of the spec. Before handle
// runs, the query string is parsed strictly (malformed pairs, unknown and
// repeated parameters are errors, which kin-openapi does not report by
// itself), openapi3filter checks every declared parameter against its
// schema (bounds, patterns, formats: the spec is their only home), and
// decode turns the checked strings into the typed P. Any error answers 400
// with every offending parameter; handle only ever sees a typed, valid P
// and never reads the query or the path itself.
func validated[P any](s *server, route *routers.Route, decode decoder[P], handle func(http.ResponseWriter, *http.Request, P)) http.Handler {
	known := queryParams(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, errs := s.validate(r, route, known)
		if len(errs) > 0 {
			invalidParameters(w, r, errs)
			return
		}
		p, errs := decode(in)
		if len(errs) > 0 {
			invalidParameters(w, r, errs)
			return
		}
		handle(w, r, p)
	})
}

// validate parses the request's parameters and checks them against route.
func (s *server) validate(r *http.Request, route *routers.Route, known map[string]bool) (input, []ParameterError) {
	query, errs := parseQuery(r.URL.RawQuery, known)
	path, perrs := pathParams(r)
	errs = append(errs, perrs...)
	err := openapi3filter.ValidateRequest(r.Context(), &openapi3filter.RequestValidationInput{
		Request:     r,
		PathParams:  path,
		QueryParams: query,
		Route:       route,
		Options:     s.spec.filterOpts,
	})
	if err != nil {
		// A parameter already reported as malformed is not reported
		// again as missing.
		seen := map[string]bool{}
		for _, e := range errs {
			seen[e.In+" "+e.Parameter] = true
		}
		for _, e := range convertValidationError(err) {
			if !seen[e.In+" "+e.Parameter] {
				errs = append(errs, e)
			}
		}
	}
	return input{query: query, path: path, header: r.Header}, errs
}

// parseQuery parses a raw query string strictly. It returns the known
// parameters (one value each) and an error for every malformed pair,
// unknown name and repeated name.
func parseQuery(raw string, known map[string]bool) (url.Values, []ParameterError) {
	q := url.Values{}
	var errs []ParameterError
	reported := map[string]bool{}
	report := func(name, reason string) {
		name = safeText(name, 64)
		if reported[name+"\x00"+reason] {
			return
		}
		reported[name+"\x00"+reason] = true
		errs = append(errs, ParameterError{Parameter: name, In: "query", Reason: reason})
	}
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil {
			report(rawKey, "name is not validly percent-encoded")
			continue
		}
		if strings.Contains(pair, ";") {
			report(key, "contains ';', which is not a separator here; use '&' or encode it as %3B")
			continue
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			report(key, "value is not validly percent-encoded")
			continue
		}
		if !utf8.ValidString(key) || !utf8.ValidString(value) {
			report(key, "is not valid UTF-8")
			continue
		}
		if !known[key] {
			report(key, "unknown query parameter")
			continue
		}
		if _, dup := q[key]; dup {
			report(key, "given more than once")
			continue
		}
		q[key] = []string{value}
	}
	return q, errs
}

// pathParams returns the route's path parameters, unescaped.
func pathParams(r *http.Request) (map[string]string, []ParameterError) {
	rctx := chi.RouteContext(r.Context())
	if rctx == nil || len(rctx.URLParams.Keys) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(rctx.URLParams.Keys))
	var errs []ParameterError
	for i, k := range rctx.URLParams.Keys {
		v, err := url.PathUnescape(rctx.URLParams.Values[i])
		if err != nil {
			errs = append(errs, ParameterError{Parameter: k, In: "path", Reason: "not validly percent-encoded"})
			continue
		}
		out[k] = v
	}
	return out, errs
}

// convertValidationError turns openapi3filter's errors into one entry per
// offending parameter.
func convertValidationError(err error) []ParameterError {
	//nolint:errorlint // the MultiError of the parameters itself, not one nested in a RequestError (errors.As would find that too)
	if me, ok := err.(openapi3.MultiError); ok {
		var out []ParameterError
		for _, e := range me {
			out = append(out, convertValidationError(e)...)
		}
		return out
	}
	var re *openapi3filter.RequestError
	if !errors.As(err, &re) || re.Parameter == nil {
		// Not about a parameter (there is no request body in this API):
		// still a client error, reported against the request.
		return []ParameterError{{Parameter: "(request)", In: "query", Reason: err.Error()}}
	}
	reasons := reasonsOf(re, re.Parameter)
	return []ParameterError{{Parameter: re.Parameter.Name, In: re.Parameter.In, Reason: strings.Join(reasons, "; ")}}
}

// reasonsOf explains a parameter's error in words that do not echo the
// value.
func reasonsOf(re *openapi3filter.RequestError, p *openapi3.Parameter) []string {
	switch {
	case errors.Is(re.Err, openapi3filter.ErrInvalidRequired):
		return []string{"is required"}
	case errors.Is(re.Err, openapi3filter.ErrInvalidEmptyValue):
		return []string{"must not be empty"}
	}
	var pe *openapi3filter.ParseError
	if errors.As(re.Err, &pe) {
		return []string{"must be " + typeName(p)}
	}
	var me openapi3.MultiError
	if errors.As(re.Err, &me) {
		var out []string
		for _, e := range me {
			out = append(out, schemaReason(e))
		}
		return out
	}
	if re.Err != nil {
		return []string{schemaReason(re.Err)}
	}
	if re.Reason != "" {
		return []string{re.Reason}
	}
	return []string{"is invalid"}
}

func schemaReason(err error) string {
	var se *openapi3.SchemaError
	if errors.As(err, &se) {
		switch se.SchemaField {
		case "format":
			var fe formatError
			if errors.As(se, &fe) {
				return fe.Error()
			}
			return "must be in the format " + se.Schema.Format
		case "pattern":
			if r, ok := se.Schema.Extensions["x-pattern-reason"].(string); ok {
				return r
			}
			return fmt.Sprintf("must match the pattern %s", se.Schema.Pattern)
		}
		if se.Reason != "" {
			return se.Reason
		}
	}
	return err.Error()
}

func typeName(p *openapi3.Parameter) string {
	if p.Schema != nil && p.Schema.Value != nil {
		switch {
		case p.Schema.Value.Type.Is(openapi3.TypeInteger):
			return "an integer"
		case p.Schema.Value.Type.Is(openapi3.TypeBoolean):
			return "a boolean (true or false)"
		case p.Schema.Value.Type.Is(openapi3.TypeNumber):
			return "a number"
		}
	}
	return "valid"
}
