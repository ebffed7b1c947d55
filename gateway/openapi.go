// Package gateway holds the contract of commentflow's read-only REST API:
// openapi.yaml, embedded so the binary serves and enforces exactly the
// document that is in the repository.
//
// The service itself lives in internal/ (api: router, validation, handlers;
// store: MongoDB queries; cursor: signed keyset cursors; app: configuration
// and the process lifecycle) and cmd/gateway.
package gateway

import _ "embed"

// OpenAPIYAML is gateway/openapi.yaml, the OpenAPI 3.0 document of the API.
//
//go:embed openapi.yaml
var OpenAPIYAML []byte
