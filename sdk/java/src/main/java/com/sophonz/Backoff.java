package com.sophonz;

import java.time.Duration;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.util.Set;
import java.util.function.DoubleSupplier;

/**
 * The retry rules, the same as the JavaScript agent SDK's (sdk/sophra-sdk.js): exponential
 * backoff with full jitter (a random wait in [0, 0.5 s), [0, 1 s), ... capped at 8 s),
 * never less than what the server asked for (Retry-After or retry_after_ms), and never a
 * retry that starts later than the budget (30 s by default) after the first attempt.
 */
final class Backoff {
    static final Duration DEFAULT_MAX_RETRY_TIME = Duration.ofSeconds(30);
    static final long BASE_MS = 500;
    static final long CAP_MS = 8000;
    /** Spread added on top of a server-mandated wait, so clients told the same Retry-After
     *  do not all come back in the same millisecond. */
    static final long RETRY_AFTER_SPREAD_MS = 250;
    /** Only failures where trying again can help: other 4xx mean the request itself is wrong,
     *  and a 500 may already have stored the record. */
    static final Set<Integer> RETRYABLE = Set.of(429, 502, 503, 504);

    private Backoff() {
    }

    static boolean retryable(int status) {
        return status == 0 || RETRYABLE.contains(status);
    }

    /**
     * How long to sleep before retry number {@code tries} (0 for the first retry), or -1 to
     * give up now. {@code minimumMs} is what the server asked for (null if nothing);
     * {@code remainingMs} what is left of the budget. If the server's minimum ends past the
     * budget the SDK gives up at once rather than sleep only to be refused again.
     */
    static long delayMs(int tries, Long minimumMs, long remainingMs, DoubleSupplier random) {
        long exponential = Math.min(CAP_MS, BASE_MS << Math.min(tries, 20));
        long wait = (long) (random.getAsDouble() * exponential);
        if (minimumMs != null) {
            if (minimumMs > remainingMs) {
                return -1;
            }
            wait = Math.max(wait, minimumMs + (long) (random.getAsDouble() * RETRY_AFTER_SPREAD_MS));
            return Math.max(minimumMs, Math.min(wait, remainingMs));
        }
        if (remainingMs <= 0) {
            return -1;
        }
        return Math.min(wait, remainingMs);
    }

    /** Retry-After in milliseconds: delta-seconds or an HTTP date; null if absent or unreadable. */
    static Long retryAfterMs(String header, long nowMs) {
        if (header == null || header.isBlank()) {
            return null;
        }
        String text = header.trim();
        try {
            return Math.max(0, Math.round(Double.parseDouble(text) * 1000));
        } catch (NumberFormatException notANumber) {
            try {
                long when = ZonedDateTime.parse(text, DateTimeFormatter.RFC_1123_DATE_TIME).toInstant().toEpochMilli();
                return Math.max(0, when - nowMs);
            } catch (DateTimeParseException notADate) {
                return null;
            }
        }
    }

    /** Retry-After as whole seconds, rounded up, for {@link SophonzException#retryAfter()}. */
    static Integer retryAfterSeconds(String header, long nowMs) {
        Long ms = retryAfterMs(header, nowMs);
        return ms == null ? null : (int) Math.min(Integer.MAX_VALUE, (ms + 999) / 1000);
    }
}
