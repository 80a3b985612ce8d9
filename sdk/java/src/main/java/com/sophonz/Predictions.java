package com.sophonz;

import static com.sophonz.Json.seg;
import static com.sophonz.Transport.await;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/** /v1/applications/{id}/predictions: reference 000's Get Predictions. */
public final class Predictions {
    private final Transport t;

    Predictions(Transport t) {
        this.t = t;
    }

    /**
     * GET ?metric&amp;horizon (null leaves one out; the server's defaults: response_time, 24h):
     * {"metric", "horizon", "predictions": [{"timestamp", "predicted_value", "confidence"}]}.
     */
    public JsonNode get(String appId, String metric, String horizon) {
        return await(getAsync(appId, metric, horizon));
    }

    public CompletableFuture<JsonNode> getAsync(String appId, String metric, String horizon) {
        Map<String, Object> q = new LinkedHashMap<>();
        q.put("metric", metric);
        q.put("horizon", horizon);
        return t.send("GET", "/v1/applications/" + seg(appId) + "/predictions", q, null);
    }
}
