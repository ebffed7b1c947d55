package api

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/commentflow/commentflow/gateway"
)

// Spec is the loaded and validated API contract.
type Spec struct {
	Doc  *openapi3.T
	JSON []byte // served at /api/openapi.json
	YAML []byte // served at /api/openapi.yaml

	filterOpts *openapi3filter.Options
}

var (
	uuidRE     = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	dateTimeRE = regexp.MustCompile(openapi3.FormatOfStringDateTime)
)

// LoadSpec parses and validates the embedded openapi.yaml. The gateway
// refuses to start when it fails.
func LoadSpec(ctx context.Context) (*Spec, error) {
	return loadSpec(ctx, gateway.OpenAPIYAML)
}

func loadSpec(ctx context.Context, yaml []byte) (*Spec, error) {
	loader := openapi3.NewLoader()
	loader.Context = ctx
	doc, err := loader.LoadFromData(yaml)
	if err != nil {
		return nil, fmt.Errorf("load openapi.yaml: %w", err)
	}
	if err := doc.Validate(ctx, openapi3.EnableExamplesValidation()); err != nil {
		return nil, fmt.Errorf("validate openapi.yaml: %w", err)
	}
	// Formats are checked exactly as the handlers parse them, scoped to
	// this document (no global kin-openapi state).
	doc.SetStringFormatValidator("uuid", openapi3.NewCallbackValidator(func(v string) error {
		if !uuidRE.MatchString(v) {
			return formatError("must be a UUID (8-4-4-4-12 hexadecimal digits)")
		}
		return nil
	}))
	doc.SetStringFormatValidator("date-time", openapi3.NewCallbackValidator(func(v string) error {
		if _, err := parseDateTime(v); err != nil {
			return err
		}
		return nil
	}))
	js, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode openapi.json: %w", err)
	}
	if doc.Security != nil && len(doc.Security) == 0 {
		// kin-openapi drops an empty security list, but `security: []`
		// says something: no operation needs authentication.
		if js, err = withEmptySecurity(js); err != nil {
			return nil, fmt.Errorf("encode openapi.json: %w", err)
		}
	}
	return &Spec{
		Doc:  doc,
		JSON: js,
		YAML: yaml,
		filterOpts: &openapi3filter.Options{
			MultiError:          true,
			SkipSettingDefaults: true, // the decoders apply the spec's defaults to typed values
			// Reasons must not echo values back (they may be huge).
			SchemaValidationOptions: append(doc.GetSchemaValidationOptions(), openapi3.DisableSchemaErrorDetails()),
		},
	}, nil
}

// withEmptySecurity adds "security": [] to a JSON document.
func withEmptySecurity(js []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, err
	}
	m["security"] = json.RawMessage("[]")
	return json.MarshalIndent(m, "", "  ")
}

// parseDateTime parses an RFC 3339 date-time as the spec's format accepts
// it: the kin-openapi pattern (4-digit year, upper-case T and Z) and a
// real calendar instant.
func parseDateTime(v string) (time.Time, error) {
	if !dateTimeRE.MatchString(v) {
		return time.Time{}, formatError("must be an RFC 3339 date-time like 2025-01-02T15:04:05Z")
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, formatError("must be a valid RFC 3339 date-time (no such day, hour or second)")
	}
	return t, nil
}

// formatError is what the spec's format validators return: a reason
// that reads well after the parameter's name.
type formatError string

func (e formatError) Error() string { return string(e) }

// FilterOptions are the openapi3filter options the gateway validates
// requests with; tests validate responses with them too.
func (s *Spec) FilterOptions() *openapi3filter.Options { return s.filterOpts }

// Route returns the operation of the spec for method and path (a path
// template such as /api/v1/comments/{id}).
func (s *Spec) Route(method, path string) (*routers.Route, error) {
	item := s.Doc.Paths.Value(path)
	if item == nil {
		return nil, fmt.Errorf("openapi.yaml has no path %s", path)
	}
	op := item.GetOperation(method)
	if op == nil {
		return nil, fmt.Errorf("openapi.yaml has no %s %s", method, path)
	}
	return &routers.Route{Spec: s.Doc, Path: path, PathItem: item, Method: method, Operation: op}, nil
}

// Operations lists every "METHOD path" the spec documents.
func (s *Spec) Operations() []string {
	var out []string
	for _, path := range s.Doc.Paths.InMatchingOrder() {
		for method := range s.Doc.Paths.Value(path).Operations() {
			out = append(out, method+" "+path)
		}
	}
	return out
}

// queryParams returns the names of the query parameters of a route.
func queryParams(route *routers.Route) map[string]bool {
	out := map[string]bool{}
	for _, list := range []openapi3.Parameters{route.PathItem.Parameters, route.Operation.Parameters} {
		for _, p := range list {
			if p.Value != nil && p.Value.In == openapi3.ParameterInQuery {
				out[p.Value.Name] = true
			}
		}
	}
	return out
}

// param returns the parameter of route declared in in with name.
func param(route *routers.Route, in, name string) (*openapi3.Parameter, error) {
	for _, list := range []openapi3.Parameters{route.Operation.Parameters, route.PathItem.Parameters} {
		if p := list.GetByInAndName(in, name); p != nil {
			return p, nil
		}
	}
	return nil, fmt.Errorf("openapi.yaml: %s %s has no %s parameter %q", route.Method, route.Path, in, name)
}

// declared checks that route declares every named parameter in in, so a
// decoder never reads a parameter the spec does not validate.
func declared(route *routers.Route, in string, names ...string) error {
	for _, name := range names {
		if _, err := param(route, in, name); err != nil {
			return err
		}
	}
	return nil
}

// schemaDefault returns the schema and the declared default of a query
// parameter of route.
func schemaDefault(route *routers.Route, name string) (*openapi3.Schema, any, error) {
	p, err := param(route, openapi3.ParameterInQuery, name)
	if err != nil {
		return nil, nil, err
	}
	if p.Schema == nil || p.Schema.Value == nil {
		return nil, nil, fmt.Errorf("openapi.yaml: parameter %q has no schema", name)
	}
	if p.Schema.Value.Default == nil {
		return nil, nil, fmt.Errorf("openapi.yaml: parameter %q has no default", name)
	}
	return p.Schema.Value, p.Schema.Value.Default, nil
}

// intDefault returns the default of an integer query parameter of route.
func intDefault(route *routers.Route, name string) (int64, error) {
	schema, def, err := schemaDefault(route, name)
	if err != nil {
		return 0, err
	}
	f, ok := def.(float64)
	if !schema.Type.Is(openapi3.TypeInteger) || !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, fmt.Errorf("openapi.yaml: parameter %q must be an integer with an integer default", name)
	}
	return int64(f), nil
}

// boolDefault returns the default of a boolean query parameter of route.
func boolDefault(route *routers.Route, name string) (bool, error) {
	schema, def, err := schemaDefault(route, name)
	if err != nil {
		return false, err
	}
	b, ok := def.(bool)
	if !schema.Type.Is(openapi3.TypeBoolean) || !ok {
		return false, fmt.Errorf("openapi.yaml: parameter %q must be a boolean with a boolean default", name)
	}
	return b, nil
}
