// Package sophra is the Go client of a Sophra server: application monitoring under /v1
// (applications, metrics, alerts, deployments, insights, predictions; reference 000,
// "Sophonz") and agent monitoring under /api (vitals, events, agents, ARI; reference 003).
//
// Standard library only. Every call takes a context.Context and returns an error value;
// a failed request is an *Error (use errors.As). Requests answered 429, 502, 503 or 504
// are retried with exponential backoff and full jitter, never sooner than the server's
// Retry-After, within Options.MaxRetryTime (30 s by default). A Reporter sends vitals
// and events in the background without ever blocking or panicking in the caller.
//
//	client, err := sophra.NewClient(sophra.Options{APIKey: "your-api-key"})
//	if err != nil { ... }
//	apps, err := client.Applications.List(ctx, nil)
package sophra
