package mongoconn

import "maps"

// TransientCodes are the MongoDB server error codes that mean "not now" to
// every service: the server is unreachable, stepping down, shutting down,
// interrupted, or ran out of time; the operation is retried (the consumer)
// or answered 503 with Retry-After (the gateway). Names from
// https://www.mongodb.com/docs/manual/reference/error-codes/; the set is the
// drivers' retryable lists
// (https://github.com/mongodb/specifications/blob/master/source/retryable-writes/retryable-writes.md)
// plus the time limits and interruptions.
//
// Each service adds what is transient only for what it does, with
// TransientCodesWith: the consumer's inserts also wait out lock and write
// conflicts, write-concern timeouts and FerretDB's InternalError (code 1);
// the gateway's reads a killed cursor, and code 1 only for FerretDB's
// messages of the same troubles.
var TransientCodes = map[int]string{
	6:     "HostUnreachable",
	7:     "HostNotFound",
	24:    "LockTimeout",
	50:    "MaxTimeMSExpired",
	89:    "NetworkTimeout",
	91:    "ShutdownInProgress",
	189:   "PrimarySteppedDown",
	262:   "ExceededTimeLimit",
	9001:  "SocketException",
	10107: "NotWritablePrimary",
	11600: "InterruptedAtShutdown",
	11601: "Interrupted",
	11602: "InterruptedDueToReplStateChange",
	13435: "NotPrimaryNoSecondaryOk",
	13436: "NotPrimaryOrSecondary",
}

// TransientCodesWith is a new map of TransientCodes and a service's own
// codes.
func TransientCodesWith(own map[int]string) map[int]string {
	out := maps.Clone(TransientCodes)
	maps.Copy(out, own)
	return out
}
