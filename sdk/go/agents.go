package sophra

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Vitals is a health snapshot of an agent (POST /api/vitals, reference 003).
type Vitals struct {
	AgentID   string         `json:"agentId"`             // stable across runs, so ARI can build a baseline
	AgentName string         `json:"agentName,omitempty"` // shown on the dashboard
	Metrics   VitalMetrics   `json:"metrics"`
	Metadata  map[string]any `json:"metadata,omitempty"`
}

// VitalMetrics are the standard metrics; a zero value is not sent, and the server's
// default is the same (0, and 100000 for TokenLimit). Custom holds any other metric:
// it is sent inside "metrics" and the server stores it in the snapshot's metadata.
type VitalMetrics struct {
	TokenConsumption  int64   // tokens used in the current window
	TokenLimit        int64   // the model's context window
	HallucinationRate float64 // 0.0-1.0; amber at 0.05, red above 0.15
	LoopCount         int64   // recursive calls / re-tries; amber at 50, red above 100
	ConflictCount     int64   // directive conflicts; amber at 2, red at 5
	Custom            map[string]any
}

// MarshalJSON writes the reference's camelCase names, with the custom metrics beside
// them (a standard name wins over the same key in Custom).
func (m VitalMetrics) MarshalJSON() ([]byte, error) {
	out := make(map[string]any, len(m.Custom)+5)
	for k, v := range m.Custom {
		out[k] = v
	}
	put := func(name string, v any, zero bool) {
		if !zero {
			out[name] = v
		}
	}
	put("tokenConsumption", m.TokenConsumption, m.TokenConsumption == 0)
	put("tokenLimit", m.TokenLimit, m.TokenLimit == 0)
	put("hallucinationRate", m.HallucinationRate, m.HallucinationRate == 0)
	put("loopCount", m.LoopCount, m.LoopCount == 0)
	put("conflictCount", m.ConflictCount, m.ConflictCount == 0)
	return json.Marshal(out)
}

// VitalCreated answers a report with the health the server scored.
type VitalCreated struct {
	Success bool   `json:"success"`
	Health  string `json:"health"` // green | amber | red
	Vital   Vital  `json:"vital"`
}

// Vital is the stored snapshot as the report's answer shows it.
type Vital struct {
	ID                 int64     `json:"id"`
	AgentID            string    `json:"agent_id"`
	TokenConsumption   int64     `json:"token_consumption"`
	HallucinationRate  float64   `json:"hallucination_rate"`
	LoopFrequency      int64     `json:"loop_frequency"`
	DirectiveConflicts int64     `json:"directive_conflicts"`
	OverallHealth      string    `json:"overall_health"`
	RecordedAt         time.Time `json:"recorded_at"`
}

// VitalRecord is a stored snapshot as the history shows it.
type VitalRecord struct {
	ID                 int64          `json:"id"`
	AgentID            string         `json:"agent_id"`
	TokenConsumption   int64          `json:"token_consumption"`
	TokenLimit         int64          `json:"token_limit"`
	HallucinationRate  float64        `json:"hallucination_rate"`
	LoopFrequency      int64          `json:"loop_frequency"`
	DirectiveConflicts int64          `json:"directive_conflicts"`
	OverallHealth      string         `json:"overall_health"`
	Metadata           map[string]any `json:"metadata"`
	RecordedAt         time.Time      `json:"recorded_at"`
}

// VitalsList is an agent's snapshots, newest first.
type VitalsList struct {
	Success bool          `json:"success"`
	Vitals  []VitalRecord `json:"vitals"`
}

