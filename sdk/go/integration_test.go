package sophra

// Live tests against a real Sophra server. They run when SOPHRA_TEST_BASE_URL and
// SOPHRA_TEST_API_KEY name a server and a key of a fresh account, and skip otherwise;
// tests/test_sdk_go.py starts the server, makes the account and runs them, then reads
// back through the HTTP API what they wrote (its ids: the JSON file SOPHRA_TEST_OUT).

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	outMu sync.Mutex
	out   = map[string]any{}
)

// record keeps an id or value for tests/test_sdk_go.py to read back.
func record(key string, value any) {
	outMu.Lock()
	defer outMu.Unlock()
	out[key] = value
}

func TestMain(m *testing.M) {
	code := m.Run()
	if path := os.Getenv("SOPHRA_TEST_OUT"); path != "" {
		data, _ := json.MarshalIndent(out, "", "  ")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			println("cannot write SOPHRA_TEST_OUT:", err.Error())
			code = 1
		}
	}
	os.Exit(code)
}

// exchange is one HTTP request and its answer, as the client's transport saw them.
type exchange struct {
	Method, Path string
	Status       int
	RetryAfter   string
	Start, End   time.Time
}

// recorder is an http.RoundTripper that logs every exchange.
type recorder struct {
	mu        sync.Mutex
	exchanges []exchange
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	res, err := http.DefaultTransport.RoundTrip(req)
	e := exchange{Method: req.Method, Path: req.URL.Path, Start: start, End: time.Now()}
	if err == nil {
		e.Status, e.RetryAfter = res.StatusCode, res.Header.Get("Retry-After")
	}
	r.mu.Lock()
	r.exchanges = append(r.exchanges, e)
	r.mu.Unlock()
	return res, err
}

func (r *recorder) statuses() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := []int{}
	for _, e := range r.exchanges {
		s = append(s, e.Status)
	}
	return s
}

func live(t *testing.T) (baseURL, key string) {
	t.Helper()
	baseURL, key = os.Getenv("SOPHRA_TEST_BASE_URL"), os.Getenv("SOPHRA_TEST_API_KEY")
	if baseURL == "" || key == "" {
		t.Skip("SOPHRA_TEST_BASE_URL and SOPHRA_TEST_API_KEY are not set (tests/test_sdk_go.py sets them)")
	}
	return baseURL, key
}

func liveClient(t *testing.T, opts Options) (*Client, *recorder) {
	t.Helper()
	base, key := live(t)
	rec := &recorder{}
	if opts.APIKey == "" {
		opts.APIKey = key
	}
	if opts.BaseURL == "" {
		opts.BaseURL = base
	}
	opts.HTTPClient = &http.Client{Transport: rec}
	c, err := NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c, rec
}

// eventually polls fn until it returns true (the sink lands a write in about 250 ms).
func eventually(t *testing.T, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15 s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// must returns v, or stops the test on err (through failOnMust, deferred by each test:
// Go cannot pass a call's two results and t to one function).
func must[T any](v T, err error) T {
	if err != nil {
		panic(mustFailed{err})
	}
	return v
}

type mustFailed struct{ err error }

func failOnMust(t *testing.T) {
	if p := recover(); p != nil {
		if m, ok := p.(mustFailed); ok {
			t.Fatalf("unexpected error: %v", m.err)
		}
		panic(p)
	}
}

func asError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%T %v is not an *Error", err, err)
	}
	return e
}

func same(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Errorf("%s:\n got  %s\n want %s", what, g, w)
	}
}

func p[T any](v T) *T { return &v }

