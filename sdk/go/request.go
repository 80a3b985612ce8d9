package sophra

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxBody bounds what is read of one answer (the largest, 500 vitals with metadata, is
// far below it).
const maxBody = 32 << 20

// Do sends one request to BaseURL + path (path starts with "/v1/..." or "/api/...",
// query already encoded), with body encoded as JSON when not nil, and decodes a 2xx
// answer into out when out is not nil and the answer has a body. It retries as every
// call does. For endpoints this SDK has no method for yet.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	return c.do(ctx, method, path, nil, body, out)
}

// do is every call: encode, send with retries, decode. retry of a transport failure
// (no answer) is decided by the method: a POST or PATCH may have been applied, so only
// the agent reports (where a duplicate beats a lost snapshot, as in the JavaScript
// SDK) are sent again; answered 429/502/503/504 are retried for every method.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	if ctx == nil {
		ctx = context.Background()
	}
	target := c.baseURL + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return &Error{Code: "Invalid request", Message: "cannot encode the request body: " + err.Error(), Err: err}
		}
	}
	retryTransport := method == http.MethodGet || method == http.MethodDelete || method == http.MethodPut ||
		path == "/api/vitals" || path == "/api/events"

	start := time.Now()
	for tries := 0; ; tries++ {
		res, err := c.attempt(ctx, method, target, payload)
		var minimum time.Duration
		var hasMinimum bool
		if err == nil {
			if res.status >= 200 && res.status < 300 {
				return decode(res, out, method, path)
			}
			err = c.answerError(res, method, path)
			if !retryableStatus(res.status) {
				return err
			}
			minimum, hasMinimum = serverWait(res.header, res.body, time.Now())
		} else if !retryTransport || err.Code == CodeCanceled {
			return err
		}
		if c.maxRetryTime < 0 || ctx.Err() != nil {
			return err
		}
		remaining := c.maxRetryTime - time.Since(start)
		if deadline, ok := ctx.Deadline(); ok {
			remaining = min(remaining, time.Until(deadline))
		}
		wait, ok := retryWait(tries, minimum, hasMinimum, remaining, jitter)
		if !ok {
			return err
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return err
		case <-timer.C:
		}
	}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

// attempt is one HTTP exchange; it fails only without an answer.
func (c *Client) attempt(ctx context.Context, method, target string, payload []byte) (*answer, *Error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var reader io.Reader
	if payload != nil {
		reader = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(actx, method, target, reader)
	if err != nil {
		return nil, &Error{Code: CodeNetwork, Message: fmt.Sprintf("Cannot reach %s: %v", target, err), Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(io.LimitReader(res.Body, maxBody))
		res.Body.Close()
	}
	if err != nil {
		switch {
		case ctx.Err() != nil: // the caller's context, not our per-attempt timeout
			return nil, &Error{Code: CodeCanceled, Message: fmt.Sprintf("%s %s: %v", method, target, ctx.Err()), Err: ctx.Err()}
		case actx.Err() != nil:
			return nil, &Error{Code: CodeTimeout, Message: fmt.Sprintf("No answer from %s within %s", target, c.timeout),
				Err: context.DeadlineExceeded}
		}
		return nil, &Error{Code: CodeNetwork, Message: fmt.Sprintf("Cannot reach %s: %v", target, unwrapURLError(err)), Err: err}
	}
	c.noteRateLimit(res.Header)
	return &answer{status: res.StatusCode, header: res.Header, body: body}, nil
}

func unwrapURLError(err error) error {
	var u *url.Error
	if errors.As(err, &u) {
		return u.Err
	}
	return err
}

// answerError turns a non-2xx answer into an *Error, as the Python SDK does.
func (c *Client) answerError(res *answer, method, path string) *Error {
	e := &Error{Status: res.status, Body: res.body}
	var parsed errorBody
	if json.Unmarshal(res.body, &parsed) == nil {
		e.Code, e.Message = parsed.Error, parsed.Message
		if parsed.Field != nil {
			e.Field = *parsed.Field
		}
	}
	if e.Code == "" {
		e.Code = http.StatusText(res.status)
		if e.Code == "" {
			e.Code = "HTTP error"
		}
	}
	if e.Message == "" {
		text := strings.TrimSpace(string(res.body))
		if len(text) > 500 {
			text = text[:500]
		}
		if text == "" || json.Valid(res.body) {
			text = fmt.Sprintf("%s %s answered %d", method, path, res.status)
		}
		e.Message = text
	}
	if wait, ok := parseRetryAfter(res.header.Get("Retry-After"), time.Now()); ok {
		e.RetryAfter = wait
	} else if parsed.RetryAfterMS != nil && *parsed.RetryAfterMS > 0 {
		e.RetryAfter = time.Duration(*parsed.RetryAfterMS * float64(time.Millisecond))
	} else if parsed.RetryAfterSeconds != nil && *parsed.RetryAfterSeconds > 0 {
		e.RetryAfter = time.Duration(*parsed.RetryAfterSeconds * float64(time.Second))
	}
	return e
}

func decode(res *answer, out any, method, path string) error {
	if out == nil || len(bytes.TrimSpace(res.body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(res.body, out); err != nil {
		return &Error{Status: res.status, Code: "Invalid response", Body: res.body, Err: err,
			Message: fmt.Sprintf("%s %s answered %d with a body this SDK cannot read: %v", method, path, res.status, err)}
	}
	return nil
}

// noteRateLimit keeps the X-RateLimit-* headers of an answer ("unlimited" is -1).
func (c *Client) noteRateLimit(h http.Header) {
	limit := h.Get("X-RateLimit-Limit")
	if limit == "" {
		return
	}
	number := func(s string) int64 {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return -1
		}
		return n
	}
	rl := &RateLimit{Limit: number(limit), Remaining: number(h.Get("X-RateLimit-Remaining"))}
	if reset := number(h.Get("X-RateLimit-Reset")); reset >= 0 {
		rl.Reset = time.Unix(reset, 0).UTC()
	}
	c.mu.Lock()
	c.rateLimit = rl
	c.mu.Unlock()
}

// seg is one path segment, percent-encoded, so an id with "/" or "?" reaches the
// server whole instead of another route.
func seg(id string) string { return url.PathEscape(id) }

// call is one request whose 2xx answer decodes into a new T; nil with the error.
func call[T any](ctx context.Context, c *Client, method, path string, query url.Values, body any) (*T, error) {
	out := new(T)
	if err := c.do(ctx, method, path, query, body, out); err != nil {
		return nil, err
	}
	return out, nil
}
