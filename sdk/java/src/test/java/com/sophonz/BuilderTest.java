package com.sophonz;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Where the key and the address come from, and the defaults. */
class BuilderTest {
    private static Sophonz build(Map<String, String> env, String key, String url) {
        Sophonz.Builder b = Sophonz.builder().environment(env::get);
        if (key != null) {
            b.apiKey(key);
        }
        if (url != null) {
            b.baseUrl(url);
        }
        return b.build();
    }

    @Test
    void anExplicitKeyWinsThenSophonzApiKeyThenSophraApiKey() {
        Map<String, String> both = Map.of("SOPHONZ_API_KEY", "k-sophonz", "SOPHRA_API_KEY", "k-sophra");
        try (Sophonz c = build(both, "k-given", null)) {
            assertEquals("k-given", key(c));
        }
        try (Sophonz c = build(both, null, null)) {
            assertEquals("k-sophonz", key(c));
        }
        try (Sophonz c = build(Map.of("SOPHRA_API_KEY", "k-sophra", "SOPHONZ_API_KEY", " "), null, null)) {
            assertEquals("k-sophra", key(c));
        }
    }

    @Test
    void noKeyAnywhereFailsAtBuild() {
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> build(Map.of(), null, null));
        assertEquals("No API key: pass Sophonz.builder().apiKey(...) or set SOPHONZ_API_KEY (or SOPHRA_API_KEY)",
                e.getMessage());
        assertThrows(IllegalStateException.class, () -> build(Map.of(), "  ", null));
    }

    @Test
    void theBaseUrlIsTheServerWithoutV1() {
        try (Sophonz c = build(Map.of(), "k", null)) {
            assertEquals("http://127.0.0.1:8000", c.baseUrl());
            assertEquals(Duration.ofSeconds(10), c.timeout());
            assertEquals(Duration.ofSeconds(30), c.maxRetryTime());
            assertEquals(null, c.rateLimit());
            assertEquals("Sophonz(baseUrl=http://127.0.0.1:8000)", c.toString());
        }
        Map<String, String> env = Map.of("SOPHONZ_BASE_URL", "https://a.example/v1/", "SOPHRA_BASE_URL", "https://b.example");
        try (Sophonz c = build(env, "k", null)) {
            assertEquals("https://a.example", c.baseUrl());
        }
        try (Sophonz c = build(Map.of("SOPHRA_BASE_URL", "https://b.example/"), "k", null)) {
            assertEquals("https://b.example", c.baseUrl());
        }
        try (Sophonz c = build(env, "k", "http://host:9000/sophra//")) {
            assertEquals("http://host:9000/sophra", c.baseUrl());
        }
        assertEquals("https://api.sophonz.com", Sophonz.Builder.normalizeBaseUrl("https://api.sophonz.com/v1"));
    }

    @Test
    void badOptionsFailEarly() {
        assertThrows(IllegalArgumentException.class, () -> Sophonz.builder().timeout(Duration.ZERO));
        assertThrows(IllegalArgumentException.class, () -> Sophonz.builder().timeout(null));
        assertThrows(IllegalArgumentException.class, () -> Sophonz.builder().maxRetryTime(Duration.ofSeconds(-1)));
        assertThrows(IllegalArgumentException.class, () -> Sophonz.builder().reportQueueCapacity(0));
        try (Sophonz c = Sophonz.builder().apiKey("k").environment(Map.<String, String>of()::get)
                .maxRetryTime(Duration.ZERO).timeout(Duration.ofMillis(250)).build()) {
            assertEquals(Duration.ZERO, c.maxRetryTime());
            assertEquals(Duration.ofMillis(250), c.timeout());
        }
    }

    private static String key(Sophonz c) {
        return c.apiKey();
    }
}