// Event is a discrete event of an agent (POST /api/events): an error, a conflict, a
// finished task.
type Event struct {
	AgentID  string         `json:"agentId"`
	Type     string         `json:"type"` // a slug: directive_conflict, tool_error, task_completed
	Details  string         `json:"details,omitempty"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

// EventRecord is a stored event.
type EventRecord struct {
	ID         int64          `json:"id"`
	AgentID    string         `json:"agent_id"`
	EventType  string         `json:"event_type"`
	Details    *string        `json:"details"`
	Metadata   map[string]any `json:"metadata"`
	RecordedAt time.Time      `json:"recorded_at"`
}

// EventCreated answers an event report.
type EventCreated struct {
	Success bool        `json:"success"`
	Event   EventRecord `json:"event"`
}

// EventsList is an agent's events, newest first.
type EventsList struct {
	Success bool          `json:"success"`
	Events  []EventRecord `json:"events"`
}

// Agent is one agent with its latest vitals.
type Agent struct {
	AgentID            string    `json:"agent_id"`
	Name               string    `json:"name"`
	Status             string    `json:"status"`         // active | warning | critical
	OverallHealth      string    `json:"overall_health"` // green | amber | red
	TokenConsumption   int64     `json:"token_consumption"`
	HallucinationRate  float64   `json:"hallucination_rate"`
	LoopFrequency      int64     `json:"loop_frequency"`
	DirectiveConflicts int64     `json:"directive_conflicts"`
	LastVitalsAt       time.Time `json:"last_vitals_at"`
	UpdatedAt          time.Time `json:"updated_at"`
}

// AgentsList is every agent of the key's account.
type AgentsList struct {
	Success bool    `json:"success"`
	Agents  []Agent `json:"agents"`
}

// ARI is the drift engine's view of an agent (docs/ari.md).
type ARI struct {
	Success       bool               `json:"success"`
	AgentID       string             `json:"agent_id"`
	Ready         bool               `json:"ready"` // false until ARI has seen 5 snapshots
	Snapshots     int                `json:"snapshots"`
	Message       *string            `json:"message"`
	Stats         ARIStats           `json:"stats"`
	Checkups      map[string]Checkup `json:"checkups"` // auth, integ, charge
	Interventions []Intervention     `json:"interventions"`
}

// ARIStats sums up the interventions.
type ARIStats struct {
	InterventionsToday int   `json:"interventions_today"`
	TokensSaved        int64 `json:"tokens_saved"` // estimated
	ConflictsResolved  int   `json:"conflicts_resolved"`
	// TokensSavedMeasured sums the measured drops of the interventions whose outcome is known.
	TokensSavedMeasured int64 `json:"tokens_saved_measured"`
}

// Checkup is one security checkup's result.
type Checkup struct {
	Result string `json:"result"` // ok | warn | fail
	Text   string `json:"text"`
}

// Intervention is one episode a protocol opened.
type Intervention struct {
	ID          string         `json:"id"`
	Protocol    int            `json:"protocol"`
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Severity    string         `json:"severity"` // low | medium | high
	TokensSaved int64          `json:"tokens_saved"`
	Status      string         `json:"status"` // open | closed
	CreatedAt   time.Time      `json:"created_at"`
	ClosedAt    *time.Time     `json:"closed_at"`
	Details     map[string]any `json:"details"`
	// Outcome is improved | unchanged | worse once the snapshots after the episode were
	// measured, nil until then; OutcomeDetails holds the figures (means before and after).
	Outcome             *string        `json:"outcome"`
	OutcomeDetails      map[string]any `json:"outcome_details"`
	TokensSavedMeasured *int64         `json:"tokens_saved_measured"` // protocols 1 and 4
}

// ReportVitals is POST /api/vitals. One report per agent per 10 s is accepted; a second
// one sooner is answered 429 and waits out the server's Retry-After when that fits in
// Options.MaxRetryTime. For reports that must never block the caller, use a Reporter.
func (c *Client) ReportVitals(ctx context.Context, v Vitals) (*VitalCreated, error) {
	return call[VitalCreated](ctx, c, http.MethodPost, "/api/vitals", nil, v)
}

// ReportEvent is POST /api/events.
func (c *Client) ReportEvent(ctx context.Context, e Event) (*EventCreated, error) {
	return call[EventCreated](ctx, c, http.MethodPost, "/api/events", nil, e)
}

// Agents: the agent reads of reference 003 (/api/agents...), and those of the agent
// detail view beyond it (events, metrics, insights, predictions).
type Agents struct{ c *Client }

// HistoryQuery bounds a history read; zero fields take the server's defaults (the 50
// newest, at most 500). Start and End (exclusive) apply to events only.
type HistoryQuery struct {
	Limit      int
	Start, End time.Time
}

// List is GET /api/agents.
func (a *Agents) List(ctx context.Context) (*AgentsList, error) {
	return call[AgentsList](ctx, a.c, http.MethodGet, "/api/agents", nil, nil)
}

// Vitals is GET /api/agents/{id}/vitals?limit=N; q may be nil. An agent that never
// reported is a 404.
func (a *Agents) Vitals(ctx context.Context, agentID string, q *HistoryQuery) (*VitalsList, error) {
	v := url.Values{}
	if q != nil && q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return call[VitalsList](ctx, a.c, http.MethodGet, "/api/agents/"+seg(agentID)+"/vitals", v, nil)
}

// Events is GET /api/agents/{id}/events (the agent detail view's events); q may be nil.
func (a *Agents) Events(ctx context.Context, agentID string, q *HistoryQuery) (*EventsList, error) {
	v := url.Values{}
	if q != nil {
		if q.Limit > 0 {
			v.Set("limit", strconv.Itoa(q.Limit))
		}
		setTime(v, "start", q.Start)
		setTime(v, "end", q.End)
	}
	return call[EventsList](ctx, a.c, http.MethodGet, "/api/agents/"+seg(agentID)+"/events", v, nil)
}

// ARI is GET /api/agents/{id}/ari with the 50 newest interventions.
func (a *Agents) ARI(ctx context.Context, agentID string) (*ARI, error) {
	return a.ARIWithLimit(ctx, agentID, 0)
}

// ARIWithLimit is GET /api/agents/{id}/ari?limit=N: the N newest interventions (0:
// the server's default, 50; at most 500).
func (a *Agents) ARIWithLimit(ctx context.Context, agentID string, limit int) (*ARI, error) {
	return call[ARI](ctx, a.c, http.MethodGet, "/api/agents/"+seg(agentID)+"/ari", limitQuery(limit), nil)
}

// AgentSeries is one vital of an agent, one value per bucket.
type AgentSeries struct {
	AgentID     string        `json:"agent_id"`
	Metric      string        `json:"metric"`
	Granularity string        `json:"granularity"`
	Data        []MetricValue `json:"data"` // Value nil (count: 0) for an empty bucket
}

// Metrics is GET /api/agents/{id}/metrics (the agent detail view's charts): a vital
// over time, with the rules of Client.Metrics.Get. Metric is tokenConsumption (the
// default), hallucinationRate, loopCount, conflictCount, tokenUsagePercent or a custom
// numeric metric; q may be nil.
func (a *Agents) Metrics(ctx context.Context, agentID string, q *MetricQuery) (*AgentSeries, error) {
	return call[AgentSeries](ctx, a.c, http.MethodGet, "/api/agents/"+seg(agentID)+"/metrics", metricQuery(q), nil)
}

// AgentMetricNames are the vitals an agent reported: the built-in ones, then custom ones.
type AgentMetricNames struct {
	AgentID string   `json:"agent_id"`
	Metrics []string `json:"metrics"`
}

// MetricNames is GET /api/agents/{id}/metric-names over [start, end); zero times mean
// no bound.
func (a *Agents) MetricNames(ctx context.Context, agentID string, start, end time.Time) (*AgentMetricNames, error) {
	v := url.Values{}
	setTime(v, "start", start)
	setTime(v, "end", end)
	return call[AgentMetricNames](ctx, a.c, http.MethodGet, "/api/agents/"+seg(agentID)+"/metric-names", v, nil)
}

// Insights is GET /api/agents/{id}/insights: anomaly episodes of the agent's vitals;
// limit 0 is the server's default (50).
func (a *Agents) Insights(ctx context.Context, agentID string, limit int) (*InsightList, error) {
	return call[InsightList](ctx, a.c, http.MethodGet, "/api/agents/"+seg(agentID)+"/insights", limitQuery(limit), nil)
}

// AgentPredictionSet is a PredictionSet of an agent's vital.
type AgentPredictionSet struct {
	AgentID string `json:"agent_id"`
	PredictionSet
}

// Predictions is GET /api/agents/{id}/predictions (metric default tokenConsumption,
// horizon 24h); q may be nil.
func (a *Agents) Predictions(ctx context.Context, agentID string, q *PredictionQuery) (*AgentPredictionSet, error) {
	return call[AgentPredictionSet](ctx, a.c, http.MethodGet, "/api/agents/"+seg(agentID)+"/predictions",
		predictionQuery(q), nil)
}
