package sophra

import (
	"fmt"
	"time"
)

// Codes of an *Error that got no answer from the server (Status 0).
const (
	CodeNetwork  = "Network error" // the connection failed or broke
	CodeTimeout  = "Timeout"       // no answer within Options.Timeout
	CodeCanceled = "Canceled"      // the caller's context ended first
)

// Error is every failed call: a non-2xx answer (Status is the HTTP status) or no answer
// at all (Status 0). It is the error model of the Python SDK's SophonzError (status,
// error, message, field, retry_after); the server's "error" text is Code here, because
// Error is the method that makes this an error.
//
//	var e *sophra.Error
//	if errors.As(err, &e) && e.Status == 404 { ... }
type Error struct {
	// Status is the HTTP status (400, 401, 404, 429, 503, ...), or 0 without an answer.
	Status int
	// Code is the server's short, stable error text ("Invalid request", "Not found",
	// "Rate limit exceeded", ...), or CodeNetwork, CodeTimeout, CodeCanceled at Status 0.
	Code string
	// Message says what went wrong and what to do, as the server said it.
	Message string
	// Field names the offending input ("name", "points[3].value",
	// "metrics.hallucinationRate") on a 400, else "".
	Field string
	// RetryAfter is how long the server asked to wait (429 and 503 answers): its
	// Retry-After header, else the body's retry_after_ms; 0 when it said nothing.
	RetryAfter time.Duration
	// Body is the raw answer body (JSON, or text from a proxy); nil without an answer.
	Body []byte
	// Err is the cause at Status 0 (a net error, context.Canceled, ...), else nil.
	Err error
}

// Error reads like the Python SDK's: "404 Not found: No application ... (field: x)".
func (e *Error) Error() string {
	s := fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
	if e.Field != "" {
		s += " (field: " + e.Field + ")"
	}
	return s
}

// Unwrap gives the cause of a failure without an answer, so errors.Is(err,
// context.DeadlineExceeded) and errors.Is(err, context.Canceled) work.
func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether trying the same call again later can succeed: no answer,
// or 429, 502, 503, 504. The client already retried these within Options.MaxRetryTime.
func (e *Error) Temporary() bool {
	return e.Status == 0 && e.Code != CodeCanceled || retryableStatus(e.Status)
}
