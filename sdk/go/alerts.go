package sophra

import (
	"context"
	"net/http"
	"time"
)

// Alerts are alert rules: Client.Alerts those of an application,
// /v1/applications/{id}/alerts (reference 000's Create Alert, plus list, update, silence,
// history and delete), Client.AgentAlerts the same calls for an agent's vitals,
// /api/agents/{id}/alerts (metrics tokenConsumption, hallucinationRate, loopCount,
// conflictCount, tokenUsagePercent or a custom one). Rules: docs/alerts.md.
type Alerts struct {
	c      *Client
	prefix string // "/v1/applications/" or "/api/agents/"
}

// Condition of a rule: fires while Aggregation of Metric over Window compares to
// Threshold with Operator. Window and Aggregation default to 5m and mean when empty.
type Condition struct {
	Metric      string  `json:"metric"`
	Operator    string  `json:"operator"` // >, >=, <, <=, ==, !=
	Threshold   float64 `json:"threshold"`
	Window      string  `json:"window,omitempty"`
	Aggregation string  `json:"aggregation,omitempty"`
}

// Action is where a firing rule is told: Type "email" (Recipients), "slack" (Channel,
// optional WebhookURL) or "webhook" (URL, optional Secret: the HMAC-SHA256 signing
// secret, generated when omitted and shown only in the answer to the call that set it).
type Action struct {
	Type       string   `json:"type"`
	Recipients []string `json:"recipients,omitempty"`
	Channel    string   `json:"channel,omitempty"`
	WebhookURL string   `json:"webhook_url,omitempty"`
	URL        string   `json:"url,omitempty"`
	Secret     string   `json:"secret,omitempty"`
}

// AlertCreate is the body of a new rule; empty optional fields take the server's
// defaults (enabled, for "0m", repeat_interval "4h").
type AlertCreate struct {
	Name           string    `json:"name"`
	Condition      Condition `json:"condition"`
	Actions        []Action  `json:"actions"`
	Enabled        *bool     `json:"enabled,omitempty"`
	For            string    `json:"for,omitempty"`
	RepeatInterval string    `json:"repeat_interval,omitempty"`
}

// ConditionUpdate changes the condition fields that are set.
type ConditionUpdate struct {
	Metric      *string  `json:"metric,omitempty"`
	Operator    *string  `json:"operator,omitempty"`
	Threshold   *float64 `json:"threshold,omitempty"`
	Window      *string  `json:"window,omitempty"`
	Aggregation *string  `json:"aggregation,omitempty"`
}

// AlertUpdate changes the fields that are set.
type AlertUpdate struct {
	Name           *string          `json:"name,omitempty"`
	Condition      *ConditionUpdate `json:"condition,omitempty"`
	Actions        []Action         `json:"actions,omitempty"`
	Enabled        *bool            `json:"enabled,omitempty"`
	For            *string          `json:"for,omitempty"`
	RepeatInterval *string          `json:"repeat_interval,omitempty"`
}

// AlertRule is a rule with its current state.
type AlertRule struct {
	ID             string     `json:"id"`
	ApplicationID  *string    `json:"application_id"`
	AgentID        *string    `json:"agent_id"`
	Name           string     `json:"name"`
	Condition      Condition  `json:"condition"`
	Actions        []Action   `json:"actions"`
	Enabled        bool       `json:"enabled"`
	For            string     `json:"for"`
	RepeatInterval string     `json:"repeat_interval"`
	SilencedUntil  *time.Time `json:"silenced_until"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      *time.Time `json:"updated_at"`
	State          string     `json:"state"` // ok | pending | firing | no_data | disabled
	Since          *time.Time `json:"since"`
	Value          *float64   `json:"value"`
	EvaluatedAt    *time.Time `json:"evaluated_at"`
	// Warnings, on the answer to a write only: what will keep a notification from being
	// delivered (no SMTP server, no Slack token).
	Warnings []string `json:"warnings"`
}

// AlertList is every rule of an application.
type AlertList struct {
	Alerts []AlertRule `json:"alerts"`
}

// AlertHistory is a rule's state transitions and delivery attempts, newest first.
type AlertHistory struct {
	Transitions []AlertTransition `json:"transitions"`
	Deliveries  []AlertDelivery   `json:"deliveries"`
}

// AlertTransition is one change of a rule's state.
type AlertTransition struct {
	ID            string    `json:"id"`
	State         string    `json:"state"`
	PreviousState string    `json:"previous_state"`
	Notify        *string   `json:"notify"` // firing | resolved | reminder | no_data, nil when nobody was told
	Value         *float64  `json:"value"`
	Threshold     float64   `json:"threshold"`
	StartedAt     time.Time `json:"started_at"`
	At            time.Time `json:"at"`
}

// AlertDelivery is one attempt to deliver a transition to one action.
type AlertDelivery struct {
	DeliveryID    string     `json:"delivery_id"`
	TransitionID  string     `json:"transition_id"`
	ActionType    string     `json:"action_type"`
	Target        string     `json:"target"`
	Attempt       int        `json:"attempt"`
	Outcome       string     `json:"outcome"` // delivered | retrying | failed | not_delivered | suppressed
	Error         *string    `json:"error"`
	LatencyMS     int64      `json:"latency_ms"`
	At            time.Time  `json:"at"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
}

func (a *Alerts) path(subjectID string) string { return a.prefix + seg(subjectID) + "/alerts" }

// Create is POST .../{id}/alerts.
func (a *Alerts) Create(ctx context.Context, subjectID string, rule AlertCreate) (*AlertRule, error) {
	return call[AlertRule](ctx, a.c, http.MethodPost, a.path(subjectID), nil, rule)
}

// List is GET .../{id}/alerts.
func (a *Alerts) List(ctx context.Context, subjectID string) (*AlertList, error) {
	return call[AlertList](ctx, a.c, http.MethodGet, a.path(subjectID), nil, nil)
}

// Update is PATCH .../{id}/alerts/{alert_id}.
func (a *Alerts) Update(ctx context.Context, subjectID, alertID string, fields AlertUpdate) (*AlertRule, error) {
	return call[AlertRule](ctx, a.c, http.MethodPatch, a.path(subjectID)+"/"+seg(alertID), nil, fields)
}

// Silence is POST .../{id}/alerts/{alert_id}/silence: delivery is muted
// until `until`; nil lifts a silence.
func (a *Alerts) Silence(ctx context.Context, subjectID, alertID string, until *time.Time) (*AlertRule, error) {
	body := map[string]any{"until": nil}
	if until != nil {
		body["until"] = until.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	return call[AlertRule](ctx, a.c, http.MethodPost, a.path(subjectID)+"/"+seg(alertID)+"/silence", nil, body)
}

// History is GET .../{id}/alerts/{alert_id}/history; limit 0 is the
// server's default (100 per list, at most 500).
func (a *Alerts) History(ctx context.Context, subjectID, alertID string, limit int) (*AlertHistory, error) {
	return call[AlertHistory](ctx, a.c, http.MethodGet, a.path(subjectID)+"/"+seg(alertID)+"/history", limitQuery(limit), nil)
}

// Delete is DELETE .../{id}/alerts/{alert_id}.
func (a *Alerts) Delete(ctx context.Context, subjectID, alertID string) error {
	return a.c.do(ctx, http.MethodDelete, a.path(subjectID)+"/"+seg(alertID), nil, nil, nil)
}
