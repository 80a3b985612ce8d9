package com.sophonz;

import static com.sophonz.Json.seg;
import static com.sophonz.Transport.await;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/** /v1/applications/{id}/metrics: reference 000's Get Metrics, plus sending points. */
public final class Metrics {
    private final Transport t;

    Metrics(Transport t) {
        this.t = t;
    }

    /** GET: {"metric", "granularity", "data": [{"timestamp", "value"}]}. */
    public JsonNode get(String appId, MetricsQuery query) {
        return await(getAsync(appId, query));
    }

    public CompletableFuture<JsonNode> getAsync(String appId, MetricsQuery query) {
        return t.send("GET", "/v1/applications/" + seg(appId) + "/metrics",
                query == null ? null : query.params(), null);
    }

    /**
     * POST {"points": [...]}, each {"metric", "value", "timestamp"} (timestamp: an Instant,
     * an ISO 8601 string or epoch milliseconds): {"accepted", "batch_id"}.
     */
    public JsonNode send(String appId, List<? extends Map<String, ?>> points) {
        return await(sendAsync(appId, points));
    }

    public CompletableFuture<JsonNode> sendAsync(String appId, List<? extends Map<String, ?>> points) {
        return t.send("POST", "/v1/applications/" + seg(appId) + "/metrics", null, Map.of("points", points));
    }
}