// The reference 000 example, then every /v1 call.
func TestLiveApplications(t *testing.T) {
	t.Parallel()
	defer failOnMust(t)
	ctx := context.Background()
	_, key := live(t)
	// Reference 000's example, with its base URL form (ending in /v1).
	client, _ := liveClient(t, Options{BaseURL: os.Getenv("SOPHRA_TEST_BASE_URL") + "/v1", APIKey: key})
	apps, err := client.Applications.List(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "empty list", apps, &ApplicationList{Applications: []ApplicationSummary{}, Total: 0, Page: 1, PerPage: 20})
	rl, ok := client.RateLimit()
	if !ok || rl.Limit != 1000 || rl.Remaining != 999 || rl.Reset.Unix()%3600 != 0 {
		t.Errorf("rate limit %+v %v", rl, ok)
	}

	shop := must(client.Applications.Create(ctx, ApplicationCreate{Name: "Go Shop", Description: "The Go shop",
		Environment: "staging", Config: map[string]any{"monitoring": true, "alerts": true}}))
	if !strings.HasPrefix(shop.ID, "app_") || shop.CreatedAt.IsZero() || !shop.UpdatedAt.Equal(shop.CreatedAt) {
		t.Errorf("created %+v", shop)
	}
	same(t, "created", shop, &Application{
		ApplicationSummary: ApplicationSummary{ID: shop.ID, Name: "Go Shop", Status: "active", Environment: "staging",
			CreatedAt: shop.CreatedAt, UpdatedAt: shop.CreatedAt},
		Description: p("The Go shop"), Config: map[string]any{"monitoring": true, "alerts": true}})
	same(t, "got", must(client.Applications.Get(ctx, shop.ID)), shop)
	second := must(client.Applications.Create(ctx, ApplicationCreate{Name: "Go Second"}))
	updated := must(client.Applications.Update(ctx, shop.ID, ApplicationUpdate{Status: p("maintenance"),
		ClearDescription: true, BaseURL: p("https://go.example.com")}))
	want := *shop
	want.Status, want.Description, want.BaseURL, want.UpdatedAt = "maintenance", nil, p("https://go.example.com/"), updated.UpdatedAt
	same(t, "updated", updated, &want)
	same(t, "page 2", must(client.Applications.List(ctx, &ListOptions{Page: 2, PerPage: 1})),
		&ApplicationList{Applications: []ApplicationSummary{second.ApplicationSummary}, Total: 2, Page: 2, PerPage: 1})
	if err := client.Applications.Delete(ctx, second.ID); err != nil {
		t.Fatal(err)
	}
	e := asError(t, func() error { _, err := client.Applications.Get(ctx, second.ID); return err }())
	same(t, "404", *e, Error{Status: 404, Code: "Not found", Message: "No application '" + second.ID + "' for this API key",
		Body: e.Body})
	e = asError(t, func() error { _, err := client.Applications.Create(ctx, ApplicationCreate{}); return err }())
	same(t, "400", [4]any{e.Status, e.Code, e.Message, e.Field},
		[4]any{400, "Invalid request", "name: string should have at least 1 character", "name"})
	record("application_id", shop.ID)

	// metrics: three points in two minutes, ten minutes ago; read back at 1m
	minute := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
	sent := must(client.Metrics.Send(ctx, shop.ID, []MetricPoint{
		{"response_time", 100, minute.Add(time.Second)},
		{"response_time", 250.5, minute.Add(2 * time.Second)},
		{"response_time", 600, minute.Add(time.Minute)},
		{"error_rate", 0.25, minute.Add(3 * time.Second)},
	}))
	if sent.Accepted != 4 || sent.BatchID <= 0 || sent.BatchID >= 1<<53 {
		t.Errorf("sent %+v", sent)
	}
	record("metrics_minute", minute.Format(time.RFC3339))
	query := &MetricQuery{Metric: "response_time", Start: minute, End: minute.Add(2 * time.Minute), Granularity: "1m",
		Stat: "count"}
	eventually(t, "metrics landed", func() bool {
		s := must(client.Metrics.Get(ctx, shop.ID, query)) // an empty bucket counts 0
		return len(s.Data) == 2 && s.Data[0].Value != nil && *s.Data[0].Value == 2 && *s.Data[1].Value == 1
	})
	query.Stat = ""
	same(t, "mean", must(client.Metrics.Get(ctx, shop.ID, query)), &MetricSeries{Metric: "response_time",
		Granularity: "1m", Data: []MetricValue{{minute, p(175.25)}, {minute.Add(time.Minute), p(600.0)}}})
	e = asError(t, func() error {
		_, err := client.Metrics.Send(ctx, shop.ID, []MetricPoint{{"error_rate", 2, minute}})
		return err
	}())
	same(t, "bad point", [3]any{e.Status, e.Field, e.Message}, [3]any{400, "points[0].value",
		"points[0].value: must be between 0 and 1 for error_rate (a fraction 0..1)"})

	// alerts: reference 000's rule, changed, silenced; a second one deleted
	rule := must(client.Alerts.Create(ctx, shop.ID, AlertCreate{Name: "High Error Rate",
		Condition: Condition{Metric: "error_rate", Operator: ">", Threshold: 0.05},
		Actions:   []Action{{Type: "email", Recipients: []string{"admin@company.com"}}, {Type: "slack", Channel: "#alerts"}}}))
	if !strings.HasPrefix(rule.ID, "alert_") || len(rule.Warnings) != 2 ||
		!strings.HasPrefix(rule.Warnings[0], "SOPHRA_SMTP_URL is not set") {
		t.Errorf("rule %+v", rule)
	}
	same(t, "rule", rule, &AlertRule{ID: rule.ID, ApplicationID: &shop.ID, Name: "High Error Rate",
		Condition: Condition{Metric: "error_rate", Operator: ">", Threshold: 0.05, Window: "5m", Aggregation: "mean"},
		Actions:   []Action{{Type: "email", Recipients: []string{"admin@company.com"}}, {Type: "slack", Channel: "#alerts"}},
		Enabled:   true, For: "0m", RepeatInterval: "4h", CreatedAt: rule.CreatedAt, State: "ok", Since: &rule.CreatedAt,
		Warnings: rule.Warnings})
	changed := must(client.Alerts.Update(ctx, shop.ID, rule.ID, AlertUpdate{Name: p("Go error rate"),
		Condition: &ConditionUpdate{Threshold: p(0.1), Window: p("10m")}, For: p("2m"),
		Actions: []Action{{Type: "email", Recipients: []string{"oncall@company.com"}}}}))
	until := time.Now().UTC().Truncate(time.Second).Add(time.Hour)
	silenced := must(client.Alerts.Silence(ctx, shop.ID, rule.ID, &until))
	if changed.Name != "Go error rate" || changed.Condition.Threshold != 0.1 || silenced.SilencedUntil == nil ||
		!silenced.SilencedUntil.Equal(until) || silenced.For != "2m" {
		t.Errorf("changed %+v silenced %+v", changed, silenced)
	}
	history := must(client.Alerts.History(ctx, shop.ID, rule.ID, 10))
	same(t, "history", history, &AlertHistory{Transitions: []AlertTransition{}, Deliveries: []AlertDelivery{}})
	other := must(client.Alerts.Create(ctx, shop.ID, AlertCreate{Name: "Slow", Condition: Condition{
		Metric: "response_time", Operator: ">=", Threshold: 0}, Actions: []Action{{Type: "webhook",
		URL: "https://hooks.example.com/sophra", Secret: "0123456789abcdef"}}, Enabled: Bool(false)}))
	if other.Enabled || other.Condition.Threshold != 0 || other.State != "disabled" {
		t.Errorf("other %+v", other)
	}
	if err := client.Alerts.Delete(ctx, shop.ID, other.ID); err != nil {
		t.Fatal(err)
	}
	listed := must(client.Alerts.List(ctx, shop.ID))
	if len(listed.Alerts) != 1 || listed.Alerts[0].ID != rule.ID || listed.Alerts[0].Warnings != nil {
		t.Errorf("listed %+v", listed)
	}
	e = asError(t, client.Alerts.Delete(ctx, shop.ID, other.ID))
	same(t, "deleted twice", [2]any{e.Status, e.Message}, [2]any{404,
		"No alert '" + other.ID + "' on application '" + shop.ID + "'"})
	record("alert_id", rule.ID)
	record("alert_silenced_until", until.Format(time.RFC3339))

	// deployments: reference 000's body (no worker runs in the test: it stays pending)
	dep := must(client.Deployments.Create(ctx, shop.ID, DeploymentCreate{Version: "v1.2.5",
		Description: "Bug fixes and performance improvements",
		Changes:     []string{"Fixed payment processing bug", "Updated user interface"},
		Config:      &DeploymentConfig{RollbackOnError: true, HealthCheckURL: p("/health")}}))
	same(t, "deployment", dep, &Deployment{ID: dep.ID, Version: "v1.2.5", Status: "pending", StartedAt: dep.StartedAt,
		Changes:     []string{"Fixed payment processing bug", "Updated user interface"},
		Description: p("Bug fixes and performance improvements"),
		Config:      DeploymentConfig{RollbackOnError: true, HealthCheckURL: p("/health")}})
	same(t, "deployments", must(client.Deployments.List(ctx, shop.ID)), &DeploymentList{Deployments: []Deployment{*dep}})
	record("deployment_id", dep.ID)

	// insights and predictions of two minutes of data: none yet, but well-formed
	same(t, "insights", must(client.Insights.List(ctx, shop.ID, 0)), &InsightList{Insights: []Insight{}})
	// The history read ends with the hour before the current one: the points are in it
	// only when ten minutes ago was in that hour.
	hour := time.Now().UTC().Truncate(time.Hour)
	pred := must(client.Predictions.Get(ctx, shop.ID, &PredictionQuery{Metric: "response_time", Horizon: "24h"}))
	if after := time.Now().UTC().Truncate(time.Hour); after != hour && pred.Basis.End.Equal(after.Add(-time.Hour)) {
		hour = after // the hour turned during the call
	}
	buckets := 0
	if minute.Before(hour) {
		buckets = 1
	}
	if pred.Metric != "response_time" || pred.Horizon != "24h" || len(pred.Predictions) != 0 ||
		pred.Basis.Granularity != "1h" || pred.Basis.Buckets != buckets || !pred.Basis.End.Equal(hour.Add(-time.Hour)) ||
		!pred.Basis.Start.Before(pred.Basis.End) || buckets == 0 && pred.Basis.Method != "none" {
		t.Errorf("predictions %+v", pred)
	}
	e = asError(t, func() error {
		_, err := client.Predictions.Get(ctx, shop.ID, &PredictionQuery{Horizon: "2h"})
		return err
	}())
	same(t, "bad horizon", [3]any{e.Status, e.Field, e.Message}, [3]any{400, "horizon", "horizon: must be 1h, 6h, 24h or 7d"})
	same(t, "slack", must(client.Integrations.Slack(ctx)), &SlackStatus{})

	// a key the server does not know: 401, never retried
	bad, rec := liveClient(t, Options{APIKey: "sk_live_not_a_key"})
	e = asError(t, func() error { _, err := bad.Applications.List(ctx, nil); return err }())
	same(t, "401", [3]any{e.Status, e.Code, e.Message}, [3]any{401, "Clé API invalide ou expirée",
		"Clé API invalide ou expirée. Obtenez la vôtre sur /onboarding.html"})
	same(t, "401 exchanges", rec.statuses(), []int{401})
}

