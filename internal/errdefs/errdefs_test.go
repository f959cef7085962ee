package errdefs

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestKindsSurviveWrapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want int
		kind string
	}{
		{"nil", nil, http.StatusOK, ""},
		{"invalid", Invalid("bad %s", "x"), http.StatusBadRequest, "invalid"},
		{"wrapped not found", fmt.Errorf("ctx: %w", NotFound("gone")), http.StatusNotFound, "not_found"},
		{"conflict", Conflict("taken"), http.StatusConflict, "conflict"},
		{"plain", errors.New("disk on fire"), http.StatusInternalServerError, "internal"},
		{"conflict wrapping invalid keeps both", Conflict("outer: %w", Invalid("inner")), http.StatusBadRequest, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HTTPStatus(tt.err); got != tt.want {
				t.Errorf("HTTPStatus(%v) = %d, want %d", tt.err, got, tt.want)
			}
			if got := Kind(tt.err); got != tt.kind {
				t.Errorf("Kind(%v) = %q, want %q", tt.err, got, tt.kind)
			}
		})
	}
	if e := Invalid("bad %d", 1); e.Error() != "bad 1" {
		t.Errorf("message = %q", e.Error())
	}
}
