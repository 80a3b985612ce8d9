package com.sophonz;

import static com.sophonz.Json.seg;
import static com.sophonz.Transport.await;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.Collections;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/** /v1/applications/{id}/alerts: reference 000's Create Alert, plus list, update, silence, history, delete. */
public final class Alerts {
    private final Transport t;

    Alerts(Transport t) {
        this.t = t;
    }

    private static String base(String appId) {
        return "/v1/applications/" + seg(appId) + "/alerts";
    }

    /** POST with the rule as given: {"name", "condition": {"metric", "operator", "threshold"}, "actions": [...]}. */
    public JsonNode create(String appId, Map<String, ?> rule) {
        return await(createAsync(appId, rule));
    }

    public CompletableFuture<JsonNode> createAsync(String appId, Map<String, ?> rule) {
        return t.send("POST", base(appId), null, rule);
    }

    /** GET: {"alerts": [...]}. */
    public JsonNode list(String appId) {
        return await(listAsync(appId));
    }

    public CompletableFuture<JsonNode> listAsync(String appId) {
        return t.send("GET", base(appId), null, null);
    }

    /** PATCH /{alertId} with exactly these fields: the updated rule. */
    public JsonNode update(String appId, String alertId, Map<String, ?> fields) {
        return await(updateAsync(appId, alertId, fields));
    }

    public CompletableFuture<JsonNode> updateAsync(String appId, String alertId, Map<String, ?> fields) {
        return t.send("PATCH", base(appId) + "/" + seg(alertId), null, fields);
    }

    /** POST /{alertId}/silence {"until"}: mutes delivery until then (an Instant or ISO string); null lifts it. */
    public JsonNode silence(String appId, String alertId, Object until) {
        return await(silenceAsync(appId, alertId, until));
    }

    public CompletableFuture<JsonNode> silenceAsync(String appId, String alertId, Object until) {
        return t.send("POST", base(appId) + "/" + seg(alertId) + "/silence", null,
                Collections.singletonMap("until", until));
    }

    /** GET /{alertId}/history: the rule's state changes and notifications. */
    public JsonNode history(String appId, String alertId) {
        return await(historyAsync(appId, alertId));
    }

    public CompletableFuture<JsonNode> historyAsync(String appId, String alertId) {
        return t.send("GET", base(appId) + "/" + seg(alertId) + "/history", null, null);
    }

    /** DELETE /{alertId}. */
    public void delete(String appId, String alertId) {
        await(deleteAsync(appId, alertId));
    }

    public CompletableFuture<Void> deleteAsync(String appId, String alertId) {
        return t.send("DELETE", base(appId) + "/" + seg(alertId), null, null).thenApply(ignored -> null);
    }
}
