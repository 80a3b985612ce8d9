package sophra

import (
	"errors"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Version of this SDK, sent in the User-Agent header.
const Version = "0.1.0"

// DefaultBaseURL is a self-hosted server on this machine; the hosted /v1 API is
// https://api.sophonz.com/v1.
const DefaultBaseURL = "http://127.0.0.1:8000"

// Options configure a Client. The zero value of each field means its default.
type Options struct {
	// APIKey is sent as "Authorization: Bearer <key>". Default: the SOPHONZ_API_KEY
	// environment variable, else SOPHRA_API_KEY (SOPHONZ_API_KEY wins when both are
	// set, as in the Python and JavaScript /v1 SDKs, which read only that one).
	APIKey string
	// BaseURL is the server's address, e.g. "https://sophra.example.com". A trailing
	// "/v1" is accepted and dropped (reference 000 gives its base URL with /v1), since
	// the agent API lives beside /v1 under /api. Default: SOPHONZ_BASE_URL, else
	// SOPHRA_BASE_URL, else DefaultBaseURL.
	BaseURL string
	// Timeout bounds each attempt (connection, answer and body). Default 10 s.
	Timeout time.Duration
	// MaxRetryTime: no retry starts later than this after the first attempt. Default
	// 30 s; a negative value disables retries.
	MaxRetryTime time.Duration
	// HTTPClient sends the requests. Default: a client of its own with no timeout of
	// its own (Timeout above applies per attempt).
	HTTPClient *http.Client
	// UserAgent is added before the SDK's own "sophra-go/<version>".
	UserAgent string
}

// Client is safe for concurrent use. Its fields group the calls by resource.
type Client struct {
	Applications *Applications
	Metrics      *Metrics
	Alerts       *Alerts // of applications
	AgentAlerts  *Alerts // of agents
	Deployments  *Deployments
	Insights     *Insights
	Predictions  *Predictions
	Integrations *Integrations
	Agents       *Agents

	apiKey       string
	baseURL      string
	timeout      time.Duration
	maxRetryTime time.Duration
	http         *http.Client
	userAgent    string

	mu        sync.Mutex
	rateLimit *RateLimit
}

// ErrNoAPIKey is returned by NewClient when neither Options.APIKey nor the
// environment gives a key.
var ErrNoAPIKey = errors.New("sophra: no API key: set Options.APIKey, SOPHONZ_API_KEY or SOPHRA_API_KEY")

// NewClient makes a client; it fails only when no API key is given or found.
func NewClient(opts Options) (*Client, error) {
	key := firstNonEmpty(opts.APIKey, os.Getenv("SOPHONZ_API_KEY"), os.Getenv("SOPHRA_API_KEY"))
	if key == "" {
		return nil, ErrNoAPIKey
	}
	base := strings.TrimRight(firstNonEmpty(opts.BaseURL, os.Getenv("SOPHONZ_BASE_URL"), os.Getenv("SOPHRA_BASE_URL"),
		DefaultBaseURL), "/")
	base = strings.TrimRight(strings.TrimSuffix(base, "/v1"), "/")
	c := &Client{
		apiKey:       key,
		baseURL:      base,
		timeout:      opts.Timeout,
		maxRetryTime: opts.MaxRetryTime,
		http:         opts.HTTPClient,
		userAgent:    strings.TrimSpace(opts.UserAgent + " sophra-go/" + Version),
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.maxRetryTime == 0 {
		c.maxRetryTime = DefaultMaxRetryTime
	}
	if c.http == nil {
		c.http = &http.Client{}
	}
	c.Applications = &Applications{c}
	c.Metrics = &Metrics{c}
	c.Alerts = &Alerts{c, "/v1/applications/"}
	c.AgentAlerts = &Alerts{c, "/api/agents/"}
	c.Deployments = &Deployments{c}
	c.Insights = &Insights{c}
	c.Predictions = &Predictions{c}
	c.Integrations = &Integrations{c}
	c.Agents = &Agents{c}
	return c, nil
}

// BaseURL is the server address the client calls (without /v1).
func (c *Client) BaseURL() string { return c.baseURL }

// RateLimit is the hourly quota of the account, from the X-RateLimit-* headers.
type RateLimit struct {
	Limit     int64     // requests per hour; -1 when unlimited (enterprise plan)
	Remaining int64     // left this hour; -1 when unlimited
	Reset     time.Time // when the quota resets
}

// Unlimited is true for an enterprise key.
func (r RateLimit) Unlimited() bool { return r.Limit < 0 }

// RateLimit is the quota of the last answer that carried it; ok is false before any.
func (c *Client) RateLimit() (limit RateLimit, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rateLimit == nil {
		return RateLimit{}, false
	}
	return *c.rateLimit, true
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}
