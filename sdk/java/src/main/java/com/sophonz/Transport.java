package com.sophonz;

import com.fasterxml.jackson.databind.JsonNode;
import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.DoubleSupplier;

/** One request with its retries; every failure becomes a {@link SophonzException}. */
final class Transport {
    private static final Map<Integer, String> REASONS = Map.ofEntries(
            Map.entry(400, "Bad Request"), Map.entry(401, "Unauthorized"), Map.entry(403, "Forbidden"),
            Map.entry(404, "Not Found"), Map.entry(405, "Method Not Allowed"), Map.entry(409, "Conflict"),
            Map.entry(413, "Payload Too Large"), Map.entry(429, "Too Many Requests"),
            Map.entry(500, "Internal Server Error"), Map.entry(502, "Bad Gateway"),
            Map.entry(503, "Service Unavailable"), Map.entry(504, "Gateway Timeout"));

    final String baseUrl;
    final Duration timeout;
    final Duration maxRetryTime;
    final String apiKey;
    private final HttpClient http;
    private final ExecutorService executor;
    private final DoubleSupplier random;
    private volatile RateLimit rateLimit;
    private volatile boolean closed;
    private final Set<CompletableFuture<Void>> sleeping = ConcurrentHashMap.newKeySet();

    Transport(String baseUrl, String apiKey, Duration timeout, Duration maxRetryTime, ExecutorService executor,
              DoubleSupplier random) {
        this.baseUrl = baseUrl;
        this.apiKey = apiKey;
        this.timeout = timeout;
        this.maxRetryTime = maxRetryTime;
        this.executor = executor;
        this.random = random;
        // HTTP/1.1: on plain http the default HTTP/2 would first try an h2c upgrade.
        this.http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(timeout)
                .executor(executor).build();
    }

    /** Ends the waits between retries (their calls fail with IllegalStateException) and refuses new calls. */
    void close() {
        closed = true;
        for (CompletableFuture<Void> wake : sleeping) {
            wake.completeExceptionally(closedError());
        }
    }

    private static IllegalStateException closedError() {
        return new IllegalStateException("This Sophonz client is closed");
    }

    RateLimit rateLimit() {
        return rateLimit;
    }

    /**
     * {@code method baseUrl+path?query} with {@code body} as JSON (none when null); completes with
     * the parsed answer (null when empty, e.g. 204) or fails with a SophonzException.
     */
    CompletableFuture<JsonNode> send(String method, String path, Map<String, ?> query, Object body) {
        String url = baseUrl + path + Json.query(query);
        HttpRequest request;
        try {
            HttpRequest.Builder builder = HttpRequest.newBuilder(URI.create(url)).timeout(timeout)
                    .header("Authorization", "Bearer " + apiKey).header("Accept", "application/json")
                    .header("User-Agent", "sophonz-java/" + Sophonz.VERSION);
            if (body != null) {
                builder.header("Content-Type", "application/json")
                        .method(method, HttpRequest.BodyPublishers.ofString(Json.write(body)));
            } else {
                builder.method(method, HttpRequest.BodyPublishers.noBody());
            }
            request = builder.build();
        } catch (RuntimeException e) {
            return CompletableFuture.failedFuture(e);
        }
        return attempt(request, method, path, url, System.nanoTime(), 0);
    }

