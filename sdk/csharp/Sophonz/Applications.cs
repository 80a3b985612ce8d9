// The /v1 endpoints of reference 000: one class per resource, one method per endpoint.
using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace Sophonz
{
    public abstract class Resource
    {
        internal readonly SophonzClient Client;
        internal Resource(SophonzClient client) { Client = client; }

        internal static string App(string appId) { return "/v1/applications/" + SophonzClient.Segment(appId); }

        internal static JsonObject Body(params object[] keysAndValues)
        {
            var body = new JsonObject();
            for (var i = 0; i < keysAndValues.Length; i += 2)
                if (keysAndValues[i + 1] != null) body[(string)keysAndValues[i]] = keysAndValues[i + 1];
            return body;
        }
    }

    public sealed class Applications : Resource
    {
        internal Applications(SophonzClient client) : base(client) { }

        /// <summary>GET /v1/applications: {"applications": [...], "total", "page", "per_page"}
        /// (defaults page 1, per_page 20, at most 100).</summary>
        public Task<JsonObject> ListAsync(int? page = null, int? perPage = null,
                                          CancellationToken cancellationToken = default(CancellationToken))
        {
            return Client.ObjectAsync("GET", "/v1/applications", SophonzClient.Query("page", page, "per_page", perPage), null,
                                      cancellationToken);
        }

        /// <summary>GET /v1/applications/{id}: the application, with its last-24-hours "metrics".</summary>
        public Task<JsonObject> GetAsync(string appId, CancellationToken cancellationToken = default(CancellationToken))
        {
            return Client.ObjectAsync("GET", App(appId), null, null, cancellationToken);
        }

        /// <summary>POST /v1/applications: the new application. Arguments left null are not
        /// sent (the server's defaults apply: environment "production", status "active").
        /// <paramref name="config"/>: any JSON object, e.g. new { monitoring = true, alerts = true }.</summary>
        public Task<JsonObject> CreateAsync(string name, string description = null, string environment = null,
                                            string status = null, string baseUrl = null, object config = null,
                                            CancellationToken cancellationToken = default(CancellationToken))
        {
            return Client.ObjectAsync("POST", "/v1/applications", null,
                Body("name", name, "description", description, "environment", environment, "status", status,
                     "base_url", baseUrl, "config", config), cancellationToken);
        }

        /// <summary>PATCH /v1/applications/{id} with exactly the fields given, by the server's
        /// names (a null value clears: new Dictionary&lt;string, object&gt; { ["description"] = null }):
        /// the updated application.</summary>
        public Task<JsonObject> UpdateAsync(string appId, object fields,
                                            CancellationToken cancellationToken = default(CancellationToken))
        {
            return Client.ObjectAsync("PATCH", App(appId), null, fields ?? new JsonObject(), cancellationToken);
        }

        /// <summary>DELETE /v1/applications/{id} (204).</summary>
        public Task DeleteAsync(string appId, CancellationToken cancellationToken = default(CancellationToken))
        {
            return Client.RequestAsync("DELETE", App(appId), null, null, cancellationToken);
        }
    }

    public sealed class Metrics : Resource
    {
        internal Metrics(SophonzClient client) : base(client) { }

        /// <summary>POST /v1/applications/{id}/metrics {"points": [...]}: each point
        /// {metric, value, timestamp} (timestamp: DateTime/DateTimeOffset, ISO 8601 string or
        /// epoch ms); at most 10,000, taken whole or not at all. Answers {"accepted", "batch_id"}.</summary>
        public Task<JsonObject> SendAsync(string appId, IEnumerable<object> points,
                                          CancellationToken cancellationToken = default(CancellationToken))
        {
            if (points == null) throw new ArgumentNullException("points");
            return Client.ObjectAsync("POST", App(appId) + "/metrics", null, Body("points", new JsonArray(points)),
                                      cancellationToken);
        }

        /// <summary>GET /v1/applications/{id}/metrics: {"metric", "granularity", "data":
        /// [{"timestamp", "value"}]}. metric: response_time (default), error_rate, throughput
        /// or a custom name; granularity 1m, 5m, 1h, 1d; stat mean (default), p50, p95, p99,
        /// min, max, sum, count.</summary>
        public Task<JsonObject> GetAsync(string appId, string metric = null, DateTimeOffset? start = null,
                                         DateTimeOffset? end = null, string granularity = null, string stat = null,
                                         CancellationToken cancellationToken = default(CancellationToken))
        {
            return Client.ObjectAsync("GET", App(appId) + "/metrics",
                SophonzClient.Query("metric", metric, "start", start, "end", end, "granularity", granularity, "stat", stat),
                null, cancellationToken);
        }
    }

    public sealed class Alerts : Resource
    {
        internal Alerts(SophonzClient client) : base(client) { }

        private static string Rule(string appId, string alertId)
        {
            return App(appId) + "/alerts/" + SophonzClient.Segment(alertId);
        }

        /// <summary>POST /v1/applications/{id}/alerts: the new rule. condition:
        /// new { metric = "error_rate", @operator = ">", threshold = 0.05 }; actions: e.g.
        /// new { type = "email", recipients = new[] { "admin@company.com" } }.</summary>
        public Task<JsonObject> CreateAsync(string appId, string name, object condition, IEnumerable<object> actions,
                                            bool? enabled = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            return Client.ObjectAsync("POST", App(appId) + "/alerts", null,
                Body("name", name, "condition", condition, "actions", actions == null ? null : new JsonArray(actions),
                     "enabled", enabled), cancellationToken);
        }

        /// <summary>GET /v1/applications/{id}/alerts: {"alerts": [...]}.</summary>
        public Task<JsonObject> ListAsync(string appId, CancellationToken cancellationToken = default(CancellationToken))
        {
            return Client.ObjectAsync("GET", App(appId) + "/alerts", null, null, cancellationToken);
        }

        /// <summary>PATCH /v1/applications/{id}/alerts/{alertId} with the fields given (name,
        /// condition (partial), actions, enabled, for, repeat_interval): the updated rule.</summary>
        public Task<JsonObject> UpdateAsync(string appId, string alertId, object fields,
                                            CancellationToken cancellationToken = default(CancellationToken))
        {
            return Client.ObjectAsync("PATCH", Rule(appId, alertId), null, fields ?? new JsonObject(), cancellationToken);
        }

        /// <summary>POST .../alerts/{alertId}/silence {"until"}: mutes delivery until then
        /// (null lifts the silence): the rule.</summary>
        public Task<JsonObject> SilenceAsync(string appId, string alertId, DateTimeOffset? until,
                                             CancellationToken cancellationToken = default(CancellationToken))
        {
            var body = new JsonObject();
            body["until"] = until.HasValue ? Json.FormatTime(until.Value) : null;
            return Client.ObjectAsync("POST", Rule(appId, alertId) + "/silence", null, body, cancellationToken);
        }

        /// <summary>GET .../alerts/{alertId}/history?limit: the rule's state changes and notifications.</summary>
        public Task<JsonObject> HistoryAsync(string appId, string alertId, int? limit = null,
                                             CancellationToken cancellationToken = default(CancellationToken))
        {
            return Client.ObjectAsync("GET", Rule(appId, alertId) + "/history", SophonzClient.Query("limit", limit), null,
                                      cancellationToken);
        }

        /// <summary>DELETE /v1/applications/{id}/alerts/{alertId} (204).</summary>
        public Task DeleteAsync(string appId, string alertId, CancellationToken cancellationToken = default(CancellationToken))
        {
            return Client.RequestAsync("DELETE", Rule(appId, alertId), null, null, cancellationToken);
        }
    }

    public sealed class Deployments : Resource
    {
        internal Deployments(SophonzClient client) : base(client) { }

        /// <summary>POST /v1/applications/{id}/deployments: the new deployment (status
        /// "pending"). config: e.g. new { rollback_on_error = true, health_check_url = "/health" }.</summary>
        public Task<JsonObject> CreateAsync(string appId, string version, string description = null,
                                            IEnumerable<string> changes = null, object config = null,
                                            CancellationToken cancellationToken = default(CancellationToken))
        {
            return Client.ObjectAsync("POST", App(appId) + "/deployments", null,
                Body("version", version, "description", description,
                     "changes", changes == null ? null : new JsonArray(changes), "config", config), cancellationToken);
        }

        /// <summary>GET /v1/applications/{id}/deployments: {"deployments": [...]}, newest first.</summary>
        public Task<JsonObject> ListAsync(string appId, CancellationToken cancellationToken = default(CancellationToken))
        {
            return Client.ObjectAsync("GET", App(appId) + "/deployments", null, null, cancellationToken);
        }
    }

    public sealed class Insights : Resource
    {
        internal Insights(SophonzClient client) : base(client) { }

        /// <summary>GET /v1/applications/{id}/insights?limit: {"insights": [...]}, newest first.</summary>
        public Task<JsonObject> ListAsync(string appId, int? limit = null,
                                          CancellationToken cancellationToken = default(CancellationToken))
        {
            return Client.ObjectAsync("GET", App(appId) + "/insights", SophonzClient.Query("limit", limit), null,
                                      cancellationToken);
        }
    }

    public sealed class Predictions : Resource
    {
        internal Predictions(SophonzClient client) : base(client) { }

        /// <summary>GET /v1/applications/{id}/predictions?metric&amp;horizon: {"metric",
        /// "horizon", "predictions": [...], "basis"}; horizon 1h, 6h, 24h (default) or 7d.</summary>
        public Task<JsonObject> GetAsync(string appId, string metric = null, string horizon = null,
                                         CancellationToken cancellationToken = default(CancellationToken))
        {
            return Client.ObjectAsync("GET", App(appId) + "/predictions",
                                      SophonzClient.Query("metric", metric, "horizon", horizon), null, cancellationToken);
        }
    }
}