// Reference 003: report vitals and events, read them back, and the 10 s rate limit
// retried end to end.
func TestLiveAgents(t *testing.T) {
	t.Parallel()
	defer failOnMust(t)
	ctx := context.Background()
	client, rec := liveClient(t, Options{})
	vitals := Vitals{AgentID: "go-agent", AgentName: "Go Production Agent", Metrics: VitalMetrics{
		TokenConsumption: 2400, TokenLimit: 100000, HallucinationRate: 0.02, LoopCount: 3,
		Custom: map[string]any{"tasksCompleted": 12, "model": "claude-3-5-sonnet"}}}
	first := must(client.ReportVitals(ctx, vitals))
	same(t, "first", first, &VitalCreated{Success: true, Health: "green", Vital: Vital{ID: first.Vital.ID,
		AgentID: "go-agent", TokenConsumption: 2400, HallucinationRate: 0.02, LoopFrequency: 3, OverallHealth: "green",
		RecordedAt: first.Vital.RecordedAt}})

	// A second report for the same agent within 10 s: 429, waited out, then stored.
	vitals.Metrics = VitalMetrics{TokenConsumption: 90000, HallucinationRate: 0.06, LoopCount: 7, ConflictCount: 2}
	start := time.Now()
	second := must(client.ReportVitals(ctx, vitals))
	if took := time.Since(start); took < 8*time.Second || took > 25*time.Second {
		t.Errorf("the retried report took %v", took)
	}
	if second.Health != "amber" || second.Vital.ID == first.Vital.ID {
		t.Errorf("second %+v", second)
	}
	same(t, "exchanges", rec.statuses(), []int{200, 429, 200})
	refused, retried := rec.exchanges[1], rec.exchanges[2]
	wait, ok := parseRetryAfter(refused.RetryAfter, refused.End)
	if !ok || wait < 8*time.Second || retried.Start.Sub(refused.End) < wait {
		t.Errorf("Retry-After %q, retried %v after the refusal", refused.RetryAfter, retried.Start.Sub(refused.End))
	}
	record("vital_ids", []int64{first.Vital.ID, second.Vital.ID})

	// A budget shorter than the server's wait: the 429 comes back at once, nothing stored.
	impatient, rec2 := liveClient(t, Options{MaxRetryTime: 1500 * time.Millisecond})
	start = time.Now()
	_, err := impatient.ReportVitals(ctx, Vitals{AgentID: "go-agent", Metrics: VitalMetrics{TokenConsumption: 1}})
	e := asError(t, err)
	if e.Status != 429 || e.Code != "Rate limit exceeded" || e.RetryAfter <= 1500*time.Millisecond ||
		!strings.HasPrefix(e.Message, "One vitals report per agent per 10 s; retry in ") || time.Since(start) > 3*time.Second {
		t.Errorf("%#v after %v", e, time.Since(start))
	}
	same(t, "impatient exchanges", rec2.statuses(), []int{429})

	// A bad payload: 400 naming the field, not retried.
	_, err = client.ReportVitals(ctx, Vitals{AgentID: "go-bad", Metrics: VitalMetrics{HallucinationRate: 1.5}})
	e = asError(t, err)
	if e.Status != 400 || e.Field != "metrics.hallucinationRate" || !strings.HasPrefix(e.Message, "metrics.hallucinationRate: ") {
		t.Errorf("%#v", e)
	}

	conflict := must(client.ReportEvent(ctx, Event{AgentID: "go-agent", Type: "directive_conflict",
		Details: "System prompt vs user instruction mismatch", Metadata: map[string]any{"instruction_a": "..."}}))
	toolError := must(client.ReportEvent(ctx, Event{AgentID: "go-agent", Type: "tool_error",
		Metadata: map[string]any{"tool": "web_search", "attempt": 3}}))
	same(t, "event", conflict, &EventCreated{Success: true, Event: EventRecord{ID: conflict.Event.ID, AgentID: "go-agent",
		EventType: "directive_conflict", Details: p("System prompt vs user instruction mismatch"),
		Metadata: map[string]any{"instruction_a": "..."}, RecordedAt: conflict.Event.RecordedAt}})
	record("event_ids", []int64{conflict.Event.ID, toolError.Event.ID})

	// Reads: history newest first, the agents list, events, ARI before 5 snapshots.
	var history *VitalsList
	eventually(t, "two vitals", func() bool {
		history, err = client.Agents.Vitals(ctx, "go-agent", nil)
		return err == nil && len(history.Vitals) == 2
	})
	same(t, "history", history.Vitals, []VitalRecord{
		{ID: second.Vital.ID, AgentID: "go-agent", TokenConsumption: 90000, TokenLimit: 100000, HallucinationRate: 0.06,
			LoopFrequency: 7, DirectiveConflicts: 2, OverallHealth: "amber", Metadata: map[string]any{},
			RecordedAt: second.Vital.RecordedAt},
		{ID: first.Vital.ID, AgentID: "go-agent", TokenConsumption: 2400, TokenLimit: 100000, HallucinationRate: 0.02,
			LoopFrequency: 3, OverallHealth: "green",
			Metadata:   map[string]any{"tasksCompleted": 12.0, "model": "claude-3-5-sonnet"},
			RecordedAt: first.Vital.RecordedAt}})
	latest := must(client.Agents.Vitals(ctx, "go-agent", &HistoryQuery{Limit: 1}))
	if len(latest.Vitals) != 1 || latest.Vitals[0].ID != second.Vital.ID {
		t.Errorf("limit 1: %+v", latest)
	}
	// The account's other agent is TestLiveReporter's, reporting meanwhile. The list
	// shows the second snapshot once the sink has landed it there too.
	var a Agent
	eventually(t, "the agents list shows the second snapshot", func() bool {
		for _, agent := range must(client.Agents.List(ctx)).Agents {
			switch agent.AgentID {
			case "go-agent":
				a = agent
			case "go-background":
			default:
				t.Errorf("an agent nobody reported: %+v", agent)
			}
		}
		return a.LastVitalsAt.Equal(second.Vital.RecordedAt)
	})
	same(t, "agent", a, Agent{AgentID: "go-agent", Name: "Go Production Agent", Status: "warning", OverallHealth: "amber",
		TokenConsumption: 90000, HallucinationRate: 0.06, LoopFrequency: 7, DirectiveConflicts: 2,
		LastVitalsAt: second.Vital.RecordedAt, UpdatedAt: second.Vital.RecordedAt})
	var events *EventsList
	eventually(t, "two events", func() bool {
		events, err = client.Agents.Events(ctx, "go-agent", nil)
		return err == nil && len(events.Events) == 2
	})
	if events.Events[0].ID != toolError.Event.ID || events.Events[0].Details != nil ||
		!reflect.DeepEqual(events.Events[0].Metadata, map[string]any{"tool": "web_search", "attempt": 3.0}) ||
		events.Events[1].ID != conflict.Event.ID {
		t.Errorf("events %+v", events.Events)
	}
	same(t, "ari", must(client.Agents.ARI(ctx, "go-agent")), &ARI{Success: true, AgentID: "go-agent", Snapshots: 2,
		Message:  p("ARI starts after 5 snapshots; this agent has 2 so far"),
		Checkups: map[string]Checkup{}, Interventions: []Intervention{}})
	// The agent detail view's reads: a vital per minute, the names reported, insights,
	// predictions (too little history for any), alert rules of the agent.
	from := first.Vital.RecordedAt.Truncate(time.Minute)
	to := second.Vital.RecordedAt.Truncate(time.Minute).Add(time.Minute)
	wantSeries := &AgentSeries{AgentID: "go-agent", Metric: "tokenConsumption", Granularity: "1m"}
	for bucket := from; bucket.Before(to); bucket = bucket.Add(time.Minute) {
		v := MetricValue{Timestamp: bucket}
		for _, r := range []Vital{first.Vital, second.Vital} { // max of the bucket's snapshots
			if r.RecordedAt.Truncate(time.Minute).Equal(bucket) && (v.Value == nil || float64(r.TokenConsumption) > *v.Value) {
				v.Value = p(float64(r.TokenConsumption))
			}
		}
		wantSeries.Data = append(wantSeries.Data, v)
	}
	var series *AgentSeries
	eventually(t, "the vitals rollup", func() bool {
		series = must(client.Agents.Metrics(ctx, "go-agent", &MetricQuery{Metric: "tokenConsumption", Start: from, End: to,
			Granularity: "1m", Stat: "max"}))
		return reflect.DeepEqual(series, wantSeries)
	})
	same(t, "vital series", series, wantSeries)
	same(t, "metric names", must(client.Agents.MetricNames(ctx, "go-agent", time.Time{}, time.Time{})),
		&AgentMetricNames{AgentID: "go-agent", Metrics: []string{"tokenConsumption", "hallucinationRate", "loopCount",
			"conflictCount", "tokenUsagePercent", "tasksCompleted"}})
	same(t, "agent insights", must(client.Agents.Insights(ctx, "go-agent", 10)), &InsightList{Insights: []Insight{}})
	ap := must(client.Agents.Predictions(ctx, "go-agent", &PredictionQuery{Horizon: "1h"}))
	if ap.AgentID != "go-agent" || ap.Metric != "tokenConsumption" || ap.Horizon != "1h" || len(ap.Predictions) != 0 ||
		ap.Basis.Granularity != "5m" {
		t.Errorf("agent predictions %+v", ap)
	}
	agentRule := must(client.AgentAlerts.Create(ctx, "go-agent", AlertCreate{Name: "Hallucinating",
		Condition: Condition{Metric: "hallucinationRate", Operator: ">", Threshold: 0.1, Window: "1m", Aggregation: "max"},
		Actions:   []Action{{Type: "webhook", URL: "https://hooks.example.com/go"}}}))
	if agentRule.AgentID == nil || *agentRule.AgentID != "go-agent" || agentRule.ApplicationID != nil ||
		!strings.HasPrefix(agentRule.Actions[0].Secret, "whsec_") || // generated, shown in this answer only
		must(client.AgentAlerts.List(ctx, "go-agent")).Alerts[0].Actions[0].Secret != "" ||
		agentRule.Condition != (Condition{"hallucinationRate", ">", 0.1, "1m", "max"}) {
		t.Errorf("agent rule %+v", agentRule)
	}
	same(t, "agent rules", len(must(client.AgentAlerts.List(ctx, "go-agent")).Alerts), 1)
	record("agent_alert_id", agentRule.ID)
	same(t, "ari limit 1", must(client.Agents.ARIWithLimit(ctx, "go-agent", 1)).Snapshots, 2)

	_, err = client.Agents.Vitals(ctx, "go-nobody", nil)
	if e := asError(t, err); e.Status != 404 {
		t.Errorf("unknown agent: %#v", e)
	}
}

