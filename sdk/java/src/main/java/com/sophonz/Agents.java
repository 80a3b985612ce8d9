package com.sophonz;

import static com.sophonz.Json.seg;
import static com.sophonz.Transport.await;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;

/** The agent API of reference 003, under /api. For reports that must never block, see {@link Reporter}. */
public final class Agents {
    private final Transport t;

    Agents(Transport t) {
        this.t = t;
    }

    /**
     * POST /api/vitals: {"success", "health", "vital": {...}}. The server takes one report per
     * agent per 10 s; a second one inside that window waits out its Retry-After if the retry
     * budget allows, else fails with status 429.
     */
    public JsonNode reportVitals(Vitals vitals) {
        return await(reportVitalsAsync(vitals.toMap()));
    }

    /** The same with the body as a map ({"agentId", "agentName", "metrics", "metadata"}), sent unchanged. */
    public JsonNode reportVitals(Map<String, ?> body) {
        return await(reportVitalsAsync(body));
    }

    public CompletableFuture<JsonNode> reportVitalsAsync(Vitals vitals) {
        return reportVitalsAsync(vitals.toMap());
    }

    public CompletableFuture<JsonNode> reportVitalsAsync(Map<String, ?> body) {
        return t.send("POST", "/api/vitals", null, body);
    }

    /** POST /api/events: {"success", "event": {...}}. */
    public JsonNode reportEvent(Event event) {
        return await(reportEventAsync(event.toMap()));
    }

    public JsonNode reportEvent(Map<String, ?> body) {
        return await(reportEventAsync(body));
    }

    public CompletableFuture<JsonNode> reportEventAsync(Event event) {
        return reportEventAsync(event.toMap());
    }

    public CompletableFuture<JsonNode> reportEventAsync(Map<String, ?> body) {
        return t.send("POST", "/api/events", null, body);
    }

    /** GET /api/agents: {"success", "agents": [...]} with each agent's latest vitals. */
    public JsonNode list() {
        return await(listAsync());
    }

    public CompletableFuture<JsonNode> listAsync() {
        return t.send("GET", "/api/agents", null, null);
    }

    /**
     * One agent of {@link #list()} (the API has no single-agent route), or empty when this key
     * has no agent with that id.
     */
    public Optional<JsonNode> get(String agentId) {
        return await(getAsync(agentId));
    }

    public CompletableFuture<Optional<JsonNode>> getAsync(String agentId) {
        return listAsync().thenApply(answer -> {
            for (JsonNode agent : answer.path("agents")) {
                if (agent.path("agent_id").asText().equals(agentId)) {
                    return Optional.of(agent);
                }
            }
            return Optional.empty();
        });
    }

    /** GET /api/agents/{id}/vitals?limit: {"success", "vitals": [...]}, newest first (limit null: 50). */
    public JsonNode vitals(String agentId, Integer limit) {
        return await(vitalsAsync(agentId, limit));
    }

    public CompletableFuture<JsonNode> vitalsAsync(String agentId, Integer limit) {
        return t.send("GET", "/api/agents/" + seg(agentId) + "/vitals", limitQuery(limit), null);
    }

    /** GET /api/agents/{id}/events?limit: {"success", "events": [...]}, newest first (limit null: 50). */
    public JsonNode events(String agentId, Integer limit) {
        return await(eventsAsync(agentId, limit));
    }

    public CompletableFuture<JsonNode> eventsAsync(String agentId, Integer limit) {
        return t.send("GET", "/api/agents/" + seg(agentId) + "/events", limitQuery(limit), null);
    }

    /** GET /api/agents/{id}/ari: {"success", "agent_id", "stats", "checkups", "interventions"}. */
    public JsonNode ari(String agentId) {
        return await(ariAsync(agentId));
    }

    public CompletableFuture<JsonNode> ariAsync(String agentId) {
        return t.send("GET", "/api/agents/" + seg(agentId) + "/ari", null, null);
    }

    /** For the {@link Reporter}: a POST of a body already copied to JSON. */
    CompletableFuture<JsonNode> post(String path, JsonNode body) {
        return t.send("POST", path, null, body);
    }

    private static Map<String, ?> limitQuery(Integer limit) {
        return limit == null ? null : Map.of("limit", limit);
    }
}
