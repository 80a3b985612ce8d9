package com.sophonz;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializerProvider;
import com.fasterxml.jackson.databind.module.SimpleModule;
import com.fasterxml.jackson.databind.node.TextNode;
import com.fasterxml.jackson.databind.ser.std.StdSerializer;
import java.io.IOException;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.LocalDate;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.time.temporal.ChronoUnit;
import java.util.Date;
import java.util.Map;
import java.util.StringJoiner;

/** JSON, times and URL pieces: one shared ObjectMapper, java.time written as ISO 8601 UTC. */
final class Json {
    static final ObjectMapper MAPPER = new ObjectMapper().registerModule(timeModule());
    private static final DateTimeFormatter ISO_MS = DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'")
            .withZone(ZoneOffset.UTC);

    private Json() {
    }

    /**
     * Instant, OffsetDateTime, ZonedDateTime and Date become {@code 2024-01-15T12:00:00.000Z};
     * LocalDate its midnight UTC (as the Python SDK does). Anything else is returned as is.
     */
    static Object iso(Object value) {
        if (value instanceof Instant i) {
            return ISO_MS.format(i.truncatedTo(ChronoUnit.MILLIS));
        }
        if (value instanceof OffsetDateTime o) {
            return iso(o.toInstant());
        }
        if (value instanceof ZonedDateTime z) {
            return iso(z.toInstant());
        }
        if (value instanceof Date d) {
            return iso(d.toInstant());
        }
        if (value instanceof LocalDate d) {
            return d + "T00:00:00.000Z";
        }
        return value;
    }

    static String write(Object body) {
        try {
            return MAPPER.writeValueAsString(body);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("The request body cannot be written as JSON: " + e.getOriginalMessage(), e);
        }
    }

    /** The parsed answer: null for an empty one (204), a text node for one that is not JSON. */
    static JsonNode parse(String text) {
        if (text == null || text.isBlank()) {
            return null;
        }
        try {
            return MAPPER.readTree(text);
        } catch (JsonProcessingException notJson) {
            return TextNode.valueOf(text);
        }
    }

    /** One path segment, percent-encoded, so a '/' or '?' in an id cannot reach another route. */
    static String seg(String value) {
        return URLEncoder.encode(String.valueOf(value), StandardCharsets.UTF_8).replace("+", "%20");
    }

    /** "?a=1&b=x" from the non-null entries (in order), or "" when there are none. */
    static String query(Map<String, ?> params) {
        StringJoiner joined = new StringJoiner("&", "?", "");
        joined.setEmptyValue("");
        if (params != null) {
            params.forEach((k, v) -> {
                if (v != null) {
                    joined.add(URLEncoder.encode(k, StandardCharsets.UTF_8) + "="
                            + URLEncoder.encode(String.valueOf(iso(v)), StandardCharsets.UTF_8));
                }
            });
        }
        return joined.toString();
    }

    private static SimpleModule timeModule() {
        SimpleModule module = new SimpleModule("sophonz-time");
        module.addSerializer(Instant.class, new IsoSerializer<>(Instant.class));
        module.addSerializer(OffsetDateTime.class, new IsoSerializer<>(OffsetDateTime.class));
        module.addSerializer(ZonedDateTime.class, new IsoSerializer<>(ZonedDateTime.class));
        module.addSerializer(LocalDate.class, new IsoSerializer<>(LocalDate.class));
        module.addSerializer(Date.class, new IsoSerializer<>(Date.class));
        return module;
    }

    private static final class IsoSerializer<T> extends StdSerializer<T> {
        private static final long serialVersionUID = 1L;

        IsoSerializer(Class<T> type) {
            super(type);
        }

        @Override
        public void serialize(T value, JsonGenerator gen, SerializerProvider provider) throws IOException {
            gen.writeString((String) iso(value));
        }
    }
}
