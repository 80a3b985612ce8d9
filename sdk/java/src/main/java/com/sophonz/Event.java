package com.sophonz;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The body of POST /api/events: {"agentId", "type", "details"?, "metadata"?}, e.g.
 * {@code Event.of("my-agent", "tool_error").details("Web search tool timed out")}.
 */
public final class Event {
    private final String agentId;
    private final String type;
    private String details;
    private Map<String, ?> metadata;

    private Event(String agentId, String type) {
        this.agentId = agentId;
        this.type = type;
    }

    /** {@code type}: a slug such as directive_conflict, tool_error, task_completed. */
    public static Event of(String agentId, String type) {
        return new Event(agentId, type);
    }

    public Event details(String details) {
        this.details = details;
        return this;
    }

    public Event metadata(Map<String, ?> metadata) {
        this.metadata = metadata;
        return this;
    }

    /** The JSON body as sent. */
    public Map<String, Object> toMap() {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("agentId", agentId);
        body.put("type", type);
        if (details != null) {
            body.put("details", details);
        }
        if (metadata != null) {
            body.put("metadata", metadata);
        }
        return body;
    }
}
