// Against a real Sophra server (tests/test_sdk_csharp.py starts one and sets):
//   SOPHRA_TEST_BASE_URL     the server, e.g. http://127.0.0.1:8123
//   SOPHRA_TEST_API_KEY      a fresh account's key; its one application is SOPHRA_TEST_APP_ID
//                            ("My Application", made before the run)
//   SOPHRA_TEST_LIMITED_KEY  a fresh account on a plan of 3 /v1 requests per hour
//   SOPHRA_TEST_OUTPUT       where to write the ids this run made (JSON), so the Python
//                            side can read back what was stored
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Net;
using System.Net.Http;
using System.Net.Sockets;
using System.Threading;
using System.Threading.Tasks;
using static Sophonz.Tests.Runner;

namespace Sophonz.Tests
{
    /// <summary>Records each HTTP exchange on its way through (the real handler does the work).</summary>
    public sealed class Recorder : DelegatingHandler
    {
        public readonly List<JsonObject> Exchanges = new List<JsonObject>();
        private readonly Stopwatch clock = Stopwatch.StartNew();

        public Recorder() : base(new HttpClientHandler()) { }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var start = clock.ElapsedMilliseconds;
            var res = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
            var exchange = new JsonObject();
            exchange["url"] = request.RequestUri.AbsoluteUri;
            exchange["status"] = (int)res.StatusCode;
            exchange["start_ms"] = start;
            exchange["end_ms"] = clock.ElapsedMilliseconds;
            exchange["retry_after"] = res.Headers.RetryAfter != null ? res.Headers.RetryAfter.ToString() : null;
            lock (Exchanges) Exchanges.Add(exchange);
            return res;
        }

