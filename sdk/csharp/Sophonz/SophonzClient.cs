using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Net.Http;
using System.Runtime.ExceptionServices;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace Sophonz
{
    /// <summary>
    /// A client of one Sophra server: the application API under /v1 (reference 000) and the
    /// agent API under /api (reference 003). Thread-safe; make one and share it. Dispose it
    /// to send what is still queued (fire-and-forget reports) and release its connections.
    /// Every call returns the server's JSON answer parsed (JsonObject), or null for an
    /// answer without a body (the 204 of a delete); a failed call throws SophonzException.
    /// </summary>
    public sealed class SophonzClient : IDisposable
    {
        public const string Version = "0.1.0";
        public const string DefaultBaseUrl = "http://127.0.0.1:8000";
        private static readonly string UserAgent = "sophonz-csharp/" + Version;

        private readonly HttpClient http;
        private readonly string apiKey;
        private readonly Random random = new Random();
        private readonly TimeSpan disposeFlushTimeout;
        private RateLimit rateLimit;
        private int disposed;

        /// <summary>The server's address, without a trailing "/" or "/v1".</summary>
        public string BaseUrl { get; }
        public TimeSpan Timeout { get; }
        public TimeSpan MaxRetryTime { get; }

        /// <summary>The quota of the last /v1 answer that carried one; null before.</summary>
        public RateLimit RateLimit { get { return Volatile.Read(ref rateLimit); } }

        public Applications Applications { get; }
        public Metrics Metrics { get; }
        public Alerts Alerts { get; }
        public Deployments Deployments { get; }
        public Insights Insights { get; }
        public Predictions Predictions { get; }
        public Agents Agents { get; }

        /// <summary>The queue of fire-and-forget reports (Agents.ReportVitals / ReportEvent):
        /// counts, last error, FlushAsync.</summary>
        public ReportQueue Reports { get; }

        /// <summary>Key and address from the environment (see SophonzClientOptions).</summary>
        public SophonzClient() : this(new SophonzClientOptions()) { }

        public SophonzClient(string apiKey) : this(new SophonzClientOptions { ApiKey = apiKey }) { }

        /// <exception cref="ArgumentException">No API key given or in the environment, or a
        /// base URL that is not an absolute http(s) URL.</exception>
        public SophonzClient(SophonzClientOptions options)
        {
            options = options ?? new SophonzClientOptions();
            apiKey = FirstSet(options.ApiKey, Environment.GetEnvironmentVariable("SOPHONZ_API_KEY"),
                              Environment.GetEnvironmentVariable("SOPHRA_API_KEY"));
            if (apiKey == null)
                throw new ArgumentException("No API key: set SophonzClientOptions.ApiKey, or SOPHONZ_API_KEY or SOPHRA_API_KEY");
            if (options.Timeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException("options", "Timeout must be positive");
            if (options.MaxRetryTime < TimeSpan.Zero)
                throw new ArgumentOutOfRangeException("options", "MaxRetryTime must not be negative");
            if (options.ReportQueueCapacity < 1)
                throw new ArgumentOutOfRangeException("options", "ReportQueueCapacity must be at least 1");
            BaseUrl = NormalizeBaseUrl(FirstSet(options.BaseUrl, Environment.GetEnvironmentVariable("SOPHONZ_BASE_URL"),
                                                Environment.GetEnvironmentVariable("SOPHRA_BASE_URL")) ?? DefaultBaseUrl);
            Timeout = options.Timeout;
            MaxRetryTime = options.MaxRetryTime;
            disposeFlushTimeout = options.DisposeFlushTimeout;
            // Each attempt has its own timeout (see AttemptAsync), so HttpClient's is off.
            http = new HttpClient(options.Handler ?? new HttpClientHandler(), true)
            {
                Timeout = System.Threading.Timeout.InfiniteTimeSpan
            };
            Reports = new ReportQueue(this, options.ReportQueueCapacity);
            Applications = new Applications(this);
            Metrics = new Metrics(this);
            Alerts = new Alerts(this);
            Deployments = new Deployments(this);
            Insights = new Insights(this);
            Predictions = new Predictions(this);
            Agents = new Agents(this);
        }

        public override string ToString() { return "SophonzClient(" + BaseUrl + ")"; }

        /// <summary>
        /// Sends one request to BaseUrl + <paramref name="path"/> (e.g. "/v1/applications")
        /// with the client's key, retries and errors, and returns the parsed JSON answer
        /// (null when empty). Query values that are null are left out; <paramref name="body"/>
        /// (if not null) is sent as JSON (see Json).
        /// </summary>
        public Task<object> RequestAsync(string method, string path, IEnumerable<KeyValuePair<string, object>> query = null,
                                         object body = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            if (method == null) throw new ArgumentNullException("method");
            if (path == null) throw new ArgumentNullException("path");
            var json = body == null ? null : Json.Serialize(body);
            return SendAsync(method, path + QueryString(query), json, cancellationToken);
        }

        internal async Task<JsonObject> ObjectAsync(string method, string path, IEnumerable<KeyValuePair<string, object>> query,
                                                    object body, CancellationToken cancellationToken)
        {
            return (JsonObject)await RequestAsync(method, path, query, body, cancellationToken).ConfigureAwait(false);
        }

        /// <summary>The retry loop around AttemptAsync (rules: Backoff).</summary>
        internal Task<object> SendAsync(string method, string pathAndQuery, string json, CancellationToken cancellationToken)
        {
            ThrowIfDisposed();
            return SendCoreAsync(method, pathAndQuery, json, cancellationToken);
        }

        /// <summary>SendAsync without the disposed check: Dispose still flushes the report queue.</summary>
        internal async Task<object> SendCoreAsync(string method, string pathAndQuery, string json, CancellationToken cancellationToken)
        {
            var started = Stopwatch.StartNew();  // monotonic: a clock change cannot stretch the budget
            for (var tries = 0; ; tries++)
            {
                SophonzException refused;
                try
                {
                    return await AttemptAsync(method, pathAndQuery, json, cancellationToken).ConfigureAwait(false);
                }
                catch (SophonzException e) when (Backoff.Retryable(e.Status))
                {
                    refused = e;
                }
                var wait = Backoff.Next(tries, refused.RetryWait, MaxRetryTime - started.Elapsed, NextRandom);
                if (!wait.HasValue) ExceptionDispatchInfo.Capture(refused).Throw();  // keeps the original stack trace
                await Task.Delay(wait.Value, cancellationToken).ConfigureAwait(false);
            }
        }

        private async Task<object> AttemptAsync(string method, string pathAndQuery, string json, CancellationToken cancellationToken)
        {
            var url = BaseUrl + pathAndQuery;
            HttpResponseMessage res = null;
            byte[] raw;
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            using (var req = new HttpRequestMessage(new HttpMethod(method.ToUpperInvariant()), url))
            {
                req.Headers.TryAddWithoutValidation("Authorization", "Bearer " + apiKey);
                req.Headers.TryAddWithoutValidation("Accept", "application/json");
                req.Headers.TryAddWithoutValidation("User-Agent", UserAgent);
                if (json != null) req.Content = new StringContent(json, Encoding.UTF8, "application/json");
                timeout.CancelAfter(Timeout);
                try
                {
                    res = await http.SendAsync(req, HttpCompletionOption.ResponseContentRead, timeout.Token).ConfigureAwait(false);
                    raw = await res.Content.ReadAsByteArrayAsync().ConfigureAwait(false);
                }
                catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
                {
                    if (res != null) res.Dispose();
                    throw new SophonzException(0, "Timeout", "No answer from " + url + " within " +
                        Timeout.TotalSeconds.ToString(CultureInfo.InvariantCulture) + " s", inner: e);
                }
                catch (Exception e) when (!(e is OperationCanceledException) && !(e is ObjectDisposedException))
                {
                    if (res != null) res.Dispose();
                    throw new SophonzException(0, "Network error", "Cannot reach " + url + ": " + Innermost(e), inner: e);
                }
            }
            using (res)
            {
                return Answer(method, pathAndQuery, res, raw);
            }
        }

        private object Answer(string method, string pathAndQuery, HttpResponseMessage res, byte[] raw)
        {
            var quota = ReadRateLimit(res);
            if (quota != null) Volatile.Write(ref rateLimit, quota);
            var status = (int)res.StatusCode;
            var text = Encoding.UTF8.GetString(raw);
            object parsed = null;
            if (text.Trim().Length > 0)
            {
                try { parsed = Json.Parse(text); }
                catch (FormatException) { parsed = text; }
            }
            if (status >= 200 && status < 300) return parsed;

            var err = parsed as JsonObject ?? new JsonObject();
            var retryHeader = res.Headers.RetryAfter != null ? res.Headers.RetryAfter.ToString() : null;
            var retryAfter = Backoff.RetryAfterSeconds(retryHeader, DateTimeOffset.UtcNow);
            var bodySeconds = err.Get("retry_after_seconds") as long?;
            var bodyMs = err.Get("retry_after_ms");
            TimeSpan? wait = null;
            if (retryAfter.HasValue) wait = TimeSpan.FromSeconds(retryAfter.Value);
            if (bodyMs is long || bodyMs is double)
            {
                var ms = TimeSpan.FromMilliseconds(Math.Max(0, Convert.ToDouble(bodyMs, CultureInfo.InvariantCulture)));
                if (!wait.HasValue || ms > wait.Value) wait = ms;
            }
            if (!retryAfter.HasValue && bodySeconds.HasValue) retryAfter = (int)bodySeconds.Value;
            var error = err.Get("error") as string ?? res.ReasonPhrase ?? "HTTP error";
            var message = err.Get("message") as string;
            if (string.IsNullOrEmpty(message) && parsed is string)
            {
                var t = ((string)parsed).Trim();
                message = t.Length > 500 ? t.Substring(0, 500) : t;
            }
            if (string.IsNullOrEmpty(message)) message = method.ToUpperInvariant() + " " + pathAndQuery + " answered " + status;
            throw new SophonzException(status, error, message, err.Get("field") as string, retryAfter, parsed, null, wait);
        }

        private static RateLimit ReadRateLimit(HttpResponseMessage res)
        {
            var limit = Header(res, "X-RateLimit-Limit");
            if (limit == null) return null;
            var remaining = Header(res, "X-RateLimit-Remaining");
            var unlimited = limit == "unlimited";
            return new RateLimit(Number(limit), Number(remaining), Number(Header(res, "X-RateLimit-Reset")), unlimited);
        }

        private static string Header(HttpResponseMessage res, string name)
        {
            IEnumerable<string> values;
            return res.Headers.TryGetValues(name, out values) ? values.FirstOrDefault()?.Trim() : null;
        }

        private static long? Number(string value)
        {
            long n;
            return value != null && long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out n)
                ? n : (long?)null;
        }

        private double NextRandom()
        {
            lock (random) return random.NextDouble();
        }

        private static string Innermost(Exception e)
        {
            while (e.InnerException != null) e = e.InnerException;
            return e.Message;
        }

        internal static string FirstSet(params string[] values)
        {
            return values.FirstOrDefault(v => !string.IsNullOrWhiteSpace(v))?.Trim();
        }

        /// <summary>"https://host/v1/" -> "https://host"; anything but an absolute http(s) URL
        /// is an ArgumentException.</summary>
        internal static string NormalizeBaseUrl(string url)
        {
            var trimmed = url.Trim().TrimEnd('/');
            if (trimmed.EndsWith("/v1", StringComparison.Ordinal)) trimmed = trimmed.Substring(0, trimmed.Length - 3).TrimEnd('/');
            Uri parsed;
            if (!Uri.TryCreate(trimmed, UriKind.Absolute, out parsed) || (parsed.Scheme != "http" && parsed.Scheme != "https"))
                throw new ArgumentException("BaseUrl must be an absolute http(s) URL, not '" + url + "'");
            return trimmed;
        }

        /// <summary>"?a=1&amp;b=x%20y", values null left out; "" when nothing is left.</summary>
        internal static string QueryString(IEnumerable<KeyValuePair<string, object>> query)
        {
            if (query == null) return "";
            var parts = new List<string>();
            foreach (var pair in query)
            {
                if (pair.Value == null) continue;
                parts.Add(Uri.EscapeDataString(pair.Key) + "=" + Uri.EscapeDataString(QueryValue(pair.Value)));
            }
            return parts.Count == 0 ? "" : "?" + string.Join("&", parts);
        }

        private static string QueryValue(object value)
        {
            if (value is bool) return (bool)value ? "true" : "false";
            if (value is DateTime) return Json.FormatTime((DateTime)value);
            if (value is DateTimeOffset) return Json.FormatTime((DateTimeOffset)value);
            var formattable = value as IFormattable;
            return formattable != null ? formattable.ToString(null, CultureInfo.InvariantCulture) : value.ToString();
        }

        /// <summary>One path segment, percent-encoded: an id with "/" or "?" cannot reach
        /// another route.</summary>
        internal static string Segment(string value)
        {
            if (value == null) throw new ArgumentNullException("value", "an id is required");
            return Uri.EscapeDataString(value);
        }

        internal static List<KeyValuePair<string, object>> Query(params object[] keysAndValues)
        {
            var list = new List<KeyValuePair<string, object>>();
            for (var i = 0; i < keysAndValues.Length; i += 2)
                list.Add(new KeyValuePair<string, object>((string)keysAndValues[i], keysAndValues[i + 1]));
            return list;
        }

        private void ThrowIfDisposed()
        {
            if (Volatile.Read(ref disposed) != 0) throw new ObjectDisposedException("SophonzClient");
        }

        internal bool IsDisposed { get { return Volatile.Read(ref disposed) != 0; } }

        /// <summary>Sends what is queued (waiting at most DisposeFlushTimeout), then closes
        /// the connections. Reports made after this are dropped; calls throw
        /// ObjectDisposedException.</summary>
        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) != 0) return;
            Reports.Close(disposeFlushTimeout);
            http.Dispose();
        }
    }
}
