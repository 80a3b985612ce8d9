package com.sophonz;

import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;

/**
 * A client of a Sophonz / Sophra server: the /v1 application API (reference 000) and the
 * agent API under /api (reference 003).
 *
 * <pre>{@code
 * try (Sophonz client = Sophonz.builder().apiKey("your-api-key").build()) {
 *     JsonNode apps = client.applications().list();
 *     System.out.println(apps);
 * }
 * }</pre>
 *
 * Every call has a synchronous form that throws {@link SophonzException} and an
 * {@code ...Async} form whose CompletableFuture fails with one. Thread-safe: share one client.
 */
public final class Sophonz implements AutoCloseable {
    public static final String VERSION = "0.1.0";
    /** A self-hosted server on this machine; the hosted /v1 API is https://api.sophonz.com/v1. */
    public static final String DEFAULT_BASE_URL = "http://127.0.0.1:8000";
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(10);
    public static final Duration DEFAULT_MAX_RETRY_TIME = Backoff.DEFAULT_MAX_RETRY_TIME;
    public static final int DEFAULT_REPORT_QUEUE_CAPACITY = 1000;

    private final Transport transport;
    private final Applications applications;
    private final Metrics metrics;
    private final Alerts alerts;
    private final Deployments deployments;
    private final Insights insights;
    private final Predictions predictions;
    private final Agents agents;
    private final Reporter reporter;