    private CompletableFuture<JsonNode> attempt(HttpRequest request, String method, String path, String url,
                                                long startNanos, int tries) {
        if (closed) {
            return CompletableFuture.failedFuture(closedError());
        }
        CompletableFuture<HttpResponse<String>> sent;
        try {
            sent = http.sendAsync(request, HttpResponse.BodyHandlers.ofString());
        } catch (RuntimeException rejected) {
            return CompletableFuture.failedFuture(rejected);
        }
        return sent.handle((response, failure) -> {
            SophonzException error;
            Long minimumMs = null;
            if (failure != null) {
                error = noAnswer(url, unwrap(failure));
            } else {
                noteRateLimit(response);
                JsonNode parsed = Json.parse(response.body());
                int status = response.statusCode();
                if (status >= 200 && status < 300) {
                    return CompletableFuture.completedFuture(parsed);
                }
                error = httpError(method, path, response, parsed);
                if (!Backoff.retryable(status)) {
                    return CompletableFuture.<JsonNode>failedFuture(error);
                }
                minimumMs = serverWaitMs(response, parsed);
            }
            long budgetMs = maxRetryTime.toMillis();
            long remainingMs = budgetMs - TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - startNanos);
            long delayMs = budgetMs == 0 ? -1 : Backoff.delayMs(tries, minimumMs, remainingMs, random);
            if (delayMs < 0) {
                return CompletableFuture.<JsonNode>failedFuture(error);
            }
            try {
                // close() fails every wait in `sleeping` at once, so no call outlives the client.
                CompletableFuture<Void> wake = new CompletableFuture<>();
                sleeping.add(wake);
                wake.whenComplete((ignored, e) -> sleeping.remove(wake));
                CompletableFuture.delayedExecutor(delayMs, TimeUnit.MILLISECONDS, executor)
                        .execute(() -> wake.complete(null));
                if (closed) {
                    wake.completeExceptionally(closedError());
                }
                return wake.thenCompose(ignored -> attempt(request, method, path, url, startNanos, tries + 1));
            } catch (RuntimeException rejected) {
                return CompletableFuture.<JsonNode>failedFuture(error);
            }
        }).thenCompose(next -> next);
    }

    /** The longer of Retry-After and the body's retry_after_ms (agent API), or null. */
    private static Long serverWaitMs(HttpResponse<String> response, JsonNode parsed) {
        Long header = Backoff.retryAfterMs(response.headers().firstValue("Retry-After").orElse(null),
                System.currentTimeMillis());
        Long body = parsed != null && parsed.path("retry_after_ms").isNumber()
                ? Math.max(0, parsed.get("retry_after_ms").asLong()) : null;
        if (header == null) {
            return body;
        }
        return body == null ? header : Math.max(header, body);
    }

    private void noteRateLimit(HttpResponse<String> response) {
        Optional<String> limit = response.headers().firstValue("X-RateLimit-Limit");
        if (limit.isPresent()) {
            rateLimit = new RateLimit(number(limit.get()),
                    number(response.headers().firstValue("X-RateLimit-Remaining").orElse(null)),
                    number(response.headers().firstValue("X-RateLimit-Reset").orElse(null)));
        }
    }

    private static Long number(String value) {
        try {
            return value == null ? null : Long.valueOf(value.trim());
        } catch (NumberFormatException unlimited) { // "unlimited" for enterprise keys
            return null;
        }
    }

    static SophonzException httpError(String method, String path, HttpResponse<String> response, JsonNode parsed) {
        int status = response.statusCode();
        JsonNode e = parsed != null && parsed.isObject() ? parsed : Json.MAPPER.createObjectNode();
        Integer retryAfter = Backoff.retryAfterSeconds(response.headers().firstValue("Retry-After").orElse(null),
                System.currentTimeMillis());
        if (retryAfter == null && e.path("retry_after_seconds").canConvertToInt()
                && e.path("retry_after_seconds").isIntegralNumber()) {
            retryAfter = e.get("retry_after_seconds").intValue();
        }
        String error = text(e, "error");
        if (error == null) {
            error = REASONS.getOrDefault(status, "HTTP error");
        }
        String message = text(e, "message");
        if (message == null && parsed != null && parsed.isTextual()) {
            String raw = parsed.textValue().strip();
            message = raw.isEmpty() ? null : raw.substring(0, Math.min(500, raw.length()));
        }
        if (message == null) {
            message = method + " " + path + " answered " + status;
        }
        return new SophonzException(status, error, message, text(e, "field"), retryAfter, parsed, null);
    }

    private static String text(JsonNode node, String name) {
        JsonNode value = node.get(name);
        if (value == null || value.isNull()) {
            return null;
        }
        String text = value.isTextual() ? value.textValue() : value.toString();
        return text.isEmpty() ? null : text;
    }

    private SophonzException noAnswer(String url, Throwable cause) {
        if (cause instanceof HttpTimeoutException) {
            return new SophonzException(0, "Timeout", "No answer from " + url + " within " + timeout.toMillis() + " ms",
                    null, null, null, cause);
        }
        String reason = cause instanceof ConnectException ? "connection refused" : String.valueOf(cause);
        if (cause.getMessage() != null && !(cause instanceof ConnectException)) {
            reason = cause.getClass().getSimpleName() + ": " + cause.getMessage();
        }
        return new SophonzException(0, "Network error", "Cannot reach " + url + ": " + reason, null, null, null, cause);
    }

    private static Throwable unwrap(Throwable t) {
        while ((t instanceof CompletionException || t instanceof ExecutionException) && t.getCause() != null) {
            t = t.getCause();
        }
        return t;
    }

    /** The synchronous face of an async call: its value, or its SophonzException thrown as is. */
    static <T> T await(CompletableFuture<T> future) {
        try {
            return future.get();
        } catch (InterruptedException e) {
            future.cancel(true);
            Thread.currentThread().interrupt();
            throw new SophonzException(0, "Interrupted", "The calling thread was interrupted", null, null, null, e);
        } catch (ExecutionException | CancellationException e) {
            Throwable cause = unwrap(e);
            if (cause instanceof RuntimeException r) {
                throw r;
            }
            if (cause instanceof Error err) {
                throw err;
            }
            throw new SophonzException(0, "Network error", String.valueOf(cause), null, null, null, cause);
        }
    }
}
