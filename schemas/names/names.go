// Package names holds the names commentflow's services, the compose stack
// and the init script share: topics, subject, group, database. It has no
// dependencies, so a service that needs only the names (the gateway) does
// not link the Avro serde. Package schemas re-exports them.
package names

const (
	// Topic carries the comment events.
	Topic = "comments"
	// DLQTopic receives records that can never be stored.
	DLQTopic = "comments.dlq"
	// Subject is the registry subject of the value schema (TopicNameStrategy).
	Subject = Topic + "-value"
	// Partitions is the partition count of Topic.
	Partitions = 3
	// DLQPartitions is the partition count of DLQTopic.
	DLQPartitions = 1
	// ConsumerGroup is the group of the consumer replicas.
	ConsumerGroup = "comments-writer"
	// Database holds the stored comments in MongoDB.
	Database = "commentflow"
	// Collection is the collection of the stored comments.
	Collection = "comments"
)
