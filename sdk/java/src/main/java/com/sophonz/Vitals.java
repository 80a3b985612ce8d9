package com.sophonz;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The body of POST /api/vitals: {"agentId", "agentName"?, "metrics"?, "metadata"?}. The five
 * standard metrics have setters; {@link #metric} adds any other field to "metrics", which the
 * server keeps in the vital's metadata. Unset fields are not sent (the server's defaults apply).
 *
 * <pre>{@code
 * Vitals.of("my-agent").agentName("My Production Agent")
 *       .tokenConsumption(2400).tokenLimit(100000).hallucinationRate(0.02).loopCount(3).conflictCount(0)
 * }</pre>
 */
public final class Vitals {
    private final String agentId;
    private String agentName;
    private final Map<String, Object> metrics = new LinkedHashMap<>();
    private Map<String, ?> metadata;

    private Vitals(String agentId) {
        this.agentId = agentId;
    }

    public static Vitals of(String agentId) {
        return new Vitals(agentId);
    }

    public Vitals agentName(String agentName) {
        this.agentName = agentName;
        return this;
    }

    /** Tokens used in the current window. */
    public Vitals tokenConsumption(long tokens) {
        return metric("tokenConsumption", tokens);
    }

    /** The model's context window (server default 100000). */
    public Vitals tokenLimit(long tokens) {
        return metric("tokenLimit", tokens);
    }

    /** 0.0 to 1.0; amber at 0.05, red above 0.15. */
    public Vitals hallucinationRate(double rate) {
        return metric("hallucinationRate", rate);
    }

    /** Recursive calls / re-tries in the window; amber at 50, red above 100. */
    public Vitals loopCount(long loops) {
        return metric("loopCount", loops);
    }

    /** Directive conflicts detected; amber at 2, red at 5. */
    public Vitals conflictCount(long conflicts) {
        return metric("conflictCount", conflicts);
    }

    /** Any other metric (a number, string, ...): stored in the vital's metadata. */
    public Vitals metric(String name, Object value) {
        metrics.put(name, value);
        return this;
    }

    /** Custom data stored with the vital. */
    public Vitals metadata(Map<String, ?> metadata) {
        this.metadata = metadata;
        return this;
    }

    /** The JSON body as sent. */
    public Map<String, Object> toMap() {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("agentId", agentId);
        if (agentName != null) {
            body.put("agentName", agentName);
        }
        if (!metrics.isEmpty()) {
            body.put("metrics", new LinkedHashMap<>(metrics));
        }
        if (metadata != null) {
            body.put("metadata", metadata);
        }
        return body;
    }
}