        public string Statuses()
        {
            lock (Exchanges) return string.Join(",", Exchanges.ConvertAll(e => e["status"].ToString()));
        }
    }

    public static class LiveTests
    {
        private static readonly JsonObject facts = new JsonObject();

        private static string Env(string name)
        {
            var value = Environment.GetEnvironmentVariable(name);
            if (string.IsNullOrEmpty(value)) throw new AssertionException(name + " is not set: live tests need a server (or run with --unit)");
            return value;
        }

        private static string BaseUrl { get { return Env("SOPHRA_TEST_BASE_URL"); } }
        private static string Key { get { return Env("SOPHRA_TEST_API_KEY"); } }

        private static SophonzClient Client(Recorder recorder = null, string key = null, TimeSpan? maxRetry = null, string baseUrl = null)
        {
            return new SophonzClient(new SophonzClientOptions
            {
                ApiKey = key ?? Key, BaseUrl = baseUrl ?? BaseUrl, Handler = recorder,
                MaxRetryTime = maxRetry ?? TimeSpan.FromSeconds(30),
            });
        }

        public static void WriteFacts()
        {
            var path = Environment.GetEnvironmentVariable("SOPHRA_TEST_OUTPUT");
            if (!string.IsNullOrEmpty(path)) File.WriteAllText(path, facts.ToString());
        }

        /// <summary>Polls until done(value) or 15 s (a 404 meanwhile is "not yet"); the last value.</summary>
        private static async Task<JsonObject> Eventually(Func<Task<JsonObject>> read, Func<JsonObject, bool> done)
        {
            var deadline = DateTime.UtcNow.AddSeconds(15);
            while (true)
            {
                JsonObject value = null;
                try
                {
                    value = await read();
                }
                catch (SophonzException e) when (e.Status == 404 && DateTime.UtcNow < deadline)
                {
                    // an agent is known once its first report is stored, a moment after the answer
                }
                if ((value != null && done(value)) || DateTime.UtcNow > deadline) return value;
                await Task.Delay(100);
            }
        }

        private static int FreePort()
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            listener.Stop();
            return port;
        }

        private static long NextHour()
        {
            var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            return now - now % 3600 + 3600;
        }

        private static string Iso(long ms)
        {
            return DateTimeOffset.FromUnixTimeMilliseconds(ms).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'");
        }

        private static JsonObject Summary(JsonObject app)
        {
            var o = new JsonObject();
            foreach (var k in new[] { "id", "name", "status", "environment", "created_at", "updated_at" }) o[k] = app[k];
            return o;
        }

        private static JsonObject With(JsonObject o, params object[] keysAndValues)
        {
            var copy = (JsonObject)Json.Parse(o.ToString());
            for (var i = 0; i < keysAndValues.Length; i += 2) copy[(string)keysAndValues[i]] = keysAndValues[i + 1];
            return copy;
        }

        private static readonly object NoMetrics = new { uptime = (object)null, response_time = (object)null, error_rate = (object)null };

        private static readonly object[] ReferenceActions =
        {
            new { type = "email", recipients = new[] { "admin@company.com" } },
            new { type = "slack", channel = "#alerts" },
        };

        public static void Register()
        {
            Test("live: reference 000's example lists applications", async () =>
            {
                // As in the reference: a client from a key, applications.list(), printed.
                using (var client = Client())
                {
                    var apps = await client.Applications.ListAsync();
                    var app = apps.GetArray("applications").GetObject(0);
                    Assert.JsonEqual(new
                    {
                        applications = new[] { new { id = Env("SOPHRA_TEST_APP_ID"), name = "My Application", status = "active",
                                                     environment = "production", created_at = app["created_at"], updated_at = app["created_at"] } },
                        total = 1, page = 1, per_page = 20,
                    }, apps);
                    Assert.Equal("{\"applications\":[{\"id\":\"" + app["id"] + "\",\"name\":\"My Application\",\"status\":\"active\"," +
                                 "\"environment\":\"production\",\"created_at\":\"" + app["created_at"] + "\",\"updated_at\":\"" +
                                 app["created_at"] + "\"}],\"total\":1,\"page\":1,\"per_page\":20}", apps.ToString(), "Console.WriteLine(apps)");
                }
            });

            Test("live: applications: create, get, update, list pages, delete", async () =>
            {
                using (var client = Client())
                {
                    var shop = await client.Applications.CreateAsync("C# Shop", description: "The web shop", environment: "staging",
                                                                      config: new { monitoring = true, alerts = true });
                    Assert.JsonEqual(new { id = shop["id"], name = "C# Shop", description = "The web shop", status = "active",
                                           environment = "staging", base_url = (string)null, config = new { monitoring = true, alerts = true },
                                           metrics = NoMetrics, created_at = shop["created_at"], updated_at = shop["created_at"] }, shop, "created");
                    Assert.True(shop.GetString("id").StartsWith("app_"), "app_ id");
                    Assert.JsonEqual(shop, await client.Applications.GetAsync(shop.GetString("id")), "got");
                    var fields = new Dictionary<string, object> { { "status", "maintenance" }, { "base_url", "https://shop.example.com" }, { "description", null } };
                    var updated = await client.Applications.UpdateAsync(shop.GetString("id"), fields);
                    Assert.JsonEqual(With(shop, "status", "maintenance", "base_url", "https://shop.example.com/", "description", null,
                                          "updated_at", updated["updated_at"]), updated, "updated");
                    var second = await client.Applications.CreateAsync("C# Second", status: "inactive", baseUrl: "https://second.example.com");
                    Assert.JsonEqual(new { name = "C# Second", status = "inactive", environment = "production", base_url = "https://second.example.com/" },
                                     new { name = second["name"], status = second["status"], environment = second["environment"], base_url = second["base_url"] });
                    var page2 = await client.Applications.ListAsync(page: 2, perPage: 1);
                    Assert.Equal(3L, page2.GetInt64("total").Value, "total");
                    Assert.Equal(1, page2.GetArray("applications").Count, "one per page");
                    await client.Applications.DeleteAsync(second.GetString("id"));
                    var gone = await Assert.ThrowsAsync<SophonzException>(() => client.Applications.GetAsync(second.GetString("id")));
                    Assert.JsonEqual(Assert.Error(404, "Not found", "No application '" + second["id"] + "' for this API key"), Assert.Error(gone));
                    Assert.JsonEqual(new { success = false, error = "Not found", message = gone.Message }, gone.Body, "error body");
                    facts["shop"] = updated;
                    facts["deleted_app_id"] = second["id"];
                }
            });

            Test("live: metrics: send points, read them back by minute", async () =>
            {
                using (var client = Client())
                {
                    var app = (await client.Applications.CreateAsync("C# Metrics")).GetString("id");
                    var minute = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 60000 * 60000 - 10 * 60000;
                    var at = DateTimeOffset.FromUnixTimeMilliseconds(minute);
                    var sent = await client.Metrics.SendAsync(app, new object[]
                    {
                        new { metric = "response_time", value = 100, timestamp = at.AddSeconds(1).ToOffset(TimeSpan.FromHours(2)) },
                        new { metric = "response_time", value = 250.5, timestamp = minute + 2000 },
                        new { metric = "response_time", value = 600, timestamp = Iso(minute + 60000) },
                        new { metric = "error_rate", value = 0.25, timestamp = at.AddSeconds(3).UtcDateTime },
                    });
                    Assert.JsonEqual(new { accepted = 4, batch_id = sent["batch_id"] }, sent, "accepted");
                    var counted = await Eventually(() => client.Metrics.GetAsync(app, "response_time", at, at.AddMinutes(2), "1m", "count"),
                                                   c => c.GetArray("data").Count == 2 && c.GetArray("data").GetObject(1).GetDouble("value") == 1);
                    Assert.JsonEqual(new { metric = "response_time", granularity = "1m", data = new[] {
                        new { timestamp = Iso(minute), value = 2 }, new { timestamp = Iso(minute + 60000), value = 1 } } }, counted, "count");
                    Assert.JsonEqual(new { metric = "response_time", granularity = "1m", data = new[] {
                        new { timestamp = Iso(minute), value = 175.25 }, new { timestamp = Iso(minute + 60000), value = 600.0 } } },
                        await client.Metrics.GetAsync(app, "response_time", at, at.AddMinutes(2), "1m"), "mean");
                    var bad = await Assert.ThrowsAsync<SophonzException>(() => client.Metrics.SendAsync(app, new object[] {
                        new { metric = "error_rate", value = 2, timestamp = 1 } }));
                    Assert.JsonEqual(Assert.Error(400, "Invalid request", "points[0].value: must be between 0 and 1 for error_rate (a fraction 0..1)",
                                                  "points[0].value"), Assert.Error(bad));
                    facts["metrics_app_id"] = app;
                    facts["metrics_minute_ms"] = minute;
                }
            });

            Test("live: alerts: create, list, update, silence, history, delete", async () =>
            {
                using (var client = Client())
                {
                    var app = (await client.Applications.CreateAsync("C# Alerts")).GetString("id");
                    var rule = await client.Alerts.CreateAsync(app, "High Error Rate",
                        new Dictionary<string, object> { { "metric", "error_rate" }, { "operator", ">" }, { "threshold", 0.05 } }, ReferenceActions);
                    var id = rule.GetString("id");
                    Assert.True(id.StartsWith("alert_"), "alert_ id");
                    Assert.JsonEqual(new { name = "High Error Rate", enabled = true, state = "ok", application_id = app,
                                           condition = new { metric = "error_rate", @operator = ">", threshold = 0.05, window = "5m", aggregation = "mean" },
                                           actions = ReferenceActions },
                                     new { name = rule["name"], enabled = rule["enabled"], state = rule["state"], application_id = rule["application_id"],
                                           condition = rule["condition"], actions = rule["actions"] }, "created");
                    Assert.Equal(1, (await client.Alerts.ListAsync(app)).GetArray("alerts").Count, "listed");
                    var changed = await client.Alerts.UpdateAsync(app, id, new Dictionary<string, object> {
                        { "name", "Very High Error Rate" }, { "condition", new { threshold = 0.1 } }, { "for", "90s" } });
                    Assert.JsonEqual(new { name = "Very High Error Rate", threshold = 0.1, metric = "error_rate", @for = "90s" },
                                     new { name = changed["name"], threshold = changed.GetObject("condition")["threshold"],
                                           metric = changed.GetObject("condition")["metric"], @for = changed["for"] }, "updated");
                    var until = new DateTimeOffset(2099, 1, 1, 12, 0, 0, TimeSpan.Zero);
                    var silenced = await client.Alerts.SilenceAsync(app, id, until);
                    facts["silenced_until"] = silenced["silenced_until"];
                    Assert.Equal("2099-01-01T12:00:00Z", silenced.GetString("silenced_until"), "silenced until");
                    Assert.JsonEqual(new { transitions = new object[0], deliveries = new object[0] }, await client.Alerts.HistoryAsync(app, id, limit: 10), "history");
                    var other = (await client.Alerts.CreateAsync(app, "Slow", new { metric = "response_time", @operator = ">", threshold = 500 },
                                                                 new object[] { new { type = "email", recipients = new[] { "ops@company.com" } } },
                                                                 enabled: false)).GetString("id");
                    await client.Alerts.DeleteAsync(app, other);
                    var gone = await Assert.ThrowsAsync<SophonzException>(() => client.Alerts.DeleteAsync(app, other));
                    Assert.JsonEqual(Assert.Error(404, "Not found", "No alert '" + other + "' on application '" + app + "'"), Assert.Error(gone));
                    var listed = await client.Alerts.ListAsync(app);
                    Assert.Equal(id, listed.GetArray("alerts").GetObject(0).GetString("id"), "the rule left");
                    Assert.Equal(1, listed.GetArray("alerts").Count, "one rule left");
                    facts["alerts_app_id"] = app;
                    facts["alert_id"] = id;
                }
            });

            Test("live: deployments: create and list", async () =>
            {
                using (var client = Client())
                {
                    var app = (await client.Applications.CreateAsync("C# Deploys")).GetString("id");
                    var deployment = await client.Deployments.CreateAsync(app, "v1.2.5", "Bug fixes and performance improvements",
                        new[] { "Fixed payment processing bug", "Updated user interface" }, new { rollback_on_error = true, health_check_url = "/health" });
                    Assert.JsonEqual(new { id = deployment["id"], version = "v1.2.5", status = "pending", started_at = deployment["started_at"],
                                           completed_at = (string)null, changes = new[] { "Fixed payment processing bug", "Updated user interface" },
                                           description = "Bug fixes and performance improvements", reason = (string)null,
                                           config = new { rollback_on_error = true, health_check_url = "/health" } }, deployment, "created");
                    var listed = await Eventually(() => client.Deployments.ListAsync(app), d => d.GetArray("deployments").Count > 0);
                    Assert.JsonEqual(new { deployments = new[] { deployment } }, listed, "listed");
                    facts["deploy_app_id"] = app;
                    facts["deployment"] = deployment;
                }
            });

            Test("live: insights and predictions of a new application", async () =>
            {
                using (var client = Client())
                {
                    var app = (await client.Applications.CreateAsync("C# Quiet")).GetString("id");
                    Assert.JsonEqual(new { insights = new object[0] }, await client.Insights.ListAsync(app, limit: 5), "insights");
                    var predicted = await client.Predictions.GetAsync(app, "error_rate", "6h");
                    Assert.JsonEqual(new { metric = "error_rate", horizon = "6h", predictions = new object[0] },
                                     new { metric = predicted["metric"], horizon = predicted["horizon"], predictions = predicted["predictions"] }, "predictions");
                    var bad = await Assert.ThrowsAsync<SophonzException>(() => client.Predictions.GetAsync(app, horizon: "2h"));
                    Assert.JsonEqual(Assert.Error(400, "Invalid request", "horizon: must be 1h, 6h, 24h or 7d", "horizon"), Assert.Error(bad));
                }
            });

            Test("live: errors: 400 names the field and is not retried", async () =>
            {
                var recorder = new Recorder();
                using (var client = Client(recorder))
                {
                    var e = await Assert.ThrowsAsync<SophonzException>(() => client.Applications.CreateAsync(""));
                    Assert.JsonEqual(Assert.Error(400, "Invalid request", "name: string should have at least 1 character", "name"), Assert.Error(e));
                    Assert.Equal("400", recorder.Statuses(), "one exchange");
                }
            });

            Test("live: errors: 401 for an unknown key, not retried, no quota", async () =>
            {
                var recorder = new Recorder();
                using (var client = Client(recorder, key: "sk_live_not_a_key"))
                {
                    var e = await Assert.ThrowsAsync<SophonzException>(() => client.Applications.ListAsync());
                    Assert.JsonEqual(Assert.Error(401, "Clé API invalide ou expirée", "Clé API invalide ou expirée. Obtenez la vôtre sur /onboarding.html"),
                                     Assert.Error(e));
                    var agents = await Assert.ThrowsAsync<SophonzException>(() => client.Agents.ListAsync());
                    Assert.Equal(401, agents.Status, "agent API");
                    Assert.Equal("401,401", recorder.Statuses(), "one exchange each");
                    Assert.Equal(null, client.RateLimit, "no quota headers");
                }
            });

            Test("live: errors: ids are one percent-encoded path segment (404)", async () =>
            {
                var recorder = new Recorder();
                using (var client = Client(recorder))
                {
                    // (An id with "/" is sent as %2F too, but the server decodes the path before
                    // routing, so such an id cannot be addressed at all.)
                    var e = await Assert.ThrowsAsync<SophonzException>(() => client.Applications.GetAsync("app x?y#z"));
                    Assert.JsonEqual(Assert.Error(404, "Not found", "No application 'app x?y#z' for this API key"), Assert.Error(e));
                    var agent = await Assert.ThrowsAsync<SophonzException>(() => client.Agents.VitalsAsync("no such?agent"));
                    Assert.JsonEqual(Assert.Error(404, "Agent not found", "No agent 'no such?agent' for this API key"), Assert.Error(agent));
                    Assert.Equal(BaseUrl + "/v1/applications/app%20x%3Fy%23z", recorder.Exchanges[0].GetString("url"), "url on the wire");
                    Assert.Equal(BaseUrl + "/api/agents/no%20such%3Fagent/vitals", recorder.Exchanges[1].GetString("url"), "agent url on the wire");
                }
            });

            Test("live: errors: nothing listening is status 0, Network error, not retried", async () =>
            {
                var dead = "http://127.0.0.1:" + FreePort();
                var watch = Stopwatch.StartNew();
                using (var client = Client(baseUrl: dead))
                {
                    var e = await Assert.ThrowsAsync<SophonzException>(() => client.Applications.ListAsync());
                    Assert.JsonEqual(new { status = 0, error = "Network error", field = (string)null, retry_after = (int?)null },
                                     new { status = e.Status, error = e.Error, field = e.Field, retry_after = e.RetryAfter });
                    Assert.True(e.Message.StartsWith("Cannot reach " + dead + "/v1/applications: "), e.Message);
                    Assert.True(watch.ElapsedMilliseconds < 5000, "at once");
                }
            });

            Test("live: errors: no answer within Timeout is status 0, Timeout", async () =>
            {
                var silent = new TcpListener(IPAddress.Loopback, 0);  // accepts connections, never answers
                silent.Start();
                try
                {
                    var url = "http://127.0.0.1:" + ((IPEndPoint)silent.LocalEndpoint).Port;
                    using (var client = new SophonzClient(new SophonzClientOptions { ApiKey = Key, BaseUrl = url, Timeout = TimeSpan.FromMilliseconds(300) }))
                    {
                        var watch = Stopwatch.StartNew();
                        var e = await Assert.ThrowsAsync<SophonzException>(() => client.Applications.ListAsync());
                        Assert.JsonEqual(Assert.Error(0, "Timeout", "No answer from " + url + "/v1/applications within 0.3 s"), Assert.Error(e));
                        Assert.True(watch.ElapsedMilliseconds < 3000, "soon after the timeout: " + watch.ElapsedMilliseconds + " ms");
                    }
                }
                finally
                {
                    silent.Stop();
                }
            });

            Test("live: rate-limit headers: the client's count is the server's", async () =>
            {
                using (var client = Client())
                {
                    await client.Applications.ListAsync();
                    var first = client.RateLimit;
                    await client.Applications.ListAsync(perPage: 1);
                    var second = client.RateLimit;
                    Assert.JsonEqual(new { limit = 1000, remaining = first.Remaining - 1, reset = NextHour(), unlimited = false },
                                     new { limit = second.Limit, remaining = second.Remaining, reset = second.Reset, unlimited = second.Unlimited });
                    facts["remaining_after_rate_limit_test"] = second.Remaining;
                }
            });

            Test("live: quota: a 429 whose Retry-After ends past the budget fails at once", async () =>
            {
                var recorder = new Recorder();
                using (var client = Client(recorder, key: Env("SOPHRA_TEST_LIMITED_KEY")))
                {
                    for (var remaining = 2; remaining >= 0; remaining--)
                    {
                        await client.Applications.ListAsync();
                        Assert.JsonEqual(new { limit = 3, remaining = remaining, reset = NextHour() },
                                         new { limit = client.RateLimit.Limit, remaining = client.RateLimit.Remaining, reset = client.RateLimit.Reset });
                    }
                    var watch = Stopwatch.StartNew();
                    var e = await Assert.ThrowsAsync<SophonzException>(() => client.Applications.ListAsync());
                    Assert.True(watch.ElapsedMilliseconds < 5000, "no wait for the next hour: " + watch.ElapsedMilliseconds + " ms");
                    Assert.Equal(429, e.Status, "status");
                    Assert.Equal("Rate limit exceeded", e.Error, "error");
                    var left = NextHour() - DateTimeOffset.UtcNow.ToUnixTimeSeconds();
                    Assert.True(e.RetryAfter.HasValue && Math.Abs(e.RetryAfter.Value - left) <= 2, "Retry-After " + e.RetryAfter + " vs " + left);
                    Assert.Equal("200,200,200,429", recorder.Statuses(), "exchanges");
                }
            });

            Test("live: agents: report vitals and events, read agents, vitals, events and ARI", async () =>
            {
                using (var client = Client())
                {
                    var created = await client.Agents.ReportVitalsAsync(new
                    {
                        agentId = "csharp-agent", agentName = "C# Production Agent",
                        metrics = new { tokenConsumption = 2400, tokenLimit = 100000, hallucinationRate = 0.02, loopCount = 3, conflictCount = 0, model = "gpt-x" },
                        metadata = new { region = "eu" },
                    });
                    var vital = created.GetObject("vital");
                    Assert.JsonEqual(new { success = true, health = "green", vital = new { id = vital["id"], agent_id = "csharp-agent",
                        token_consumption = 2400, hallucination_rate = 0.02, loop_frequency = 3, directive_conflicts = 0, overall_health = "green",
                        recorded_at = vital["recorded_at"] } }, created, "created");
                    var evt = await client.Agents.ReportEventAsync(new { agentId = "csharp-agent", type = "tool_error", details = "Web search tool timed out",
                                                                         metadata = new { tool = "web_search", attempt = 3 } });
                    var stored = evt.GetObject("event");
                    Assert.JsonEqual(new { success = true, @event = new { id = stored["id"], agent_id = "csharp-agent", event_type = "tool_error",
                        details = "Web search tool timed out", metadata = new { tool = "web_search", attempt = 3 }, recorded_at = stored["recorded_at"] } },
                        evt, "event");
                    var vitals = await Eventually(() => client.Agents.VitalsAsync("csharp-agent", limit: 5), v => v.GetArray("vitals").Count > 0);
                    Assert.JsonEqual(new { success = true, vitals = new[] { new { id = vital["id"], agent_id = "csharp-agent", token_consumption = 2400,
                        token_limit = 100000, hallucination_rate = 0.02, loop_frequency = 3, directive_conflicts = 0, overall_health = "green",
                        metadata = new { region = "eu", model = "gpt-x" }, recorded_at = vital["recorded_at"] } } }, vitals, "vitals");
                    var events = await Eventually(() => client.Agents.EventsAsync("csharp-agent", limit: 5), v => v.GetArray("events").Count > 0);
                    Assert.JsonEqual(new { success = true, events = new[] { stored } }, events, "events");
                    var agent = await client.Agents.GetAsync("csharp-agent");
                    Assert.JsonEqual(new { agent_id = "csharp-agent", name = "C# Production Agent", status = "active", overall_health = "green",
                        token_consumption = 2400, hallucination_rate = 0.02, loop_frequency = 3, directive_conflicts = 0,
                        last_vitals_at = vital["recorded_at"], updated_at = agent["updated_at"] }, agent, "agent");
                    Assert.Equal(null, await client.Agents.GetAsync("nobody"), "no such agent");
                    var ari = await client.Agents.AriAsync("csharp-agent");
                    Assert.JsonEqual(new { success = true, agent_id = "csharp-agent", ready = false, snapshots = 1,
                                           message = "ARI starts after 5 snapshots; this agent has 1 so far",
                                           stats = new { interventions_today = 0, tokens_saved = 0, conflicts_resolved = 0, tokens_saved_measured = 0 },
                                           checkups = new { }, interventions = new object[0] }, ari, "ari");
                    facts["vital"] = vital;
                    facts["event"] = stored;
                }
            });

            Test("live: retries: a second vitals report within 10 s waits out Retry-After, then succeeds", async () =>
            {
                var recorder = new Recorder();
                using (var client = Client(recorder))
                {
                    var first = await client.Agents.ReportVitalsAsync(new { agentId = "csharp-rate-limited", metrics = new { tokenConsumption = 100, loopCount = 1 } });
                    var watch = Stopwatch.StartNew();
                    var second = await client.Agents.ReportVitalsAsync(new { agentId = "csharp-rate-limited", metrics = new { tokenConsumption = 200, loopCount = 2 } });
                    Assert.True(watch.ElapsedMilliseconds >= 9000, "waited " + watch.ElapsedMilliseconds + " ms");
                    Assert.Equal("200,429,200", recorder.Statuses(), "exchanges");
                    var refused = recorder.Exchanges[1];
                    var retried = recorder.Exchanges[2];
                    Assert.True((long)retried["start_ms"] - (long)refused["end_ms"] >= int.Parse(refused.GetString("retry_after")) * 1000 - 1000,
                                "retried after Retry-After: " + refused + " " + retried);
                    facts["rate_limited_ids"] = new JsonArray(new object[] { first.GetObject("vital")["id"], second.GetObject("vital")["id"] });
                }
            });

            Test("live: retries: a 429 past MaxRetryTime is thrown at once, with RetryAfter", async () =>
            {
                var recorder = new Recorder();
                using (var client = Client(recorder, maxRetry: TimeSpan.FromMilliseconds(1500)))
                {
                    await client.Agents.ReportVitalsAsync(new { agentId = "csharp-impatient" });
                    var watch = Stopwatch.StartNew();
                    var e = await Assert.ThrowsAsync<SophonzException>(() => client.Agents.ReportVitalsAsync(new { agentId = "csharp-impatient" }));
                    // at once: not after sleeping through the 1.5 s budget
                    Assert.True(watch.ElapsedMilliseconds < 1200, "gave up at once: " + watch.ElapsedMilliseconds + " ms");
                    Assert.JsonEqual(new { status = 429, error = "Rate limit exceeded" }, new { status = e.Status, error = e.Error });
                    var body = (JsonObject)e.Body;
                    Assert.True(e.RetryAfter >= 8 && e.RetryAfter <= 10, "RetryAfter " + e.RetryAfter);
                    Assert.Equal(e.RetryAfter, (int?)body.GetInt64("retry_after_seconds"), "header and body agree");
                    Assert.True(body.GetInt64("retry_after_ms") > 1500, "the server's wait is past the budget");
                    Assert.Equal("200,429", recorder.Statuses(), "exchanges");
                }
            });

            Test("live: retries: cancelling stops the wait for Retry-After", async () =>
            {
                using (var client = Client())
                using (var cancel = new CancellationTokenSource())
                {
                    await client.Agents.ReportVitalsAsync(new { agentId = "csharp-cancelled" });
                    var watch = Stopwatch.StartNew();
                    cancel.CancelAfter(300);
                    await Assert.ThrowsAsync<OperationCanceledException>(() => client.Agents.ReportVitalsAsync(new { agentId = "csharp-cancelled" }, cancel.Token));
                    Assert.True(watch.ElapsedMilliseconds < 5000, "cancelled, not after the ~10 s wait: " + watch.ElapsedMilliseconds + " ms");
                }
            });

            Test("live: retries: a bad payload is a 400 at once, never retried", async () =>
            {
                var recorder = new Recorder();
                using (var client = Client(recorder))
                {
                    var e = await Assert.ThrowsAsync<SophonzException>(() => client.Agents.ReportVitalsAsync(
                        new { agentId = "csharp-bad", metrics = new { hallucinationRate = 1.5 } }));
                    Assert.Equal(400, e.Status, "status");
                    Assert.Equal("metrics.hallucinationRate", e.Field, "field");
                    Assert.True(e.Message.StartsWith("metrics.hallucinationRate"), e.Message);
                    Assert.Equal("400", recorder.Statuses(), "exchanges");
                }
            });

            Test("live: fire and forget: reports return at once, are sent in the background and flushed", async () =>
            {
                var recorder = new Recorder();
                using (var client = Client(recorder))
                {
                    var queued = client.Agents.ReportVitals(new { agentId = "csharp-background", agentName = "Background",
                        metrics = new { tokenConsumption = 90000, tokenLimit = 100000, hallucinationRate = 0.06, loopCount = 7, conflictCount = 2 } });
                    var queuedEvent = client.Agents.ReportEvent(new { agentId = "csharp-background", type = "task_completed", details = "nightly run" });
                    // Had the calls waited for the server, both answers would be in by now.
                    Assert.True(recorder.Exchanges.Count < 2, "returned before the server answered: " + recorder.Statuses());
                    Assert.Equal(true, queued && queuedEvent, "queued");
                    Assert.Equal(true, await client.Reports.FlushAsync(TimeSpan.FromSeconds(30)), "flushed");
                    Assert.JsonEqual(new { sent = 2, failed = 0, dropped = 0, pending = 0 },
                                     new { sent = client.Reports.Sent, failed = client.Reports.Failed, dropped = client.Reports.Dropped, pending = client.Reports.Pending });
                }
            });

            Test("live: fire and forget: a full queue drops and counts; an unreachable server fails without throwing", () =>
            {
                var silent = new TcpListener(IPAddress.Loopback, 0);
                silent.Start();
                try
                {
                    var url = "http://127.0.0.1:" + ((IPEndPoint)silent.LocalEndpoint).Port;
                    var client = new SophonzClient(new SophonzClientOptions { ApiKey = Key, BaseUrl = url, Timeout = TimeSpan.FromMilliseconds(1500),
                                                                              ReportQueueCapacity = 2, DisposeFlushTimeout = TimeSpan.FromSeconds(10) });
                    var results = new List<bool>();
                    var watch = Stopwatch.StartNew();
                    for (var i = 0; i < 5; i++) results.Add(client.Agents.ReportVitals(new { agentId = "csharp-unsent-" + i }));
                    // Had a call waited for the server, it would have taken the 1.5 s timeout.
                    Assert.True(watch.ElapsedMilliseconds < 1500, "did not wait: " + watch.ElapsedMilliseconds + " ms");
                    Assert.Equal("True,True,False,False,False", string.Join(",", results), "queued");
                    Assert.Equal(3L, client.Reports.Dropped, "dropped");
                    client.Dispose();  // flushes: both time out
                    Assert.JsonEqual(new { sent = 0, failed = 2, dropped = 3, pending = 0 },
                                     new { sent = client.Reports.Sent, failed = client.Reports.Failed, dropped = client.Reports.Dropped, pending = client.Reports.Pending });
                    var last = (SophonzException)client.Reports.LastError;
                    Assert.JsonEqual(Assert.Error(0, "Timeout", "No answer from " + url + "/api/vitals within 1.5 s"), Assert.Error(last));
                }
                finally
                {
                    silent.Stop();
                }
            });

            Test("live: the key from SOPHONZ_API_KEY wins over SOPHRA_API_KEY", async () =>
            {
                var names = new[] { "SOPHONZ_API_KEY", "SOPHRA_API_KEY", "SOPHONZ_BASE_URL", "SOPHRA_BASE_URL" };
                var saved = new Dictionary<string, string>();
                foreach (var n in names) saved[n] = Environment.GetEnvironmentVariable(n);
                try
                {
                    Environment.SetEnvironmentVariable("SOPHONZ_API_KEY", null);
                    Environment.SetEnvironmentVariable("SOPHONZ_BASE_URL", null);
                    Environment.SetEnvironmentVariable("SOPHRA_API_KEY", Key);
                    Environment.SetEnvironmentVariable("SOPHRA_BASE_URL", BaseUrl);
                    using (var client = new SophonzClient())
                        Assert.Equal(6L, (await client.Applications.ListAsync()).GetInt64("total").Value, "SOPHRA_API_KEY's account");
                    Environment.SetEnvironmentVariable("SOPHONZ_API_KEY", "sk_live_not_a_key");
                    using (var client = new SophonzClient())
                        Assert.Equal(401, (await Assert.ThrowsAsync<SophonzException>(() => client.Applications.ListAsync())).Status, "SOPHONZ_API_KEY wins");
                }
                finally
                {
                    foreach (var n in names) Environment.SetEnvironmentVariable(n, saved[n]);
                }
            });
        }
    }
}
