using System;

namespace Sophonz
{
    /// <summary>
    /// A request that did not get a 2xx answer, or got no answer at all: the same error
    /// model as the Python SDK's SophonzError.
    /// </summary>
    public sealed class SophonzException : Exception
    {
        /// <summary>HTTP status (400, 401, 403, 404, 429, 500, 503, ...); 0 when no answer
        /// arrived (connection refused, DNS failure, timeout).</summary>
        public int Status { get; }

        /// <summary>The server's short, stable error text ("Invalid request", "Not found",
        /// "Rate limit exceeded", ...); "Network error" or "Timeout" when Status is 0.</summary>
        public string Error { get; }

        /// <summary>The offending input ("name", "points[3].value", "metrics.hallucinationRate")
        /// on a 400, else null.</summary>
        public string Field { get; }

        /// <summary>Seconds to wait before trying again: the Retry-After header (429 and 503),
        /// else the body's retry_after_seconds, else null.</summary>
        public int? RetryAfter { get; }

        /// <summary>The parsed JSON error body (a JsonObject), the raw text of a non-JSON
        /// answer, or null.</summary>
        public object Body { get; }

        /// <summary>The least wait the server asked for, to the millisecond (the larger of
        /// Retry-After and the body's retry_after_ms): what the retry loop honours.</summary>
        internal TimeSpan? RetryWait { get; }

        /// <summary>Message: what went wrong and what to do, as the server said it.</summary>
        public SophonzException(int status, string error, string message, string field = null, int? retryAfter = null,
                                object body = null, Exception inner = null)
            : this(status, error, message, field, retryAfter, body, inner, null)
        {
        }

        internal SophonzException(int status, string error, string message, string field, int? retryAfter, object body,
                                  Exception inner, TimeSpan? retryWait)
            : base(message, inner)
        {
            Status = status;
            Error = error;
            Field = field;
            RetryAfter = retryAfter;
            Body = body;
            RetryWait = retryWait;
        }

        /// <summary>"404 Not found: No application 'x' for this API key", plus the field if any.</summary>
        public string Describe()
        {
            return Status + " " + Error + ": " + Message + (Field != null ? " (field: " + Field + ")" : "");
        }

        public override string ToString()
        {
            return GetType().FullName + ": " + Describe() + (StackTrace != null ? Environment.NewLine + StackTrace : "");
        }
    }
}
