package com.sophonz;

import com.fasterxml.jackson.databind.JsonNode;

/**
 * The one exception every call throws for a failed request: the same error model as the
 * Python SDK's {@code SophonzError} and the JavaScript SDK's {@code SophonzError}.
 *
 * <ul>
 *   <li>{@link #status()}: HTTP status (400, 401, 403, 404, 429, 500, 503, ...); 0 when no
 *       answer arrived (connection refused, timeout).</li>
 *   <li>{@link #error()}: the server's short, stable error text ("Invalid request", "Not found",
 *       "Rate limit exceeded", ...); "Network error" or "Timeout" when status is 0.</li>
 *   <li>{@link #getMessage()}: what went wrong and what to do, as the server said it.</li>
 *   <li>{@link #field()}: the offending input ("name", "metrics.hallucinationRate") on a 400, else null.</li>
 *   <li>{@link #retryAfter()}: seconds to wait before trying again (Retry-After header, else the
 *       body's retry_after_seconds), else null. Set on the last answer once retries are spent.</li>
 *   <li>{@link #body()}: the parsed JSON error body, or a text node, or null without an answer.</li>
 * </ul>
 */
public class SophonzException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final int status;
    private final String error;
    private final String field;
    private final Integer retryAfter;
    private final transient JsonNode body;

    public SophonzException(int status, String error, String message, String field, Integer retryAfter,
                            JsonNode body, Throwable cause) {
        super(message, cause);
        this.status = status;
        this.error = error;
        this.field = field;
        this.retryAfter = retryAfter;
        this.body = body;
    }

    public int status() {
        return status;
    }

    public String error() {
        return error;
    }

    /** The same as {@link #getMessage()}, named as in the other SDKs. */
    public String message() {
        return getMessage();
    }

    public String field() {
        return field;
    }

    public Integer retryAfter() {
        return retryAfter;
    }

    public JsonNode body() {
        return body;
    }

    /** {@code "404 Not found: No application 'x' for this API key"}, as Python's str(). */
    @Override
    public String toString() {
        return status + " " + error + ": " + getMessage() + (field != null ? " (field: " + field + ")" : "");
    }
}
