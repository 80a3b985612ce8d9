package com.sophonz;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

/**
 * The fire-and-forget rules without a server: a port that takes connections and never
 * answers keeps the sending thread busy, so the queue fills deterministically.
 */
class ReporterTest {
    @Test
    void reportsNeverBlockAndAFullQueueDropsAndCounts() throws Exception {
        // A 1 s timeout keeps the first report in flight while the next two are offered.
        try (ServerSocket silent = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
             Sophonz client = Sophonz.builder().apiKey("k").environment(Map.<String, String>of()::get)
                     .baseUrl("http://127.0.0.1:" + silent.getLocalPort()).timeout(Duration.ofMillis(1000))
                     .maxRetryTime(Duration.ZERO).reportQueueCapacity(1).build()) {
            Reporter reporter = client.reporter();
            List<SophonzException> errors = new CopyOnWriteArrayList<>();
            reporter.onError(errors::add);

            long start = System.nanoTime();
            assertTrue(reporter.reportVitals(Vitals.of("a").tokenConsumption(1)));
            long blockedNanos = System.nanoTime() - start;
            waitFor(() -> reporter.queued() == 0); // the sending thread holds it, waiting for an answer
            start = System.nanoTime();
            assertTrue(reporter.reportEvent(Event.of("a", "tool_error")));
            assertFalse(reporter.reportVitals(Map.of("agentId", "a"))); // the one queue slot is taken
            blockedNanos += System.nanoTime() - start;
            assertTrue(Duration.ofNanos(blockedNanos).toMillis() < 200, "reports must not block");
            assertEquals(1, reporter.dropped());
            assertEquals(2, reporter.pending());

            assertTrue(reporter.flush(Duration.ofSeconds(5)));
            assertEquals(0, reporter.pending());
            assertEquals(0, reporter.sent());
            assertEquals(2, reporter.failed());
            assertEquals(2, errors.size());
            for (SophonzException e : errors) {
                assertEquals(0, e.status());
                assertEquals("Timeout", e.error());
            }
            assertEquals("No answer from http://127.0.0.1:" + silent.getLocalPort() + "/api/vitals within 1000 ms",
                    errors.get(0).getMessage());
        }
    }

    @Test
    void nothingAReportIsGivenMakesItThrow() {
        try (Sophonz client = Sophonz.builder().apiKey("k").environment(Map.<String, String>of()::get).build()) {
            Reporter reporter = client.reporter();
            reporter.onError(e -> {
                throw new IllegalStateException("a listener's bug");
            });
            assertFalse(reporter.reportVitals((Vitals) null));
            assertFalse(reporter.reportEvent((Map<String, ?>) null));
            assertFalse(reporter.reportVitals(Map.of("agentId", new Object()))); // not writable as JSON
            assertEquals(3, reporter.dropped());
            assertEquals(0, reporter.pending());
            assertTrue(reporter.flush(Duration.ZERO));
        }
    }

    @Test
    void afterCloseReportsAreDropped() {
        Sophonz client = Sophonz.builder().apiKey("k").environment(Map.<String, String>of()::get).build();
        client.close();
        assertFalse(client.reporter().reportVitals(Vitals.of("late")));
        assertEquals(1, client.reporter().dropped());
    }

    private static void waitFor(java.util.function.BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(5).toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("condition not met within 5 s");
            }
            Thread.sleep(5);
        }
    }
}
