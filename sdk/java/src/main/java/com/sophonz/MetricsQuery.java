package com.sophonz;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The query of GET /v1/applications/{id}/metrics. start/end: an Instant, OffsetDateTime,
 * ZonedDateTime, an ISO 8601 string or epoch milliseconds (a Long). Unset values are not sent
 * (the server's defaults apply).
 */
public final class MetricsQuery {
    private final Map<String, Object> params = new LinkedHashMap<>();

    public static MetricsQuery of(String metric) {
        return new MetricsQuery().metric(metric);
    }

    /** response_time, error_rate, throughput, or a custom metric name. */
    public MetricsQuery metric(String metric) {
        params.put("metric", metric);
        return this;
    }

    public MetricsQuery start(Object start) {
        params.put("start", start);
        return this;
    }

    public MetricsQuery end(Object end) {
        params.put("end", end);
        return this;
    }

    /** 1m, 5m, 1h or 1d. */
    public MetricsQuery granularity(String granularity) {
        params.put("granularity", granularity);
        return this;
    }

    /** The statistic of each bucket: mean (default), min, max, sum, count, p50, p95, p99. */
    public MetricsQuery stat(String stat) {
        params.put("stat", stat);
        return this;
    }

    Map<String, Object> params() {
        return params;
    }
}
