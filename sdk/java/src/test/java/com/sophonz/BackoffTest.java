package com.sophonz;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import org.junit.jupiter.api.Test;

/** The retry rules as pure functions: which statuses, how long, when to give up. */
class BackoffTest {
    @Test
    void onlyThrottlingGatewayAndNetworkFailuresAreRetried() {
        for (int status : new int[] {0, 429, 502, 503, 504}) {
            assertTrue(Backoff.retryable(status), "status " + status);
        }
        for (int status : new int[] {200, 400, 401, 403, 404, 409, 413, 422, 500}) {
            assertFalse(Backoff.retryable(status), "status " + status);
        }
    }

    @Test
    void fullJitterDoublesFromHalfASecondUpToEightSeconds() {
        // random() just below 1 gives the top of each window
        double top = 0.999999;
        assertEquals(499, Backoff.delayMs(0, null, 30_000, () -> top));
        assertEquals(999, Backoff.delayMs(1, null, 30_000, () -> top));
        assertEquals(1999, Backoff.delayMs(2, null, 30_000, () -> top));
        assertEquals(7999, Backoff.delayMs(4, null, 30_000, () -> top));
        assertEquals(7999, Backoff.delayMs(10, null, 30_000, () -> top));
        assertEquals(7999, Backoff.delayMs(100, null, 30_000, () -> top));
        assertEquals(0, Backoff.delayMs(3, null, 30_000, () -> 0.0));
    }

    @Test
    void theBudgetBoundsTheWaitAndEndsTheRetries() {
        assertEquals(300, Backoff.delayMs(4, null, 300, () -> 0.999999));
        assertEquals(-1, Backoff.delayMs(0, null, 0, () -> 0.5));
        assertEquals(-1, Backoff.delayMs(0, null, -5, () -> 0.5));
    }

    @Test
    void theServersWaitIsAMinimumPlusASpread() {
        // Retry-After 8 s: at least 8 s, at most 8 s + 250 ms spread, whatever the jitter
        assertEquals(8000, Backoff.delayMs(0, 8000L, 30_000, () -> 0.0));
        assertEquals(8249, Backoff.delayMs(0, 8000L, 30_000, () -> 0.999999));
        // the spread never pushes past the budget, but the minimum is kept
        assertEquals(8100, Backoff.delayMs(0, 8000L, 8100, () -> 0.999999));
        // a minimum past the budget: give up at once instead of sleeping to be refused again
        assertEquals(-1, Backoff.delayMs(0, 8000L, 7999, () -> 0.0));
    }

    @Test
    void retryAfterIsSecondsOrAnHttpDate() {
        long now = 1_700_000_000_000L;
        assertEquals(8000L, Backoff.retryAfterMs("8", now));
        assertEquals(1500L, Backoff.retryAfterMs(" 1.5 ", now));
        assertEquals(0L, Backoff.retryAfterMs("-3", now));
        String inTenSeconds = DateTimeFormatter.RFC_1123_DATE_TIME.format(
                ZonedDateTime.ofInstant(java.time.Instant.ofEpochMilli(now + 10_000), ZoneOffset.UTC));
        assertEquals(10_000L, Backoff.retryAfterMs(inTenSeconds, now));
        assertEquals(10, Backoff.retryAfterSeconds(inTenSeconds, now));
        assertEquals(2, Backoff.retryAfterSeconds("1.2", now)); // rounded up: never too early
        assertNull(Backoff.retryAfterMs("soon", now));
        assertNull(Backoff.retryAfterMs("", now));
        assertNull(Backoff.retryAfterMs(null, now));
        assertNull(Backoff.retryAfterSeconds(null, now));
    }
}
