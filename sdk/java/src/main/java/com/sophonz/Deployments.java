package com.sophonz;

import static com.sophonz.Json.seg;
import static com.sophonz.Transport.await;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/** /v1/applications/{id}/deployments: reference 000's List and Create Deployment. */
public final class Deployments {
    private final Transport t;

    Deployments(Transport t) {
        this.t = t;
    }

    /** POST with the body as given: {"version", "description", "changes", "config"}: the new deployment. */
    public JsonNode create(String appId, Map<String, ?> deployment) {
        return await(createAsync(appId, deployment));
    }

    public CompletableFuture<JsonNode> createAsync(String appId, Map<String, ?> deployment) {
        return t.send("POST", "/v1/applications/" + seg(appId) + "/deployments", null, deployment);
    }

    /** GET: {"deployments": [...]}, newest first. */
    public JsonNode list(String appId) {
        return await(listAsync(appId));
    }

    public CompletableFuture<JsonNode> listAsync(String appId) {
        return t.send("GET", "/v1/applications/" + seg(appId) + "/deployments", null, null);
    }
}
