package sophra

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// Metrics: /v1/applications/{id}/metrics (reference 000's Get Metrics, plus sending).
type Metrics struct{ c *Client }

// MetricPoint is one measurement: response_time (ms), error_rate (0..1), throughput
// (requests per minute) or a custom name matching ^[a-z][a-z0-9_.]{0,63}$.
type MetricPoint struct {
	Metric    string
	Value     float64
	Timestamp time.Time // at most 5 minutes ahead of the server, at most 400 days old
}

// MarshalJSON sends the timestamp as epoch milliseconds (exact, no time zone to read).
func (p MetricPoint) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Metric    string  `json:"metric"`
		Value     float64 `json:"value"`
		Timestamp int64   `json:"timestamp"`
	}{p.Metric, p.Value, p.Timestamp.UnixMilli()})
}

// MetricsAccepted answers a batch: all its points are taken, or none.
type MetricsAccepted struct {
	Accepted int   `json:"accepted"`
	BatchID  int64 `json:"batch_id"`
}

// MetricQuery selects a series; zero fields take the server's defaults (metric
// response_time, the last 24 h, granularity by range, stat mean).
type MetricQuery struct {
	Metric      string
	Start, End  time.Time // End is exclusive
	Granularity string    // 1m, 5m, 1h or 1d
	Stat        string    // mean, p50, p95, p99, min, max, sum or count
}

// MetricSeries is one value per bucket of the range.
type MetricSeries struct {
	Metric      string        `json:"metric"`
	Granularity string        `json:"granularity"`
	Data        []MetricValue `json:"data"`
}

// MetricValue is one bucket; Value is nil when the bucket has no points.
type MetricValue struct {
	Timestamp time.Time `json:"timestamp"`
	Value     *float64  `json:"value"`
}

// Send is POST /v1/applications/{id}/metrics (at most 10,000 points).
func (m *Metrics) Send(ctx context.Context, appID string, points []MetricPoint) (*MetricsAccepted, error) {
	if points == nil {
		points = []MetricPoint{}
	}
	body := map[string][]MetricPoint{"points": points}
	return call[MetricsAccepted](ctx, m.c, http.MethodPost, "/v1/applications/"+seg(appID)+"/metrics", nil, body)
}

// Get is GET /v1/applications/{id}/metrics; q may be nil.
func (m *Metrics) Get(ctx context.Context, appID string, q *MetricQuery) (*MetricSeries, error) {
	return call[MetricSeries](ctx, m.c, http.MethodGet, "/v1/applications/"+seg(appID)+"/metrics", metricQuery(q), nil)
}

func metricQuery(q *MetricQuery) url.Values {
	v := url.Values{}
	if q != nil {
		setNonEmpty(v, "metric", q.Metric)
		setTime(v, "start", q.Start)
		setTime(v, "end", q.End)
		setNonEmpty(v, "granularity", q.Granularity)
		setNonEmpty(v, "stat", q.Stat)
	}
	return v
}

func setNonEmpty(v url.Values, key, value string) {
	if value != "" {
		v.Set(key, value)
	}
}

// setTime sends a time as ISO 8601 in UTC with milliseconds, as the server reads it.
func setTime(v url.Values, key string, t time.Time) {
	if !t.IsZero() {
		v.Set(key, t.UTC().Format("2006-01-02T15:04:05.000Z"))
	}
}