    private Sophonz(Builder b, String apiKey, String baseUrl) {
        AtomicInteger n = new AtomicInteger();
        // Daemon threads: an idle client never keeps the JVM alive (close() still flushes reports).
        ExecutorService executor = Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r, "sophonz-http-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        this.transport = new Transport(baseUrl, apiKey, b.timeout, b.maxRetryTime, executor,
                () -> ThreadLocalRandom.current().nextDouble());
        this.applications = new Applications(transport);
        this.metrics = new Metrics(transport);
        this.alerts = new Alerts(transport);
        this.deployments = new Deployments(transport);
        this.insights = new Insights(transport);
        this.predictions = new Predictions(transport);
        this.agents = new Agents(transport);
        this.reporter = new Reporter(agents, b.reportQueueCapacity);
    }

    public static Builder builder() {
        return new Builder();
    }

    /** GET/POST/PATCH/DELETE /v1/applications[/{id}]. */
    public Applications applications() {
        return applications;
    }

    /** /v1/applications/{id}/metrics: read a series, send points. */
    public Metrics metrics() {
        return metrics;
    }

    /** /v1/applications/{id}/alerts. */
    public Alerts alerts() {
        return alerts;
    }

    /** /v1/applications/{id}/deployments. */
    public Deployments deployments() {
        return deployments;
    }

    /** /v1/applications/{id}/insights. */
    public Insights insights() {
        return insights;
    }

    /** /v1/applications/{id}/predictions. */
    public Predictions predictions() {
        return predictions;
    }

    /** The agent API: report vitals and events, list agents, read vitals, events and ARI. */
    public Agents agents() {
        return agents;
    }

    /** Fire-and-forget reports of vitals and events: never throws, never blocks the caller. */
    public Reporter reporter() {
        return reporter;
    }

    /** The /v1 quota of the last answer that carried X-RateLimit-* headers, or null before one. */
    public RateLimit rateLimit() {
        return transport.rateLimit();
    }

    /** The server's address, without a trailing slash or /v1. */
    public String baseUrl() {
        return transport.baseUrl;
    }

    public Duration timeout() {
        return transport.timeout;
    }

    public Duration maxRetryTime() {
        return transport.maxRetryTime;
    }

    /**
     * Sends what the reporter still holds (waiting at most the retry budget plus one timeout),
     * then closes: calls waiting to retry, and calls made afterwards, fail with
     * IllegalStateException. An exchange already on the wire still ends normally, which is
     * why the pool is not shut down; its idle daemon threads end within a minute.
     */
    @Override
    public void close() {
        reporter.close(transport.maxRetryTime.plus(transport.timeout));
        transport.close();
    }

    /** For tests: the key in use (toString never shows it). */
    String apiKey() {
        return transport.apiKey;
    }

    @Override
    public String toString() {
        return "Sophonz(baseUrl=" + transport.baseUrl + ")"; // never the key
    }

    /** Options of a client; {@link #build()} fills what is left unset from the environment. */
    public static final class Builder {
        private String apiKey;
        private String baseUrl;
        private Duration timeout = DEFAULT_TIMEOUT;
        private Duration maxRetryTime = DEFAULT_MAX_RETRY_TIME;
        private int reportQueueCapacity = DEFAULT_REPORT_QUEUE_CAPACITY;
        private Function<String, String> env = System::getenv;

        private Builder() {
        }

        /** Default: SOPHONZ_API_KEY, else SOPHRA_API_KEY (SOPHONZ_ wins when both are set). */
        public Builder apiKey(String apiKey) {
            this.apiKey = apiKey;
            return this;
        }

        /**
         * The server's address, e.g. {@code https://sophra.example.com}. A trailing {@code /v1}
         * (as the Python SDK's base URL has) is accepted and removed: the client adds /v1 and
         * /api itself. Default: SOPHONZ_BASE_URL, else SOPHRA_BASE_URL, else http://127.0.0.1:8000.
         */
        public Builder baseUrl(String baseUrl) {
            this.baseUrl = baseUrl;
            return this;
        }

        /** Per attempt, for connecting and for the whole answer; default 10 s. */
        public Builder timeout(Duration timeout) {
            if (timeout == null || timeout.isNegative() || timeout.isZero()) {
                throw new IllegalArgumentException("timeout must be positive");
            }
            this.timeout = timeout;
            return this;
        }

        /** No retry starts later than this after the first attempt; default 30 s; zero disables retries. */
        public Builder maxRetryTime(Duration maxRetryTime) {
            if (maxRetryTime == null || maxRetryTime.isNegative()) {
                throw new IllegalArgumentException("maxRetryTime must be zero or positive");
            }
            this.maxRetryTime = maxRetryTime;
            return this;
        }

        /** Reports the {@link Reporter} holds at most before it drops new ones; default 1000. */
        public Builder reportQueueCapacity(int capacity) {
            if (capacity < 1) {
                throw new IllegalArgumentException("reportQueueCapacity must be at least 1");
            }
            this.reportQueueCapacity = capacity;
            return this;
        }

        /** Where build() reads SOPHONZ_* / SOPHRA_* from; System.getenv unless a test says otherwise. */
        Builder environment(Function<String, String> env) {
            this.env = Objects.requireNonNull(env);
            return this;
        }

        /** @throws IllegalStateException when no key is given nor found in the environment. */
        public Sophonz build() {
            String key = firstNonBlank(apiKey, env.apply("SOPHONZ_API_KEY"), env.apply("SOPHRA_API_KEY"));
            if (key == null) {
                throw new IllegalStateException(
                        "No API key: pass Sophonz.builder().apiKey(...) or set SOPHONZ_API_KEY (or SOPHRA_API_KEY)");
            }
            String url = firstNonBlank(baseUrl, env.apply("SOPHONZ_BASE_URL"), env.apply("SOPHRA_BASE_URL"));
            return new Sophonz(this, key, normalizeBaseUrl(url == null ? DEFAULT_BASE_URL : url));
        }

        static String normalizeBaseUrl(String url) {
            String u = url.strip().replaceAll("/+$", "");
            if (u.endsWith("/v1")) {
                u = u.substring(0, u.length() - 3).replaceAll("/+$", "");
            }
            return u;
        }

        private static String firstNonBlank(String... values) {
            for (String v : values) {
                if (v != null && !v.isBlank()) {
                    return v.strip();
                }
            }
            return null;
        }
    }
}
