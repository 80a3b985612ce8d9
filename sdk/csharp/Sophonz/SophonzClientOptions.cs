using System;
using System.Net.Http;

namespace Sophonz
{
    /// <summary>How a <see cref="SophonzClient"/> connects; every property is optional.</summary>
    public sealed class SophonzClientOptions
    {
        /// <summary>The API key (sk_live_...). Default: the SOPHONZ_API_KEY environment
        /// variable, else SOPHRA_API_KEY (SOPHONZ_API_KEY wins when both are set).</summary>
        public string ApiKey { get; set; }

        /// <summary>The server's address, e.g. "https://sophra.example.com". A trailing "/v1"
        /// (reference 000 writes its base URL so) is accepted and ignored: the client adds
        /// /v1 or /api per endpoint. Default: SOPHONZ_BASE_URL, else SOPHRA_BASE_URL, else
        /// http://127.0.0.1:8000.</summary>
        public string BaseUrl { get; set; }

        /// <summary>Per attempt: how long to wait for the whole answer (then a
        /// SophonzException with Status 0, "Timeout"). Default 10 s.</summary>
        public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

        /// <summary>No retry starts later than this after the first attempt; TimeSpan.Zero
        /// disables retries. Default 30 s (as the JavaScript SDK's maxRetryMs).</summary>
        public TimeSpan MaxRetryTime { get; set; } = TimeSpan.FromSeconds(30);

        /// <summary>Fire-and-forget reports waiting to be sent at most; more are dropped
        /// (and counted). Default 1000.</summary>
        public int ReportQueueCapacity { get; set; } = 1000;

        /// <summary>How long Dispose() waits for queued reports to be sent. Default 5 s.</summary>
        public TimeSpan DisposeFlushTimeout { get; set; } = TimeSpan.FromSeconds(5);

        /// <summary>The handler the client's HttpClient sends through (a proxy, a logging
        /// DelegatingHandler). Default: a new HttpClientHandler. The client disposes it.</summary>
        public HttpMessageHandler Handler { get; set; }
    }
}
