package sophra

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Applications: /v1/applications (reference 000, plus update and delete).
type Applications struct{ c *Client }

// ApplicationSummary is one application as listed.
type ApplicationSummary struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Status      string    `json:"status"`      // active | inactive | maintenance
	Environment string    `json:"environment"` // production | staging | development | test
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Application is one application in full, with its last-24-hours metrics.
type Application struct {
	ApplicationSummary
	Description *string        `json:"description"`
	BaseURL     *string        `json:"base_url"`
	Config      map[string]any `json:"config"`
	Metrics     AppMetrics     `json:"metrics"`
}

// AppMetrics are the means of the last 24 hours; nil without data.
type AppMetrics struct {
	Uptime       *float64 `json:"uptime"`        // % of minutes whose error rate was below 1
	ResponseTime *float64 `json:"response_time"` // ms
	ErrorRate    *float64 `json:"error_rate"`    // 0..1
}

// ApplicationList is one page of applications.
type ApplicationList struct {
	Applications []ApplicationSummary `json:"applications"`
	Total        int                  `json:"total"`
	Page         int                  `json:"page"`
	PerPage      int                  `json:"per_page"`
}

// ListOptions page a list; zero fields take the server's defaults (page 1, 20 per page).
type ListOptions struct {
	Page    int
	PerPage int // at most 100
}

// ApplicationCreate is the body of a new application; empty fields are not sent (the
// server's defaults apply: environment "production", status "active").
type ApplicationCreate struct {
	Name        string         `json:"name"`
	Description string         `json:"description,omitempty"`
	Environment string         `json:"environment,omitempty"`
	Status      string         `json:"status,omitempty"`
	BaseURL     string         `json:"base_url,omitempty"`
	Config      map[string]any `json:"config,omitempty"` // e.g. {"monitoring": true, "alerts": true}
}

// ApplicationUpdate changes the fields that are set (nil pointers are not sent).
// ClearDescription and ClearBaseURL send null, which removes the value.
type ApplicationUpdate struct {
	Name             *string
	Description      *string
	ClearDescription bool
	Environment      *string
	Status           *string
	BaseURL          *string
	ClearBaseURL     bool
	Config           map[string]any // nil: unchanged; empty map: cleared
}

// MarshalJSON sends exactly the fields given, null for the cleared ones.
func (u ApplicationUpdate) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	set := func(name string, v *string, clear bool) {
		if clear {
			m[name] = nil
		} else if v != nil {
			m[name] = *v
		}
	}
	set("name", u.Name, false)
	set("description", u.Description, u.ClearDescription)
	set("environment", u.Environment, false)
	set("status", u.Status, false)
	set("base_url", u.BaseURL, u.ClearBaseURL)
	if u.Config != nil {
		m["config"] = u.Config
	}
	return json.Marshal(m)
}

// List is GET /v1/applications; opts may be nil.
func (a *Applications) List(ctx context.Context, opts *ListOptions) (*ApplicationList, error) {
	q := url.Values{}
	if opts != nil && opts.Page > 0 {
		q.Set("page", strconv.Itoa(opts.Page))
	}
	if opts != nil && opts.PerPage > 0 {
		q.Set("per_page", strconv.Itoa(opts.PerPage))
	}
	return call[ApplicationList](ctx, a.c, http.MethodGet, "/v1/applications", q, nil)
}

// Get is GET /v1/applications/{id}.
func (a *Applications) Get(ctx context.Context, id string) (*Application, error) {
	return call[Application](ctx, a.c, http.MethodGet, "/v1/applications/"+seg(id), nil, nil)
}

// Create is POST /v1/applications.
func (a *Applications) Create(ctx context.Context, app ApplicationCreate) (*Application, error) {
	return call[Application](ctx, a.c, http.MethodPost, "/v1/applications", nil, app)
}

// Update is PATCH /v1/applications/{id}: the updated application.
func (a *Applications) Update(ctx context.Context, id string, fields ApplicationUpdate) (*Application, error) {
	return call[Application](ctx, a.c, http.MethodPatch, "/v1/applications/"+seg(id), nil, fields)
}

// Delete is DELETE /v1/applications/{id}.
func (a *Applications) Delete(ctx context.Context, id string) error {
	return a.c.do(ctx, http.MethodDelete, "/v1/applications/"+seg(id), nil, nil, nil)
}
