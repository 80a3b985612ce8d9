package sophra

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Alerts: the alert rules of an application, /v1/applications/{id}/alerts (reference
// 000's Create Alert, plus list, update, silence, history and delete; docs/alerts.md).
type Alerts struct{ c *Client }

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
// optional WebhookURL) or "webhook" (URL, optional Secret).
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

func alertsPath(appID string) string { return "/v1/applications/" + seg(appID) + "/alerts" }

// Create is POST /v1/applications/{id}/alerts.
func (a *Alerts) Create(ctx context.Context, appID string, rule AlertCreate) (*AlertRule, error) {
	return call[AlertRule](ctx, a.c, http.MethodPost, alertsPath(appID), nil, rule)
}

// List is GET /v1/applications/{id}/alerts.
func (a *Alerts) List(ctx context.Context, appID string) (*AlertList, error) {
	return call[AlertList](ctx, a.c, http.MethodGet, alertsPath(appID), nil, nil)
}

// Update is PATCH /v1/applications/{id}/alerts/{alert_id}.
func (a *Alerts) Update(ctx context.Context, appID, alertID string, fields AlertUpdate) (*AlertRule, error) {
	return call[AlertRule](ctx, a.c, http.MethodPatch, alertsPath(appID)+"/"+seg(alertID), nil, fields)
}

// Silence is POST /v1/applications/{id}/alerts/{alert_id}/silence: delivery is muted
// until `until`; nil lifts a silence.
func (a *Alerts) Silence(ctx context.Context, appID, alertID string, until *time.Time) (*AlertRule, error) {
	body := map[string]any{"until": nil}
	if until != nil {
		body["until"] = until.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	return call[AlertRule](ctx, a.c, http.MethodPost, alertsPath(appID)+"/"+seg(alertID)+"/silence", nil, body)
}

// History is GET /v1/applications/{id}/alerts/{alert_id}/history; limit 0 is the
// server's default (100 per list, at most 500).
func (a *Alerts) History(ctx context.Context, appID, alertID string, limit int) (*AlertHistory, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return call[AlertHistory](ctx, a.c, http.MethodGet, alertsPath(appID)+"/"+seg(alertID)+"/history", q, nil)
}

// Delete is DELETE /v1/applications/{id}/alerts/{alert_id}.
func (a *Alerts) Delete(ctx context.Context, appID, alertID string) error {
	return a.c.do(ctx, http.MethodDelete, alertsPath(appID)+"/"+seg(alertID), nil, nil, nil)
}
