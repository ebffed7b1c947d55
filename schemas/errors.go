package schemas

import (
	"errors"
	"fmt"
)

// ErrorClass names why a record could not be decoded. The consumer routes on
// it and writes it in the dead-letter header error.class.
type ErrorClass string

// The classes of decode errors. Only ClassRegistryUnavailable can heal by
// itself; the others are poison.
const (
	ClassBadFraming          ErrorClass = "bad_framing"
	ClassUnknownSchema       ErrorClass = "unknown_schema"
	ClassRegistryUnavailable ErrorClass = "registry_unavailable"
	ClassAvroDecode          ErrorClass = "avro_decode"
	ClassInvalid             ErrorClass = "invalid"
)

// Sentinels for errors.Is on a *DecodeError.
var (
	ErrBadFraming          = errors.New("bad framing")
	ErrUnknownSchema       = errors.New("unknown schema id")
	ErrRegistryUnavailable = errors.New("schema registry unavailable")
	ErrAvroDecode          = errors.New("avro decode failed")
	ErrInvalid             = errors.New("invalid comment")
)

var sentinels = map[ErrorClass]error{
	ClassBadFraming:          ErrBadFraming,
	ClassUnknownSchema:       ErrUnknownSchema,
	ClassRegistryUnavailable: ErrRegistryUnavailable,
	ClassAvroDecode:          ErrAvroDecode,
	ClassInvalid:             ErrInvalid,
}

// DecodeError is every error Decoder.Decode and Validate return.
type DecodeError struct {
	Class    ErrorClass
	SchemaID int   // the writer schema ID, 0 when the framing was unreadable
	Err      error // the cause
}

func (e *DecodeError) Error() string {
	if e.SchemaID != 0 {
		return fmt.Sprintf("%s (schema id %d): %v", e.Class, e.SchemaID, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Class, e.Err)
}

// Unwrap returns the cause.
func (e *DecodeError) Unwrap() error { return e.Err }

// Is matches the sentinel of the error's class.
func (e *DecodeError) Is(target error) bool { return sentinels[e.Class] == target }

func decodeErr(class ErrorClass, id int, format string, a ...any) *DecodeError {
	return &DecodeError{Class: class, SchemaID: id, Err: fmt.Errorf(format, a...)}
}

// ClassOf is the class of a decode error, or "" for any other error.
func ClassOf(err error) ErrorClass {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Class
	}
	return ""
}

// Retryable reports whether err can heal by itself (the registry coming
// back), so the record must be retried rather than dead-lettered.
func Retryable(err error) bool { return ClassOf(err) == ClassRegistryUnavailable }

// IncompatibleError is returned when a schema cannot be registered because
// it is not BACKWARD compatible with the subject's latest version.
type IncompatibleError struct {
	Subject       string
	LatestVersion int
	Fields        []string // the offending fields, when they can be named
	Reason        string
}

func (e *IncompatibleError) Error() string {
	msg := fmt.Sprintf("schema is not BACKWARD compatible with %s version %d", e.Subject, e.LatestVersion)
	if len(e.Fields) > 0 {
		msg += fmt.Sprintf(": field %q", e.Fields[0])
		for _, f := range e.Fields[1:] {
			msg += fmt.Sprintf(", field %q", f)
		}
	}
	return msg + ": " + e.Reason
}
