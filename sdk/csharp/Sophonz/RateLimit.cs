namespace Sophonz
{
    /// <summary>The key's hourly /v1 quota, from the X-RateLimit-* headers of the last
    /// answer that carried them.</summary>
    public sealed class RateLimit
    {
        /// <summary>Requests per hour; null when <see cref="Unlimited"/>.</summary>
        public long? Limit { get; }

        /// <summary>Requests left this hour; null when <see cref="Unlimited"/>.</summary>
        public long? Remaining { get; }

        /// <summary>Epoch second when the quota renews.</summary>
        public long? Reset { get; }

        /// <summary>An enterprise key: the server sends "unlimited".</summary>
        public bool Unlimited { get; }

        public RateLimit(long? limit, long? remaining, long? reset, bool unlimited)
        {
            Limit = limit;
            Remaining = remaining;
            Reset = reset;
            Unlimited = unlimited;
        }

        public override string ToString()
        {
            return Unlimited ? "unlimited (reset " + Reset + ")" : Remaining + "/" + Limit + " (reset " + Reset + ")";
        }
    }
}
