package com.sophonz;

import static com.sophonz.Json.seg;
import static com.sophonz.Transport.await;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.concurrent.CompletableFuture;

/** /v1/applications/{id}/insights: reference 000's Get Insights. */
public final class Insights {
    private final Transport t;

    Insights(Transport t) {
        this.t = t;
    }

    /** GET: {"insights": [{"id", "type", "severity", "title", "description", "recommendation", "timestamp"}]}. */
    public JsonNode list(String appId) {
        return await(listAsync(appId));
    }

    public CompletableFuture<JsonNode> listAsync(String appId) {
        return t.send("GET", "/v1/applications/" + seg(appId) + "/insights", null, null);
    }
}
