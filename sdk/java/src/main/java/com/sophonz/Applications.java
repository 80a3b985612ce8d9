package com.sophonz;

import static com.sophonz.Json.seg;
import static com.sophonz.Transport.await;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/** /v1/applications: reference 000's List, Get and Create Application, plus update and delete. */
public final class Applications {
    private final Transport t;

    Applications(Transport t) {
        this.t = t;
    }

    /** GET /v1/applications: {"applications": [...], "total", "page", "per_page"}. */
    public JsonNode list() {
        return await(listAsync(null, null));
    }

    /** GET /v1/applications?page&per_page (null leaves a parameter out). */
    public JsonNode list(Integer page, Integer perPage) {
        return await(listAsync(page, perPage));
    }

    public CompletableFuture<JsonNode> listAsync() {
        return listAsync(null, null);
    }

    public CompletableFuture<JsonNode> listAsync(Integer page, Integer perPage) {
        Map<String, Object> q = new LinkedHashMap<>();
        q.put("page", page);
        q.put("per_page", perPage);
        return t.send("GET", "/v1/applications", q, null);
    }

    /** GET /v1/applications/{id}: the application with its last-24-hours "metrics". */
    public JsonNode get(String id) {
        return await(getAsync(id));
    }

    public CompletableFuture<JsonNode> getAsync(String id) {
        return t.send("GET", "/v1/applications/" + seg(id), null, null);
    }

    /** POST /v1/applications {"name"}: the new application (environment "production", status "active"). */
    public JsonNode create(String name) {
        return await(createAsync(Map.of("name", name)));
    }

    /**
     * POST /v1/applications with the body as given: name, description, environment, status,
     * base_url, config, e.g. {@code Map.of("name", "Shop", "config", Map.of("monitoring", true))}.
     */
    public JsonNode create(Map<String, ?> body) {
        return await(createAsync(body));
    }

    public CompletableFuture<JsonNode> createAsync(Map<String, ?> body) {
        return t.send("POST", "/v1/applications", null, body);
    }

    /** PATCH /v1/applications/{id} with exactly these fields (a null value clears it): the application. */
    public JsonNode update(String id, Map<String, ?> fields) {
        return await(updateAsync(id, fields));
    }

    public CompletableFuture<JsonNode> updateAsync(String id, Map<String, ?> fields) {
        return t.send("PATCH", "/v1/applications/" + seg(id), null, fields);
    }

    /** DELETE /v1/applications/{id}. */
    public void delete(String id) {
        await(deleteAsync(id));
    }

    public CompletableFuture<Void> deleteAsync(String id) {
        return t.send("DELETE", "/v1/applications/" + seg(id), null, null).thenApply(ignored -> null);
    }
}
