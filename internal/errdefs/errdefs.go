// Package errdefs gives errors a kind that the plugin layer turns into an
// HTTP status, the way moby's errdefs does: a package returns
// errdefs.Invalid(...) for bad input, NotFound for an unknown object,
// Conflict for a clash with existing state, and any other error is internal.
// Kinds survive wrapping with fmt.Errorf("...: %w", err).
package errdefs

import (
	"errors"
	"fmt"
	"net/http"
)

type kind int

const (
	kindInvalid kind = iota + 1
	kindNotFound
	kindConflict
)

type kindError struct {
	kind kind
	err  error
}

func (e *kindError) Error() string { return e.err.Error() }
func (e *kindError) Unwrap() error { return e.err }

func newKind(k kind, format string, args ...any) error {
	return &kindError{kind: k, err: fmt.Errorf(format, args...)}
}

// Invalid is an error caused by the caller's input; nothing was changed.
func Invalid(format string, args ...any) error { return newKind(kindInvalid, format, args...) }

// NotFound reports an object that does not exist.
func NotFound(format string, args ...any) error { return newKind(kindNotFound, format, args...) }

// Conflict reports input that clashes with existing state (an overlapping
// subnet, an address in use, an exhausted pool).
func Conflict(format string, args ...any) error { return newKind(kindConflict, format, args...) }

func is(err error, k kind) bool {
	var ke *kindError
	for err != nil {
		if !errors.As(err, &ke) {
			return false
		}
		if ke.kind == k {
			return true
		}
		err = ke.err
	}
	return false
}

// IsInvalid reports whether err (or an error it wraps) is of kind Invalid.
func IsInvalid(err error) bool { return is(err, kindInvalid) }

// IsNotFound reports whether err (or an error it wraps) is of kind NotFound.
func IsNotFound(err error) bool { return is(err, kindNotFound) }

// IsConflict reports whether err (or an error it wraps) is of kind Conflict.
func IsConflict(err error) bool { return is(err, kindConflict) }

// HTTPStatus maps an error to the status the plugin answers with.
func HTTPStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case IsInvalid(err):
		return http.StatusBadRequest
	case IsNotFound(err):
		return http.StatusNotFound
	case IsConflict(err):
		return http.StatusConflict
	default:
		return http.StatusInternalServerError
	}
}

// Kind names an error's kind for metrics and logs: "invalid", "not_found",
// "conflict" or "internal" (any other error); "" for nil.
func Kind(err error) string {
	switch {
	case err == nil:
		return ""
	case IsInvalid(err):
		return "invalid"
	case IsNotFound(err):
		return "not_found"
	case IsConflict(err):
		return "conflict"
	default:
		return "internal"
	}
}
