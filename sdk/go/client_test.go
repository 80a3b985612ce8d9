package sophra

// Client-side rules against httptest servers: retries, error decoding, encoding. The
// server's own behaviour is tested live (integration_test.go, tests/test_sdk_go.py).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// script answers the requests in order with the given handlers and records them.
type script struct {
	t        *testing.T
	mu       sync.Mutex
	steps    []http.HandlerFunc
	requests []*http.Request
	bodies   []string
	times    []time.Time
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	n := len(s.requests)
	s.requests = append(s.requests, r)
	s.bodies = append(s.bodies, string(body))
	s.times = append(s.times, time.Now())
	s.mu.Unlock()
	if n >= len(s.steps) {
		s.t.Errorf("request %d (%s %s) beyond the script", n+1, r.Method, r.URL)
		w.WriteHeader(599)
		return
	}
	s.steps[n](w, r)
}

func (s *script) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

func reply(status int, headers map[string]string, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for k, v := range headers {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func serve(t *testing.T, steps ...http.HandlerFunc) (*script, *Client) {
	t.Helper()
	s := &script{t: t, steps: steps}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c, err := NewClient(Options{APIKey: "sk_live_test", BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func noJitter(t *testing.T) {
	old := jitter
	jitter = func() float64 { return 0 }
	t.Cleanup(func() { jitter = old })
}

const apps = `{"applications":[],"total":0,"page":1,"per_page":20}`

func TestRetries503ThenSucceedsAfterTheBodysRetryAfterMs(t *testing.T) {
	noJitter(t)
	s, c := serve(t,
		reply(503, nil, `{"success":false,"error":"Service unavailable","message":"busy","retry_after_ms":300}`),
		reply(200, nil, apps))
	got, err := c.Applications.List(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Total != 0 || got.Page != 1 || got.PerPage != 20 || got.Applications == nil {
		t.Errorf("decoded %+v", got)
	}
	if s.count() != 2 {
		t.Fatalf("%d requests, want 2", s.count())
	}
	if gap := s.times[1].Sub(s.times[0]); gap < 300*time.Millisecond {
		t.Errorf("retried after %v, before the 300 ms asked", gap)
	}
}

func TestRetries429And502And504WithBackoff(t *testing.T) {
	noJitter(t)
	s, c := serve(t, reply(429, nil, `{}`), reply(502, nil, "bad gateway"), reply(504, nil, ""),
		reply(200, nil, apps))
	if _, err := c.Applications.List(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if s.count() != 4 {
		t.Errorf("%d requests, want 4", s.count())
	}
}

func TestGivesUpAtOnceWhenRetryAfterEndsPastTheBudget(t *testing.T) {
	s, c := serve(t, reply(429, map[string]string{"Retry-After": "8"},
		`{"success":false,"error":"Rate limit exceeded","message":"One vitals report per agent per 10 s; retry in 8 s",`+
			`"retry_after_ms":7420,"retry_after_seconds":8}`))
	c.maxRetryTime = time.Second
	start := time.Now()
	_, err := c.ReportVitals(context.Background(), Vitals{AgentID: "a"})
	if time.Since(start) > 500*time.Millisecond {
		t.Errorf("took %v: it slept instead of giving up", time.Since(start))
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%T %v is not an *Error", err, err)
	}
	want := Error{Status: 429, Code: "Rate limit exceeded", Message: "One vitals report per agent per 10 s; retry in 8 s",
		RetryAfter: 8 * time.Second}
	if e.Status != want.Status || e.Code != want.Code || e.Message != want.Message || e.Field != "" ||
		e.RetryAfter != want.RetryAfter || e.Err != nil {
		t.Errorf("got %#v", e)
	}
	if !e.Temporary() || s.count() != 1 {
		t.Errorf("temporary %v, %d requests", e.Temporary(), s.count())
	}
}

func TestNeverRetriesOther4xxNor500(t *testing.T) {
	for _, status := range []int{400, 401, 403, 404, 409, 413, 500} {
		s, c := serve(t, reply(status, nil,
			`{"success":false,"error":"Invalid request","message":"metrics.hallucinationRate: must be <= 1","field":"metrics.hallucinationRate"}`))
		_, err := c.ReportVitals(context.Background(), Vitals{AgentID: "a"})
		var e *Error
		if !errors.As(err, &e) || e.Status != status || s.count() != 1 {
			t.Fatalf("status %d: %v after %d requests", status, err, s.count())
		}
		want := fmt.Sprintf("%d Invalid request: metrics.hallucinationRate: must be <= 1 (field: metrics.hallucinationRate)", status)
		if e.Field != "metrics.hallucinationRate" || e.Temporary() || err.Error() != want {
			t.Errorf("status %d: %q", status, err.Error())
		}
	}
}

func TestANonJSONAnswerKeepsItsTextAsTheMessage(t *testing.T) {
	_, c := serve(t, reply(403, nil, "<html>forbidden by the proxy</html>"))
	_, err := c.Agents.List(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Code != "Forbidden" || e.Message != "<html>forbidden by the proxy</html>" ||
		string(e.Body) != "<html>forbidden by the proxy</html>" {
		t.Errorf("%#v", e)
	}
}

func TestNegativeMaxRetryTimeDisablesRetries(t *testing.T) {
	s, c := serve(t, reply(503, map[string]string{"Retry-After": "0"}, `{"error":"Service unavailable","message":"x"}`))
	c.maxRetryTime = -1
	if _, err := c.Applications.List(context.Background(), nil); err == nil || s.count() != 1 {
		t.Errorf("%v after %d requests", err, s.count())
	}
}

func TestTheRetryBudgetBoundsTheTotalTime(t *testing.T) {
	always := func(w http.ResponseWriter, r *http.Request) { reply(503, nil, `{}`)(w, r) }
	steps := make([]http.HandlerFunc, 100)
	for i := range steps {
		steps[i] = always
	}
	s, c := serve(t, steps...)
	c.maxRetryTime = 700 * time.Millisecond
	start := time.Now()
	_, err := c.Applications.List(context.Background(), nil)
	took := time.Since(start)
	if err == nil || took < 700*time.Millisecond || took > 3*time.Second || s.count() < 2 {
		t.Errorf("%v after %v and %d requests", err, took, s.count())
	}
}

func TestTheCallersContextStopsTheRetryWait(t *testing.T) {
	s, c := serve(t, reply(503, map[string]string{"Retry-After": "20"}, `{"error":"Service unavailable","message":"m"}`))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Applications.List(ctx, nil)
	var e *Error
	// The 20 s wait ends past the context's deadline: the last answer comes back at once.
	if !errors.As(err, &e) || e.Status != 503 || e.RetryAfter != 20*time.Second || time.Since(start) > time.Second ||
		s.count() != 1 {
		t.Errorf("%v after %v", err, time.Since(start))
	}
}

func TestTransportFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	c, _ := NewClient(Options{APIKey: "k", BaseURL: dead, MaxRetryTime: 600 * time.Millisecond})
	start := time.Now()
	_, err = c.Applications.List(context.Background(), nil)
	var e *Error
	if !errors.As(err, &e) || e.Status != 0 || e.Code != CodeNetwork ||
		!strings.HasPrefix(e.Message, "Cannot reach "+dead+"/v1/applications: ") || e.Err == nil || !e.Temporary() {
		t.Fatalf("%#v", e)
	}
	if time.Since(start) < 500*time.Millisecond {
		t.Errorf("a GET is retried within the budget; gave up after %v", time.Since(start))
	}
	// A create that may have reached the server is not sent twice.
	start = time.Now()
	_, err = c.Applications.Create(context.Background(), ApplicationCreate{Name: "x"})
	if !errors.As(err, &e) || e.Code != CodeNetwork || time.Since(start) > 300*time.Millisecond {
		t.Errorf("POST: %v after %v", err, time.Since(start))
	}

	// A server that takes the connection and never answers: Timeout, per attempt.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	c, _ = NewClient(Options{APIKey: "k", BaseURL: "http://" + silent.Addr().String(), Timeout: 200 * time.Millisecond,
		MaxRetryTime: -1})
	_, err = c.Applications.List(context.Background(), nil)
	if !errors.As(err, &e) || e.Code != CodeTimeout || !errors.Is(err, context.DeadlineExceeded) ||
		e.Message != "No answer from http://"+silent.Addr().String()+"/v1/applications within 200ms" {
		t.Errorf("%#v", e)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.Agents.List(ctx)
	if !errors.As(err, &e) || e.Code != CodeCanceled || !errors.Is(err, context.Canceled) || e.Temporary() {
		t.Errorf("canceled: %#v", e)
	}
}

func TestRequestsCarryTheKeyAndEncodePathsAndBodies(t *testing.T) {
	s, c := serve(t, reply(200, nil, `{}`), reply(200, nil, `{}`), reply(200, nil, `{}`), reply(200, nil, `{}`),
		reply(204, nil, ""))
	ctx := context.Background()
	c.Applications.Get(ctx, "app x?y#z/..")
	c.Agents.Vitals(ctx, "agent/1", &HistoryQuery{Limit: 7})
	c.ReportVitals(ctx, Vitals{AgentID: "a", Metrics: VitalMetrics{TokenConsumption: 2400, HallucinationRate: 0.02,
		Custom: map[string]any{"model": "m", "tokenConsumption": 1}}})
	c.Applications.Update(ctx, "app_1", ApplicationUpdate{Status: String("maintenance"), ClearDescription: true})
	if err := c.Alerts.Delete(ctx, "app_1", "alert_1"); err != nil {
		t.Errorf("204: %v", err)
	}
	r := s.requests
	if got := r[0].URL.EscapedPath(); got != "/v1/applications/app%20x%3Fy%23z%2F.." {
		t.Errorf("path %q", got)
	}
	if got := r[1].URL.EscapedPath() + "?" + r[1].URL.RawQuery; got != "/api/agents/agent%2F1/vitals?limit=7" {
		t.Errorf("path %q", got)
	}
	if r[0].Header.Get("Authorization") != "Bearer sk_live_test" || r[2].Header.Get("Content-Type") != "application/json" ||
		!strings.HasSuffix(r[0].Header.Get("User-Agent"), "sophra-go/"+Version) {
		t.Errorf("headers %v", r[0].Header)
	}
	if s.bodies[2] != `{"agentId":"a","metrics":{"hallucinationRate":0.02,"model":"m","tokenConsumption":2400}}` {
		t.Errorf("vitals body %s", s.bodies[2])
	}
	if s.bodies[3] != `{"description":null,"status":"maintenance"}` || r[3].Method != http.MethodPatch {
		t.Errorf("update body %s", s.bodies[3])
	}
}

func TestMetricPointsAndQueryTimes(t *testing.T) {
	s, c := serve(t, reply(202, nil, `{"accepted":1,"batch_id":9007199254740991}`),
		reply(200, nil, `{"metric":"response_time","granularity":"1m","data":[{"timestamp":"2026-01-02T03:04:00Z","value":null},{"timestamp":"2026-01-02T03:05:00Z","value":2}]}`))
	at := time.Date(2026, 1, 2, 5, 4, 5, 6e6, time.FixedZone("+02", 7200))
	sent, err := c.Metrics.Send(context.Background(), "app_1", []MetricPoint{{"response_time", 250.5, at}})
	if err != nil || sent.Accepted != 1 || sent.BatchID != 1<<53-1 {
		t.Fatalf("%+v %v", sent, err)
	}
	if s.bodies[0] != `{"points":[{"metric":"response_time","value":250.5,"timestamp":1767323045006}]}` {
		t.Errorf("body %s", s.bodies[0])
	}
	series, err := c.Metrics.Get(context.Background(), "app_1", &MetricQuery{Start: at, End: at.Add(time.Minute),
		Granularity: "1m", Stat: "count"})
	if err != nil {
		t.Fatal(err)
	}
	if q := s.requests[1].URL.RawQuery; q != "end=2026-01-02T03%3A05%3A05.006Z&granularity=1m&start=2026-01-02T03%3A04%3A05.006Z&stat=count" {
		t.Errorf("query %s", q)
	}
	if series.Data[0].Value != nil || *series.Data[1].Value != 2 ||
		!series.Data[1].Timestamp.Equal(time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC)) {
		t.Errorf("%+v", series)
	}
}

func TestRateLimitHeaders(t *testing.T) {
	_, c := serve(t,
		reply(200, map[string]string{"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "999",
			"X-RateLimit-Reset": "1642248000"}, apps),
		reply(200, map[string]string{"X-RateLimit-Limit": "unlimited", "X-RateLimit-Remaining": "unlimited",
			"X-RateLimit-Reset": "1642248000"}, apps))
	if _, ok := c.RateLimit(); ok {
		t.Error("a rate limit before any answer")
	}
	c.Applications.List(context.Background(), nil)
	rl, ok := c.RateLimit()
	if !ok || rl != (RateLimit{1000, 999, time.Unix(1642248000, 0).UTC()}) || rl.Unlimited() {
		t.Errorf("%+v", rl)
	}
	c.Applications.List(context.Background(), nil)
	if rl, _ = c.RateLimit(); !rl.Unlimited() || rl.Remaining != -1 {
		t.Errorf("%+v", rl)
	}
}

func TestKeyAndBaseURLFromTheEnvironment(t *testing.T) {
	t.Setenv("SOPHONZ_API_KEY", "")
	t.Setenv("SOPHRA_API_KEY", "")
	t.Setenv("SOPHONZ_BASE_URL", "")
	t.Setenv("SOPHRA_BASE_URL", "")
	if _, err := NewClient(Options{}); !errors.Is(err, ErrNoAPIKey) {
		t.Errorf("no key: %v", err)
	}
	t.Setenv("SOPHRA_API_KEY", "sophra-key")
	c, err := NewClient(Options{})
	if err != nil || c.apiKey != "sophra-key" || c.BaseURL() != DefaultBaseURL {
		t.Errorf("SOPHRA_API_KEY alone: %v %q %q", err, c.apiKey, c.BaseURL())
	}
	t.Setenv("SOPHONZ_API_KEY", "sophonz-key")
	if c, _ = NewClient(Options{}); c.apiKey != "sophonz-key" {
		t.Errorf("both set: %q, want SOPHONZ_API_KEY's", c.apiKey)
	}
	if c, _ = NewClient(Options{APIKey: "given"}); c.apiKey != "given" {
		t.Errorf("given: %q", c.apiKey)
	}
	t.Setenv("SOPHRA_BASE_URL", "http://sophra.test:8000/")
	if c, _ = NewClient(Options{}); c.BaseURL() != "http://sophra.test:8000" {
		t.Errorf("SOPHRA_BASE_URL: %q", c.BaseURL())
	}
	t.Setenv("SOPHONZ_BASE_URL", "https://api.sophonz.test/v1/")
	if c, _ = NewClient(Options{}); c.BaseURL() != "https://api.sophonz.test" {
		t.Errorf("SOPHONZ_BASE_URL with /v1: %q", c.BaseURL())
	}
	if c.timeout != DefaultTimeout || c.maxRetryTime != DefaultMaxRetryTime {
		t.Errorf("defaults %v %v", c.timeout, c.maxRetryTime)
	}
}
