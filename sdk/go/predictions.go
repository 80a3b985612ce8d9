package sophra

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Predictions: GET /v1/applications/{id}/predictions (reference 000).
type Predictions struct{ c *Client }

// PredictionQuery: zero fields take the server's defaults (response_time, 24h).
type PredictionQuery struct {
	Metric  string
	Horizon string // 1h, 6h, 24h or 7d
}

// Prediction is the forecast of one bucket's mean with its prediction interval.
type Prediction struct {
	Timestamp      time.Time `json:"timestamp"`
	PredictedValue float64   `json:"predicted_value"`
	Confidence     float64   `json:"confidence"`
	Lower          float64   `json:"lower"`
	Upper          float64   `json:"upper"`
}

// PredictionBasis is the history the forecast was made from.
type PredictionBasis struct {
	Granularity string    `json:"granularity"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	Buckets     int       `json:"buckets"` // below 3 there are no predictions
	Method      string    `json:"method"`
}

// PredictionSet is one prediction per bucket over the horizon.
type PredictionSet struct {
	Metric      string          `json:"metric"`
	Horizon     string          `json:"horizon"`
	Predictions []Prediction    `json:"predictions"`
	Basis       PredictionBasis `json:"basis"`
}

// Get is GET /v1/applications/{id}/predictions; q may be nil.
func (p *Predictions) Get(ctx context.Context, appID string, q *PredictionQuery) (*PredictionSet, error) {
	return call[PredictionSet](ctx, p.c, http.MethodGet, "/v1/applications/"+seg(appID)+"/predictions",
		predictionQuery(q), nil)
}

func predictionQuery(q *PredictionQuery) url.Values {
	v := url.Values{}
	if q != nil {
		setNonEmpty(v, "metric", q.Metric)
		setNonEmpty(v, "horizon", q.Horizon)
	}
	return v
}
