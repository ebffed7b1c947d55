package api

import (
	"context"
	"encoding/json"
	"fmt"
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
			SkipSettingDefaults: true, // the handlers apply the defaults to typed values
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
