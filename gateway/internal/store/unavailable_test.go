package store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/commentflow/commentflow/gateway/internal/store"
)

// Every database failure that means "try again later" is Unavailable (the
// API answers 503 with Retry-After); only a real bug is not (500). The
// errors are built as the driver returns them: a server error reply
// becomes a mongo.CommandError with the server's code and name.
func TestUnavailable(t *testing.T) {
	cmd := func(code int32, name, msg string, labels ...string) error {
		return fmt.Errorf("find comments: %w", mongo.CommandError{Code: code, Name: name, Message: msg, Labels: labels})
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"context deadline", fmt.Errorf("find comments: %w", context.DeadlineExceeded), true},
		{"context canceled", fmt.Errorf("find comments: %w", context.Canceled), true},
		{"MaxTimeMSExpired", cmd(50, "MaxTimeMSExpired", "operation exceeded time limit"), true},
		{"ExceededTimeLimit", cmd(262, "ExceededTimeLimit", "operation exceeded time limit"), true},
		{"Interrupted", cmd(11601, "Interrupted", "operation was interrupted"), true},
		{"InterruptedAtShutdown", cmd(11600, "InterruptedAtShutdown", "interrupted at shutdown"), true},
		{"InterruptedDueToReplStateChange", cmd(11602, "InterruptedDueToReplStateChange", "operation was interrupted"), true},
		{"NotWritablePrimary", cmd(10107, "NotWritablePrimary", "not primary"), true},
		{"NotPrimaryNoSecondaryOk", cmd(13435, "NotPrimaryNoSecondaryOk", "not primary and secondaryOk=false"), true},
		{"NotPrimaryOrSecondary", cmd(13436, "NotPrimaryOrSecondary", "not primary or secondary"), true},
		{"PrimarySteppedDown", cmd(189, "PrimarySteppedDown", "stepped down"), true},
		{"ShutdownInProgress", cmd(91, "ShutdownInProgress", "shutting down"), true},
		{"HostUnreachable", cmd(6, "HostUnreachable", "host unreachable"), true},
		{"HostNotFound", cmd(7, "HostNotFound", "host not found"), true},
		{"NetworkTimeout", cmd(89, "NetworkTimeout", "network timeout"), true},
		{"SocketException", cmd(9001, "SocketException", "socket exception"), true},
		{"LockTimeout", cmd(24, "LockTimeout", "lock timeout"), true},
		{"CursorKilled", cmd(237, "CursorKilled", "cursor killed"), true},
		{"label NetworkError", cmd(0, "", "connection reset", "NetworkError"), true},
		{"label RetryableWriteError", cmd(0, "", "retry", "RetryableWriteError"), true},
		{"label SystemOverloadedError", cmd(0, "", "overloaded", "SystemOverloadedError"), true},
		{"FerretDB: expired time limit as InternalError", cmd(1, "InternalError",
			"[msg_find.go:123 handler.(*Handler).MsgFind] context deadline exceeded"), true},
		{"FerretDB: canceled as InternalError", cmd(1, "InternalError", "[pool.go:99 sqlite.(*Pool).Query] context canceled"), true},
		{"FerretDB: SQLite busy", cmd(1, "InternalError", "database is locked (5) (SQLITE_BUSY)"), true},
		{"network error", fmt.Errorf("read: %w", mongo.CommandError{Labels: []string{"NetworkError"}, Wrapped: &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}}), true},
		{"no server", topology.ServerSelectionError{Wrapped: errors.New("server selection timeout")}, true},
		{"pool exhausted", topology.WaitQueueTimeoutError{Wrapped: context.DeadlineExceeded}, true},
		{"pool closed", topology.ErrPoolClosed, true},
		{"client disconnected", mongo.ErrClientDisconnected, true},

		{"FerretDB: other internal error", cmd(1, "InternalError", "[msg_find.go:123] unexpected nil document"), false},
		{"bad query (a bug)", cmd(2, "BadValue", "unknown operator: $foo"), false},
		{"type mismatch (a bug)", cmd(14, "TypeMismatch", "bad type"), false},
		{"decode error (a bug)", errors.New("error decoding key created_at: cannot decode string into a time.Time"), false},
		{"unauthorized (operator)", cmd(13, "Unauthorized", "not authorized"), false},
		{"WriteConflict (transient for the consumer's inserts only)", cmd(112, "WriteConflict", "write conflict"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := store.Unavailable(tt.err); got != tt.want {
				t.Errorf("Unavailable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
