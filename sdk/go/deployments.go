package sophra

import (
	"context"
	"net/http"
	"time"
)

// Deployments: /v1/applications/{id}/deployments (reference 000).
type Deployments struct{ c *Client }

// DeploymentConfig: roll back when the deployment's metrics or health check fail;
// HealthCheckURL is a path joined to the application's base_url, or an absolute URL.
type DeploymentConfig struct {
	RollbackOnError bool    `json:"rollback_on_error"`
	HealthCheckURL  *string `json:"health_check_url"`
}

// DeploymentCreate is the body of a new deployment; empty optional fields are not sent.
type DeploymentCreate struct {
	Version     string            `json:"version"`
	Description string            `json:"description,omitempty"`
	Changes     []string          `json:"changes,omitempty"`
	Config      *DeploymentConfig `json:"config,omitempty"`
}

// Deployment is accepted as pending; the worker moves it to in_progress, then success,
// failed or rolled_back.
type Deployment struct {
	ID          string           `json:"id"`
	Version     string           `json:"version"`
	Status      string           `json:"status"`
	StartedAt   time.Time        `json:"started_at"`
	CompletedAt *time.Time       `json:"completed_at"`
	Changes     []string         `json:"changes"`
	Description *string          `json:"description"`
	Reason      *string          `json:"reason"`
	Config      DeploymentConfig `json:"config"`
}

// DeploymentList is an application's deployments, newest first (at most 100).
type DeploymentList struct {
	Deployments []Deployment `json:"deployments"`
}

// Create is POST /v1/applications/{id}/deployments.
func (d *Deployments) Create(ctx context.Context, appID string, dep DeploymentCreate) (*Deployment, error) {
	return call[Deployment](ctx, d.c, http.MethodPost, "/v1/applications/"+seg(appID)+"/deployments", nil, dep)
}

// List is GET /v1/applications/{id}/deployments.
func (d *Deployments) List(ctx context.Context, appID string) (*DeploymentList, error) {
	return call[DeploymentList](ctx, d.c, http.MethodGet, "/v1/applications/"+seg(appID)+"/deployments", nil, nil)
}

// String makes a *string for the optional fields of requests: sophra.String("/health").
func String(s string) *string { return &s }

// Bool makes a *bool for the optional fields of requests: sophra.Bool(false).
func Bool(b bool) *bool { return &b }
