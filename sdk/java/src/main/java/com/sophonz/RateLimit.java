package com.sophonz;

/**
 * The /v1 quota from the last answer's X-RateLimit-* headers. {@code limit} and
 * {@code remaining} are null for an enterprise key (the server sends "unlimited");
 * {@code reset} is the end of the current hour in epoch seconds.
 */
public record RateLimit(Long limit, Long remaining, Long reset) {
    public boolean unlimited() {
        return limit == null;
    }
}
