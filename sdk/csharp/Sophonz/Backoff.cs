using System;
using System.Globalization;

namespace Sophonz
{
    /// <summary>When to try again: the JavaScript SDK's rules, so every Sophra SDK backs
    /// off alike. Exponential with full jitter (a random wait between 0 and 0.5 s, 1 s,
    /// 2 s, ... capped at 8 s), never sooner than the server's Retry-After (plus up to
    /// 0.25 s, so clients told the same time don't return in the same millisecond), and
    /// no retry starts after the budget: when the server's wait alone would end past it,
    /// give up at once rather than sleep only to be refused again.</summary>
    internal static class Backoff
    {
        public static readonly TimeSpan Base = TimeSpan.FromMilliseconds(500);
        public static readonly TimeSpan Cap = TimeSpan.FromSeconds(8);
        public static readonly TimeSpan Spread = TimeSpan.FromMilliseconds(250);

        /// <summary>Only where trying again can help: the rate limit (429) and an api that
        /// is briefly unable to take the request (503, e.g. a full producer queue). Other
        /// 4xx mean the request itself is wrong; a 500 may already have stored it; a
        /// network error may have reached the server (a retried POST could store twice).</summary>
        public static bool Retryable(int status)
        {
            return status == 429 || status == 503;
        }

        /// <summary>The wait before retry number <paramref name="tries"/>+1, or null to give
        /// up. <paramref name="minimum"/>: the server's wait, if it gave one;
        /// <paramref name="remaining"/>: what is left of the retry budget; random01: a
        /// uniform draw in [0, 1).</summary>
        public static TimeSpan? Next(int tries, TimeSpan? minimum, TimeSpan remaining, Func<double> random01)
        {
            var exponentialMs = Math.Min(Cap.TotalMilliseconds, Base.TotalMilliseconds * Math.Pow(2, Math.Min(tries, 30)));
            var waitMs = random01() * exponentialMs;
            var remainingMs = remaining.TotalMilliseconds;
            if (minimum.HasValue)
            {
                var minimumMs = minimum.Value.TotalMilliseconds;
                if (minimumMs > remainingMs) return null;
                waitMs = Math.Max(waitMs, minimumMs + random01() * Spread.TotalMilliseconds);
                waitMs = Math.Max(minimumMs, Math.Min(waitMs, remainingMs));
            }
            else
            {
                if (remainingMs <= 0) return null;
                waitMs = Math.Min(waitMs, remainingMs);
            }
            return TimeSpan.FromMilliseconds(waitMs);
        }

        /// <summary>A Retry-After header in seconds: delta-seconds or an HTTP date (rounded
        /// up, at least 0); null when absent or unreadable.</summary>
        public static int? RetryAfterSeconds(string header, DateTimeOffset now)
        {
            if (string.IsNullOrWhiteSpace(header)) return null;
            header = header.Trim();
            int seconds;
            if (int.TryParse(header, NumberStyles.None, CultureInfo.InvariantCulture, out seconds)) return seconds;
            DateTimeOffset when;
            if (DateTimeOffset.TryParseExact(header, "r", CultureInfo.InvariantCulture,
                    DateTimeStyles.AssumeUniversal | DateTimeStyles.AllowWhiteSpaces, out when))
                return (int)Math.Max(0, Math.Ceiling((when - now).TotalSeconds));
            return null;
        }
    }
}
