package sophra

import (
	"context"
	"net/http"
	"time"
)

// Integrations: the account's Slack bot token, /v1/integrations/slack, used by
// "slack" alert actions without a webhook_url.
type Integrations struct{ c *Client }

// SlackStatus says whether a token is set (the token itself is never read back).
type SlackStatus struct {
	Configured bool       `json:"configured"`
	SetAt      *time.Time `json:"set_at"`
}

// SetSlack is PUT /v1/integrations/slack with a bot token (xoxb-...).
func (i *Integrations) SetSlack(ctx context.Context, botToken string) (*SlackStatus, error) {
	return call[SlackStatus](ctx, i.c, http.MethodPut, "/v1/integrations/slack", nil, map[string]string{"bot_token": botToken})
}

// Slack is GET /v1/integrations/slack.
func (i *Integrations) Slack(ctx context.Context) (*SlackStatus, error) {
	return call[SlackStatus](ctx, i.c, http.MethodGet, "/v1/integrations/slack", nil, nil)
}

// DeleteSlack is DELETE /v1/integrations/slack.
func (i *Integrations) DeleteSlack(ctx context.Context) error {
	return i.c.do(ctx, http.MethodDelete, "/v1/integrations/slack", nil, nil, nil)
}
