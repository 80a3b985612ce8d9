package sophra

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The retry rule of the JavaScript agent SDK (sdk/sophra-sdk.js), with its defaults.
const (
	DefaultTimeout      = 10 * time.Second // per attempt
	DefaultMaxRetryTime = 30 * time.Second // no retry starts later than this after the first attempt
	backoffBase         = 500 * time.Millisecond
	backoffCap          = 8 * time.Second
	// Added on top of a server-mandated wait, so clients told the same Retry-After do
	// not all come back in the same millisecond.
	retryAfterSpread = 250 * time.Millisecond
)

// retryableStatus: only answers where trying again can help. Other 4xx mean the request
// itself is wrong; a 500 may already have stored the record.
func retryableStatus(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// backoff is the exponential step before retry number `tries` (0-based): 0.5 s, 1 s,
// 2 s, ... capped at 8 s. The wait is a random fraction of it (full jitter).
func backoff(tries int) time.Duration {
	if tries >= 5 { // 0.5 s * 2^5 = 16 s is past the cap already; also avoids overflow
		return backoffCap
	}
	return min(backoffCap, backoffBase<<tries)
}

// retryWait decides the wait before the next attempt. minimum is what the server asked
// for (0 and hasMinimum false when it said nothing), remaining what is left of the retry
// budget, random a number in [0, 1). ok is false when the call should give up now: the
// budget is spent, or the server's minimum ends past it (sleeping would only be refused
// again).
func retryWait(tries int, minimum time.Duration, hasMinimum bool, remaining time.Duration, random func() float64) (wait time.Duration, ok bool) {
	wait = time.Duration(random() * float64(backoff(tries)))
	if hasMinimum {
		if minimum > remaining {
			return 0, false
		}
		wait = max(wait, minimum+time.Duration(random()*float64(retryAfterSpread)))
		return max(minimum, min(wait, remaining)), true
	}
	if remaining <= 0 {
		return 0, false
	}
	return min(wait, remaining), true
}

// parseRetryAfter reads a Retry-After header: delta-seconds or an HTTP date (a date
// in the past is 0). ok is false when the header is absent or unreadable.
func parseRetryAfter(value string, now time.Time) (time.Duration, bool) {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0, false
	}
	if seconds, err := strconv.ParseFloat(value, 64); err == nil {
		if seconds < 0 || seconds > 1e9 {
			return 0, false
		}
		return time.Duration(seconds * float64(time.Second)), true
	}
	when, err := http.ParseTime(value)
	if err != nil {
		return 0, false
	}
	return max(0, when.Sub(now)), true
}

// errorBody is the server's one error shape: {"success": false, "error", "message",
// "field"?}, plus retry_after_ms and retry_after_seconds on a 429.
type errorBody struct {
	Error             string   `json:"error"`
	Message           string   `json:"message"`
	Field             *string  `json:"field"`
	RetryAfterMS      *float64 `json:"retry_after_ms"`
	RetryAfterSeconds *float64 `json:"retry_after_seconds"`
}

// serverWait is the minimum wait an answer asks for: the longer of its Retry-After
// header and its body's retry_after_ms (the body is exact to the millisecond, the header
// rounds up to seconds). ok is false when it asks for none.
func serverWait(header http.Header, body []byte, now time.Time) (time.Duration, bool) {
	wait, ok := parseRetryAfter(header.Get("Retry-After"), now)
	var e errorBody
	if json.Unmarshal(body, &e) == nil && e.RetryAfterMS != nil && *e.RetryAfterMS >= 0 && *e.RetryAfterMS < 1e12 {
		wait, ok = max(wait, time.Duration(*e.RetryAfterMS*float64(time.Millisecond))), true
	}
	return wait, ok
}

// jitter is the random source of the backoff; tests replace it.
var jitter = rand.Float64
