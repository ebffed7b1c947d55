package store

import (
	"context"
	"errors"
	"strings"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/commentflow/commentflow/platform/mongoconn"
)

// UnavailableCodes are the server error codes that mean "overloaded,
// stepping down, shutting down or unreachable: try again later"
// (mongoconn.TransientCodes, shared with the consumer), and for a read also
// a cursor killed under it. FerretDB's InternalError (code 1) counts only
// with one of the messages of ferretTransient.
var UnavailableCodes = mongoconn.TransientCodesWith(map[int]string{
	237: "CursorKilled",
})

// unavailableLabels are the driver's and server's error labels of
// transient failures.
var unavailableLabels = []string{"NetworkError", "RetryableWriteError", "RetryableReadError",
	"SystemOverloadedError", "NetworkTimeoutError", "ExceededTimeLimitError", "TransientTransactionError"}

// codeInternalError is what FerretDB answers for any failure of its
// backend, including its spelling of an expired time limit and of a busy
// SQLite database; ferretTransient are those spellings.
const codeInternalError = 1

var ferretTransient = []string{"context deadline exceeded", "context canceled", "operation exceeded time limit",
	"database is locked", "SQLITE_BUSY", "interrupted"}

// Unavailable reports whether err, from a database operation, means "try
// again later" (the API answers 503 with Retry-After) rather than a bug
// (500): a deadline, a cancellation, a network failure, no server to
// select, an exhausted or closed connection pool, a transient server code
// or label, or FerretDB's internal-error spelling of the same.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		mongo.IsTimeout(err), mongo.IsNetworkError(err),
		errors.As(err, &topology.ServerSelectionError{}), errors.As(err, &topology.WaitQueueTimeoutError{}),
		errors.Is(err, topology.ErrPoolClosed), errors.Is(err, mongo.ErrClientDisconnected):
		return true
	}
	var retryable interface{ Retryable() bool } // the pool was cleared (driver.RetryablePoolError)
	if errors.As(err, &retryable) && retryable.Retryable() {
		return true
	}
	var le mongo.LabeledError
	if errors.As(err, &le) {
		for _, l := range unavailableLabels {
			if le.HasErrorLabel(l) {
				return true
			}
		}
	}
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		if _, ok := UnavailableCodes[int(ce.Code)]; ok {
			return true
		}
		if ce.Code == codeInternalError {
			for _, s := range ferretTransient {
				if strings.Contains(ce.Message, s) {
					return true
				}
			}
		}
	}
	var se mongo.ServerError
	if errors.As(err, &se) {
		for code := range UnavailableCodes {
			if se.HasErrorCode(code) {
				return true
			}
		}
	}
	return false
}
