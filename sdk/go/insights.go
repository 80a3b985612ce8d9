package sophra

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Insights: GET /v1/applications/{id}/insights (reference 000's AI insights).
type Insights struct{ c *Client }

// Insight is one finding; the fields after Timestamp are set on anomaly episodes.
type Insight struct {
	ID             string     `json:"id"`
	Type           string     `json:"type"`     // performance | reliability | traffic | anomaly | deployment
	Severity       string     `json:"severity"` // medium | high
	Title          string     `json:"title"`
	Description    string     `json:"description"`
	Recommendation string     `json:"recommendation"`
	Timestamp      time.Time  `json:"timestamp"`
	Metric         *string    `json:"metric,omitempty"`
	Status         *string    `json:"status,omitempty"` // open | resolved
	StartedAt      *time.Time `json:"started_at,omitempty"`
	EndedAt        *time.Time `json:"ended_at,omitempty"`
	Observed       *float64   `json:"observed,omitempty"`
	Expected       *float64   `json:"expected,omitempty"`
	ExpectedLow    *float64   `json:"expected_low,omitempty"`
	ExpectedHigh   *float64   `json:"expected_high,omitempty"`
	Score          *float64   `json:"score,omitempty"`
	Cause          *string    `json:"cause,omitempty"`
}

// InsightList is an application's insights, newest first.
type InsightList struct {
	Insights []Insight `json:"insights"`
}

// List is GET /v1/applications/{id}/insights; limit 0 is the server's default (50,
// at most 500).
func (i *Insights) List(ctx context.Context, appID string, limit int) (*InsightList, error) {
	return call[InsightList](ctx, i.c, http.MethodGet, "/v1/applications/"+seg(appID)+"/insights", limitQuery(limit), nil)
}

func limitQuery(limit int) url.Values {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return q
}
