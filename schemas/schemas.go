// Package schemas is commentflow's event contract: the Avro schema of a
// Comment (comment.avsc), the Go type generated from it, and the serde that
// puts it on the wire in the Confluent format — byte 0 = magic 0, bytes 1-4 =
// the big-endian schema ID in the registry, then the Avro binary body.
//
// Producers register (or look up) the schema with a Registry and frame with
// an Encoder; consumers decode any schema ID with a Decoder, which fetches
// unknown writer schemas from the registry once and resolves them to the
// current Comment type, so older and newer events decode alike.
package schemas

import (
	_ "embed"
	"fmt"

	"github.com/hamba/avro/v2"

	"github.com/commentflow/commentflow/schemas/names"
)

// Names shared by every service, the compose stack and the init script
// (defined in package names, which has no dependencies).
const (
	Topic         = names.Topic
	DLQTopic      = names.DLQTopic
	Subject       = names.Subject
	Partitions    = names.Partitions
	DLQPartitions = names.DLQPartitions
	ConsumerGroup = names.ConsumerGroup
	Database      = names.Database
	Collection    = names.Collection
)

// CommentSchemaText is comment.avsc, the contract.
//
//go:embed comment.avsc
var CommentSchemaText string

// commentSchema is CommentSchemaText parsed, the reader schema of Decoder.
var commentSchema = mustParse(CommentSchemaText)

// CommentSchema is the parsed Avro schema of Comment.
func CommentSchema() avro.Schema { return commentSchema }

// ParseSchema parses an Avro schema on its own, outside hamba/avro's global
// name cache, so that two versions of the same record can coexist.
func ParseSchema(text string) (avro.Schema, error) {
	s, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		return nil, fmt.Errorf("parse avro schema: %w", err)
	}
	return s, nil
}

func mustParse(text string) avro.Schema {
	s, err := ParseSchema(text)
	if err != nil {
		panic(err)
	}
	return s
}
