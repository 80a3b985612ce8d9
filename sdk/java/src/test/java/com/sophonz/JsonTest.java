package com.sophonz;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Instant;
import java.time.LocalDate;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** What goes on the wire: times, bodies, query strings, path segments, payload builders. */
class JsonTest {
    @Test
    void timesAreIsoUtcWithMilliseconds() {
        Instant t = Instant.parse("2024-01-15T12:00:00.123456Z");
        assertEquals("2024-01-15T12:00:00.123Z", Json.iso(t));
        assertEquals("2024-01-15T10:00:00.000Z", Json.iso(OffsetDateTime.of(2024, 1, 15, 12, 0, 0, 0,
                ZoneOffset.ofHours(2))));
        assertEquals("2024-01-15T00:00:00.000Z", Json.iso(LocalDate.of(2024, 1, 15)));
        assertEquals(42L, Json.iso(42L));
        Map<String, Object> point = new LinkedHashMap<>();
        point.put("metric", "response_time");
        point.put("value", 250.5);
        point.put("timestamp", t);
        assertEquals("{\"points\":[{\"metric\":\"response_time\",\"value\":250.5,\"timestamp\":\"2024-01-15T12:00:00.123Z\"}]}",
                Json.write(Map.of("points", List.of(point))));
    }

    @Test
    void queryLeavesOutNullsAndEncodesValues() {
        Map<String, Object> q = new LinkedHashMap<>();
        q.put("metric", "response_time");
        q.put("start", Instant.parse("2024-01-15T12:00:00Z"));
        q.put("page", null);
        q.put("name", "a b&c");
        assertEquals("?metric=response_time&start=2024-01-15T12%3A00%3A00.000Z&name=a+b%26c", Json.query(q));
        Map<String, Object> empty = new LinkedHashMap<>();
        empty.put("page", null);
        assertEquals("", Json.query(empty));
        assertEquals("", Json.query(null));
    }

    @Test
    void pathSegmentsCannotReachAnotherRoute() {
        assertEquals("app%20x%3Fy%23z%2F..", Json.seg("app x?y#z/.."));
        assertEquals("app_123", Json.seg("app_123"));
    }

    @Test
    void answersParseToJsonTextOrNothing() {
        assertEquals("{\"total\":1,\"applications\":[]}", Json.parse("{\"total\":1,\"applications\":[]}").toString());
        assertTrue(Json.parse("<html>bad gateway</html>").isTextual());
        assertNull(Json.parse(""));
        assertNull(Json.parse(null));
    }

    @Test
    void payloadBuildersSendOnlyWhatIsSet() {
        assertEquals("{\"agentId\":\"a\"}", Json.write(Vitals.of("a").toMap()));
        assertEquals("{\"agentId\":\"my-agent\",\"agentName\":\"My Production Agent\",\"metrics\":{\"tokenConsumption\":2400,"
                        + "\"tokenLimit\":100000,\"hallucinationRate\":0.02,\"loopCount\":3,\"conflictCount\":0,"
                        + "\"model\":\"claude-3-5-sonnet\"},\"metadata\":{\"run\":\"nightly\"}}",
                Json.write(Vitals.of("my-agent").agentName("My Production Agent").tokenConsumption(2400).tokenLimit(100000)
                        .hallucinationRate(0.02).loopCount(3).conflictCount(0).metric("model", "claude-3-5-sonnet")
                        .metadata(Map.of("run", "nightly")).toMap()));
        assertEquals("{\"agentId\":\"a\",\"type\":\"tool_error\"}", Json.write(Event.of("a", "tool_error").toMap()));
        assertEquals("{\"agentId\":\"a\",\"type\":\"tool_error\",\"details\":\"timed out\",\"metadata\":{\"attempt\":3}}",
                Json.write(Event.of("a", "tool_error").details("timed out").metadata(Map.of("attempt", 3)).toMap()));
    }
}
