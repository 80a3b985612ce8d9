package sophra

import (
	"net/http"
	"testing"
	"time"
)

func TestBackoffDoublesFromHalfASecondUpToEight(t *testing.T) {
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
		8 * time.Second, 8 * time.Second}
	for tries, w := range want {
		if got := backoff(tries); got != w {
			t.Errorf("backoff(%d) = %v, want %v", tries, got, w)
		}
	}
	if got := backoff(1000); got != 8*time.Second {
		t.Errorf("backoff(1000) = %v, want the cap", got)
	}
}

func fixed(v float64) func() float64 { return func() float64 { return v } }

func TestRetryWaitWithoutServerMinimumIsFullJitterWithinBudget(t *testing.T) {
	cases := []struct {
		tries     int
		random    float64
		remaining time.Duration
		want      time.Duration
		ok        bool
	}{
		{0, 0, time.Minute, 0, true},
		{0, 0.5, time.Minute, 250 * time.Millisecond, true},
		{2, 0.5, time.Minute, time.Second, true},      // half of 2 s
		{9, 0.25, time.Minute, 2 * time.Second, true}, // a quarter of the 8 s cap
		{3, 0.5, time.Second, time.Second, true},      // 2 s cut to what is left
		{3, 0.5, 0, 0, false},                         // budget spent
		{3, 0.5, -time.Second, 0, false},              // overspent
		{0, 0.999, time.Minute, 499500 * time.Microsecond, true},
	}
	for _, c := range cases {
		got, ok := retryWait(c.tries, 0, false, c.remaining, fixed(c.random))
		if got != c.want || ok != c.ok {
			t.Errorf("retryWait(%d, none, %v, %v) = %v, %v; want %v, %v", c.tries, c.remaining, c.random, got, ok, c.want, c.ok)
		}
	}
}

func TestRetryWaitHonoursTheServerMinimum(t *testing.T) {
	// Retry-After 3 s: at least 3 s, plus up to 250 ms of spread, never less than 3 s.
	got, ok := retryWait(0, 3*time.Second, true, 30*time.Second, fixed(0))
	if !ok || got != 3*time.Second {
		t.Errorf("random 0: %v %v, want 3s true", got, ok)
	}
	got, ok = retryWait(0, 3*time.Second, true, 30*time.Second, fixed(0.5))
	if !ok || got != 3*time.Second+125*time.Millisecond {
		t.Errorf("random 0.5: %v %v, want 3.125s true", got, ok)
	}
	// A long exponential step wins over a short minimum.
	got, ok = retryWait(4, 100*time.Millisecond, true, 30*time.Second, fixed(0.5))
	if !ok || got != 4*time.Second {
		t.Errorf("tries 4: %v %v, want 4s true", got, ok)
	}
	// The spread is cut by the budget, the minimum itself never is.
	got, ok = retryWait(0, 3*time.Second, true, 3*time.Second, fixed(0.9))
	if !ok || got != 3*time.Second {
		t.Errorf("minimum == budget: %v %v, want 3s true", got, ok)
	}
	// A minimum past the budget gives up at once rather than sleep to be refused again.
	if got, ok = retryWait(0, 8*time.Second, true, 1500*time.Millisecond, fixed(0.5)); ok || got != 0 {
		t.Errorf("minimum past budget: %v %v, want 0 false", got, ok)
	}
	// Retry-After: 0 retries at once (the jitter of the first step is 0 here).
	if got, ok = retryWait(0, 0, true, time.Second, fixed(0)); !ok || got != 0 {
		t.Errorf("Retry-After 0: %v %v, want 0 true", got, ok)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		header string
		want   time.Duration
		ok     bool
	}{
		{"", 0, false},
		{"8", 8 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"0", 0, true},
		{"1.5", 1500 * time.Millisecond, true},
		{"-3", 0, false},
		{"soon", 0, false},
		{"Fri, 02 Jan 2026 03:04:15 GMT", 10 * time.Second, true},
		{"Fri, 02 Jan 2026 03:00:00 GMT", 0, true}, // in the past: retry now
		{"Friday, 02-Jan-26 03:05:05 GMT", time.Minute, true},
	}
	for _, c := range cases {
		got, ok := parseRetryAfter(c.header, now)
		if got != c.want || ok != c.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", c.header, got, ok, c.want, c.ok)
		}
	}
}

func TestServerWaitTakesTheLongerOfHeaderAndBody(t *testing.T) {
	now := time.Now()
	h := http.Header{}
	h.Set("Retry-After", "8")
	body := []byte(`{"success":false,"error":"Rate limit exceeded","retry_after_ms":7420,"retry_after_seconds":8}`)
	if got, ok := serverWait(h, body, now); !ok || got != 8*time.Second {
		t.Errorf("header 8 s, body 7.42 s: %v %v", got, ok)
	}
	h.Set("Retry-After", "1")
	if got, ok := serverWait(h, body, now); !ok || got != 7420*time.Millisecond {
		t.Errorf("header 1 s, body 7.42 s: %v %v", got, ok)
	}
	if got, ok := serverWait(http.Header{}, body, now); !ok || got != 7420*time.Millisecond {
		t.Errorf("body only: %v %v", got, ok)
	}
	if got, ok := serverWait(http.Header{}, []byte("<html>busy</html>"), now); ok || got != 0 {
		t.Errorf("neither: %v %v", got, ok)
	}
}

func TestRetryableStatuses(t *testing.T) {
	for status := 100; status < 600; status++ {
		want := status == 429 || status == 502 || status == 503 || status == 504
		if retryableStatus(status) != want {
			t.Errorf("retryableStatus(%d) = %v", status, !want)
		}
	}
}