// The Reporter, live: fire and forget, then Close sends what is queued.
func TestLiveReporter(t *testing.T) {
	t.Parallel()
	defer failOnMust(t)
	client, _ := liveClient(t, Options{})
	var failures []error
	var mu sync.Mutex
	r := client.NewReporter(ReporterOptions{OnError: func(err error) { mu.Lock(); failures = append(failures, err); mu.Unlock() }})
	start := time.Now()
	queued := []bool{
		r.Vitals(Vitals{AgentID: "go-background", Metrics: VitalMetrics{TokenConsumption: 700, HallucinationRate: 0.2},
			Metadata: map[string]any{"run": "nightly"}}),
		r.Event(Event{AgentID: "go-background", Type: "task_completed", Details: "nightly run"}),
	}
	if took := time.Since(start); took > 500*time.Millisecond || !queued[0] || !queued[1] {
		t.Errorf("queued %v in %v", queued, took)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if s := r.Stats(); s != (ReporterStats{Sent: 2}) || len(failures) != 0 {
		t.Errorf("stats %+v, failures %v", s, failures)
	}
}

// The hourly quota (reference 000's rate limits): a refusal whose Retry-After runs past
// the retry budget comes back at once, with the quota headers kept. The account of
// SOPHRA_TEST_LIMITED_API_KEY is on a plan of SOPHRA_TEST_LIMIT requests per hour.
func TestLiveQuota(t *testing.T) {
	t.Parallel()
	defer failOnMust(t)
	live(t)
	key, limit := os.Getenv("SOPHRA_TEST_LIMITED_API_KEY"), os.Getenv("SOPHRA_TEST_LIMIT")
	if key == "" || limit == "" {
		t.Skip("SOPHRA_TEST_LIMITED_API_KEY and SOPHRA_TEST_LIMIT are not set (tests/test_sdk_go.py sets them)")
	}
	n := must(strconv.Atoi(limit))
	ctx := context.Background()
	client, rec := liveClient(t, Options{APIKey: key})
	for remaining := n - 1; remaining >= 0; remaining-- {
		must(client.Applications.List(ctx, nil))
		if rl, _ := client.RateLimit(); rl.Limit != int64(n) || rl.Remaining != int64(remaining) {
			t.Errorf("after a request: %+v, want %d left of %d", rl, remaining, n)
		}
	}
	start := time.Now()
	_, err := client.Applications.List(ctx, nil)
	e := asError(t, err)
	rl, _ := client.RateLimit()
	if e.Status != 429 || e.Code != "Rate limit exceeded" || e.RetryAfter <= DefaultMaxRetryTime ||
		e.RetryAfter > time.Hour || time.Since(start) > 2*time.Second || rl.Remaining != 0 ||
		!strings.Contains(e.Message, "requests of this hour (test plan)") {
		t.Errorf("refusal %#v after %v, rate limit %+v", e, time.Since(start), rl)
	}
	// The refusal's wait is the rest of the hour, to the second.
	if until := time.Until(rl.Reset); e.RetryAfter < until-2*time.Second || e.RetryAfter > until+2*time.Second {
		t.Errorf("Retry-After %v, the quota resets in %v", e.RetryAfter, until)
	}
	want := make([]int, n+1)
	for i := range want {
		want[i] = 200
	}
	want[n] = 429
	same(t, "quota exchanges", rec.statuses(), want)
}
