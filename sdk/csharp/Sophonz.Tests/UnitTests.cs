// Client-side rules, no server: JSON, query and path encoding, base URL and key
// resolution, the backoff schedule, Retry-After, and the report queue's refusals.
using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using static Sophonz.Tests.Runner;

namespace Sophonz.Tests
{
    public static class UnitTests
    {
        private sealed class Throwing
        {
            public string Name { get { return "fine"; } }
            public int Value { get { throw new InvalidOperationException("no value"); } }
        }

        // A client that never reaches a server in these tests (nothing listens on port 9).
        private static SophonzClient Offline(int capacity = 1000)
        {
            return new SophonzClient(new SophonzClientOptions
            {
                ApiKey = "sk_live_unit", BaseUrl = "http://127.0.0.1:9", ReportQueueCapacity = capacity
            });
        }

        public static void Register()
        {
            Test("unit: JSON parse keeps key order, types and escapes", () =>
            {
                var text = "{\"b\":1,\"a\":[true,false,null,-0.5,1e3,9007199254740993,\"\\u00e9\\n\\\"\\ud83d\\ude00\"],\"c\":{}}";
                var value = (JsonObject)Json.Parse(" " + text + "\n");
                Assert.Equal("b,a,c", string.Join(",", value.Keys), "key order");
                var a = value.GetArray("a");
                Assert.Equal(1L, value.GetInt64("b").Value, "integer as long");
                Assert.Equal(-0.5, (double)a[3], "fraction");
                Assert.Equal(1000.0, (double)a[4], "exponent is a double");
                Assert.Equal(9007199254740993L, (long)a[5], "integers beyond 2^53 stay exact");
                Assert.Equal("\u00e9\n\"\U0001F600", (string)a[6], "escapes");
                Assert.Equal("{\"b\":1,\"a\":[true,false,null,-0.5,1000,9007199254740993,\"\u00e9\\n\\\"\U0001F600\"],\"c\":{}}",
                             value.ToString(), "serialized back");
                Assert.Equal(null, value.GetString("missing"), "missing key");
                Assert.Equal(1.0, value.GetDouble("b").Value, "integer read as double");
            });

            Test("unit: JSON parse rejects what is not JSON", () =>
            {
                foreach (var bad in new[] { "", "{", "[1,]", "{\"a\" 1}", "01", "1.", "tru", "\"a", "{} x", "'a'", "[\"\t\"]", "-", "{1:2}" })
                    Assert.Throws<FormatException>(() => Json.Parse(bad));
            });

            Test("unit: JSON serialize of anonymous objects, dictionaries, lists and times", () =>
            {
                var body = new
                {
                    agentId = "a\u0001",
                    metrics = new Dictionary<string, object> { { "tokenConsumption", 2400 }, { "hallucinationRate", 0.02 } },
                    list = new List<object> { 1L, 2.5f, "x", null, new[] { true } },
                    utc = new DateTime(2024, 1, 15, 12, 0, 0, 123, DateTimeKind.Utc),
                    unspecified = new DateTime(2024, 1, 15, 12, 0, 0),
                    offset = new DateTimeOffset(2024, 1, 15, 14, 0, 0, TimeSpan.FromHours(2)),
                    number = 600.0m,
                };
                Assert.Equal("{\"agentId\":\"a\\u0001\",\"metrics\":{\"tokenConsumption\":2400,\"hallucinationRate\":0.02}," +
                             "\"list\":[1,2.5,\"x\",null,[true]],\"utc\":\"2024-01-15T12:00:00.123Z\"," +
                             "\"unspecified\":\"2024-01-15T12:00:00.000Z\",\"offset\":\"2024-01-15T12:00:00.000Z\",\"number\":600.0}",
                             Json.Serialize(body), "JSON");
                var local = new DateTime(2024, 1, 15, 12, 0, 0, DateTimeKind.Utc).ToLocalTime();
                Assert.Equal("\"2024-01-15T12:00:00.000Z\"", Json.Serialize(local), "a local time is sent in UTC");
                Assert.Throws<ArgumentException>(() => Json.Serialize(new { v = double.NaN }));
            });

            Test("unit: query strings drop nulls and encode values; ids are one path segment", () =>
            {
                var q = SophonzClient.QueryString(SophonzClient.Query("page", 2, "per_page", null, "flag", true, "metric", "a b&c",
                    "start", new DateTimeOffset(2024, 1, 15, 13, 0, 0, TimeSpan.FromHours(1)), "value", 0.5));
                Assert.Equal("?page=2&flag=true&metric=a%20b%26c&start=2024-01-15T12%3A00%3A00.000Z&value=0.5", q, "query");
                Assert.Equal("", SophonzClient.QueryString(SophonzClient.Query("page", null)), "empty query");
                Assert.Equal("app%20x%3Fy%23z%2Fw", SophonzClient.Segment("app x?y#z/w"), "segment");
                Assert.Throws<ArgumentNullException>(() => SophonzClient.Segment(null));
            });

            Test("unit: base URL: trailing / and /v1 are dropped; only absolute http(s) URLs", () =>
            {
                Assert.Equal("https://sophra.example.com", SophonzClient.NormalizeBaseUrl("https://sophra.example.com/v1/"), "/v1/");
                Assert.Equal("http://127.0.0.1:8000/base", SophonzClient.NormalizeBaseUrl(" http://127.0.0.1:8000/base/ "), "path");
                Assert.Throws<ArgumentException>(() => SophonzClient.NormalizeBaseUrl("ftp://example.com"));
                Assert.Throws<ArgumentException>(() => SophonzClient.NormalizeBaseUrl("example.com"));
            });

            Test("unit: the key and base URL come from the environment, SOPHONZ_ before SOPHRA_", () =>
            {
                var names = new[] { "SOPHONZ_API_KEY", "SOPHRA_API_KEY", "SOPHONZ_BASE_URL", "SOPHRA_BASE_URL" };
                var saved = new Dictionary<string, string>();
                foreach (var n in names) saved[n] = Environment.GetEnvironmentVariable(n);
                try
                {
                    foreach (var n in names) Environment.SetEnvironmentVariable(n, null);
                    var e = Assert.Throws<ArgumentException>(() => new SophonzClient());
                    Assert.Equal("No API key: set SophonzClientOptions.ApiKey, or SOPHONZ_API_KEY or SOPHRA_API_KEY", e.Message, "message");
                    Environment.SetEnvironmentVariable("SOPHRA_API_KEY", "sk_live_sophra");
                    using (var c = new SophonzClient()) Assert.Equal(SophonzClient.DefaultBaseUrl, c.BaseUrl, "default base URL");
                    Environment.SetEnvironmentVariable("SOPHRA_BASE_URL", "http://sophra.example.com");
                    using (var c = new SophonzClient()) Assert.Equal("http://sophra.example.com", c.BaseUrl, "SOPHRA_BASE_URL");
                    Environment.SetEnvironmentVariable("SOPHONZ_BASE_URL", "http://sophonz.example.com/v1");
                    using (var c = new SophonzClient()) Assert.Equal("http://sophonz.example.com", c.BaseUrl, "SOPHONZ_BASE_URL wins");
                    using (var c = new SophonzClient(new SophonzClientOptions { ApiKey = "k", BaseUrl = "http://given.example.com" }))
                        Assert.Equal("http://given.example.com", c.BaseUrl, "an option wins");
                    Assert.Equal("a", SophonzClient.FirstSet(null, " ", " a ", "b"), "first non-blank");
                }
                finally
                {
                    foreach (var n in names) Environment.SetEnvironmentVariable(n, saved[n]);
                }
            });

            Test("unit: options are checked", () =>
            {
                Assert.Throws<ArgumentOutOfRangeException>(() => new SophonzClient(new SophonzClientOptions { ApiKey = "k", Timeout = TimeSpan.Zero }));
                Assert.Throws<ArgumentOutOfRangeException>(() => new SophonzClient(new SophonzClientOptions { ApiKey = "k", MaxRetryTime = TimeSpan.FromSeconds(-1) }));
                Assert.Throws<ArgumentOutOfRangeException>(() => new SophonzClient(new SophonzClientOptions { ApiKey = "k", ReportQueueCapacity = 0 }));
                using (var c = new SophonzClient("k"))
                {
                    Assert.Equal(TimeSpan.FromSeconds(10), c.Timeout, "default timeout");
                    Assert.Equal(TimeSpan.FromSeconds(30), c.MaxRetryTime, "default retry budget");
                    Assert.Equal(1000, c.Reports.Capacity, "default queue capacity");
                    Assert.Equal(null, c.RateLimit, "no quota before an answer");
                }
            });

            Test("unit: only 429 and 503 are retried", () =>
            {
                foreach (var status in new[] { 0, 400, 401, 403, 404, 409, 413, 422, 500, 502, 504 })
                    Assert.Equal(false, Backoff.Retryable(status), "retry " + status);
                Assert.Equal(true, Backoff.Retryable(429), "retry 429");
                Assert.Equal(true, Backoff.Retryable(503), "retry 503");
            });

            Test("unit: backoff is exponential with full jitter, capped at 8 s, within the budget", () =>
            {
                var budget = TimeSpan.FromSeconds(30);
                var expected = new[] { 500, 1000, 2000, 4000, 8000, 8000, 8000 };
                for (var tries = 0; tries < expected.Length; tries++)
                {
                    Assert.Equal(TimeSpan.FromMilliseconds(expected[tries]), Backoff.Next(tries, null, budget, () => 1.0).Value, "most, try " + tries);
                    Assert.Equal(TimeSpan.Zero, Backoff.Next(tries, null, budget, () => 0.0).Value, "least, try " + tries);
                }
                Assert.Equal(TimeSpan.FromMilliseconds(300), Backoff.Next(5, null, TimeSpan.FromMilliseconds(300), () => 1.0).Value, "clamped to the budget");
                Assert.Equal(null, Backoff.Next(0, null, TimeSpan.Zero, () => 0.5), "budget spent: give up");
                Assert.Equal(false, Backoff.Next(0, null, TimeSpan.Zero, () => 0.5).HasValue, "no retry when MaxRetryTime is zero");
            });

            Test("unit: backoff honours Retry-After and gives up when it ends past the budget", () =>
            {
                var budget = TimeSpan.FromSeconds(30);
                Assert.Equal(TimeSpan.FromMilliseconds(7420), Backoff.Next(0, TimeSpan.FromMilliseconds(7420), budget, () => 0.0).Value, "the server's wait");
                Assert.Equal(TimeSpan.FromMilliseconds(7670), Backoff.Next(0, TimeSpan.FromMilliseconds(7420), budget, () => 1.0).Value, "plus at most 250 ms");
                Assert.Equal(TimeSpan.FromSeconds(8), Backoff.Next(0, TimeSpan.FromSeconds(8), TimeSpan.FromSeconds(8), () => 1.0).Value, "exactly the budget");
                Assert.Equal(null, Backoff.Next(0, TimeSpan.FromSeconds(9), TimeSpan.FromSeconds(8), () => 0.0), "past the budget");
                Assert.Equal(null, Backoff.Next(0, TimeSpan.FromSeconds(3600), budget, () => 0.0), "an hourly quota's wait");
            });

            Test("unit: Retry-After is delta-seconds or an HTTP date", () =>
            {
                var now = new DateTimeOffset(2026, 4, 4, 16, 44, 0, TimeSpan.Zero);
                Assert.Equal((int?)8, Backoff.RetryAfterSeconds("8", now), "seconds");
                Assert.Equal((int?)12, Backoff.RetryAfterSeconds(" 12 ", now), "spaces");
                Assert.Equal((int?)30, Backoff.RetryAfterSeconds("Sat, 04 Apr 2026 16:44:30 GMT", now), "a date");
                Assert.Equal((int?)0, Backoff.RetryAfterSeconds("Sat, 04 Apr 2026 16:43:00 GMT", now), "a past date");
                Assert.Equal((int?)null, Backoff.RetryAfterSeconds("soon", now), "garbage");
                Assert.Equal((int?)null, Backoff.RetryAfterSeconds("-3", now), "negative");
                Assert.Equal((int?)null, Backoff.RetryAfterSeconds(null, now), "absent");
            });

            Test("unit: SophonzException carries the Python SDK's fields", () =>
            {
                var e = new SophonzException(400, "Invalid request", "name: string should have at least 1 character", "name");
                Assert.Equal("400 Invalid request: name: string should have at least 1 character (field: name)", e.Describe(), "Describe");
                Assert.JsonEqual(new { status = 400, error = "Invalid request", message = "name: string should have at least 1 character",
                                       field = "name", retry_after = (int?)null }, Assert.Error(e));
                Assert.True(e.ToString().StartsWith("Sophonz.SophonzException: 400 Invalid request: "), "ToString");
            });

            Test("unit: fire-and-forget never throws: an unserializable report fails, reports after Dispose are dropped", () =>
            {
                var client = Offline();
                Assert.Equal(false, client.Agents.ReportVitals(new { agentId = "a", metrics = new Throwing() }), "unserializable");
                Assert.Equal(false, client.Agents.ReportEvent(new { agentId = "a", v = double.PositiveInfinity }), "infinity");
                Assert.Equal(2L, client.Reports.Failed, "failed");
                Assert.Equal(0L, client.Reports.Dropped, "dropped");
                Assert.True(client.Reports.LastError is ArgumentException, "LastError: " + client.Reports.LastError);
                Assert.Equal(0, client.Reports.Pending, "nothing queued");
                client.Dispose();
                client.Dispose();  // twice is fine
                Assert.Equal(false, client.Agents.ReportVitals(new { agentId = "a" }), "after Dispose");
                Assert.Equal(false, client.Agents.ReportEvent(new { agentId = "a", type = "t" }), "after Dispose");
                Assert.Equal(2L, client.Reports.Dropped, "dropped after Dispose");
                Assert.Throws<ObjectDisposedException>(() => client.Agents.ListAsync().GetAwaiter().GetResult());
            });

            Test("unit: a cancelled token cancels before anything is sent", async () =>
            {
                using (var client = Offline())
                {
                    var cancelled = new CancellationToken(true);
                    await Assert.ThrowsAsync<OperationCanceledException>(() => client.Applications.ListAsync(cancellationToken: cancelled));
                }
            });
        }
    }
}
