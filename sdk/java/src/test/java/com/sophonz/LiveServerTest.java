package com.sophonz;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfEnvironmentVariable;

/**
 * The SDK against a real Sophra server: SOPHRA_TEST_BASE_URL and two fresh accounts'
 * keys, SOPHRA_TEST_API_KEY and SOPHRA_TEST_API_KEY_2 (tests/test_sdk_java.py starts the
 * server, makes the accounts, and reads back through the HTTP API what these tests wrote:
 * keep the names and values here in step with it). Skipped without them.
 */
@EnabledIfEnvironmentVariable(named = "SOPHRA_TEST_BASE_URL", matches = ".+")
class LiveServerTest {
    static final String UNAUTHORIZED = "Clé API invalide ou expirée";
    static String url;
    static String key;
    static Sophonz client;

    @BeforeAll
    static void connect() {
        url = System.getenv("SOPHRA_TEST_BASE_URL");
        key = System.getenv("SOPHRA_TEST_API_KEY");
        client = Sophonz.builder().apiKey(key).baseUrl(url).build();
    }

    @AfterAll
    static void disconnect() {
        client.close();
    }

    static JsonNode json(String text) {
        return Json.parse(text);
    }

    /** Reads until done (the sink lands records within a second or so); a 404 meanwhile is retried. */
    static <T> T eventually(Supplier<T> read, java.util.function.Predicate<T> done) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(15).toNanos();
        while (true) {
            try {
                T value = read.get();
                if (done.test(value) || System.nanoTime() > deadline) {
                    return value;
                }
            } catch (SophonzException e) {
                if (e.status() != 404 || System.nanoTime() > deadline) {
                    throw e;
                }
            }
            Thread.sleep(100);
        }
    }

    static long nextHourEpochSeconds() {
        long now = Instant.now().getEpochSecond();
        return now - now % 3600 + 3600;
    }

    // ---- reference 000's example: list applications ----------------------------------------

    @Test
    void referenceExampleListsApplications() {
        String key2 = System.getenv("SOPHRA_TEST_API_KEY_2");
        try (Sophonz client = Sophonz.builder().apiKey(key2).baseUrl(url).build()) {
            JsonNode app = client.applications().create("My Application");
            JsonNode apps = client.applications().list();
            System.out.println(apps);
            assertEquals("{\"applications\":[{\"id\":\"" + app.get("id").asText() + "\",\"name\":\"My Application\","
                    + "\"status\":\"active\",\"environment\":\"production\",\"created_at\":\""
                    + app.get("created_at").asText() + "\",\"updated_at\":\"" + app.get("created_at").asText()
                    + "\"}],\"total\":1,\"page\":1,\"per_page\":20}", apps.toString());
            assertEquals(new RateLimit(1000L, 998L, nextHourEpochSeconds()), client.rateLimit());
        }
    }

    @Test
    void theKeyAndAddressComeFromTheEnvironmentWhenNotGiven() {
        // tests/test_sdk_java.py sets SOPHRA_API_KEY to the second account's key and
        // SOPHRA_BASE_URL to the server's /v1 address (the Python SDK's form), no SOPHONZ_*.
        assertEquals(System.getenv("SOPHRA_TEST_API_KEY_2"), System.getenv("SOPHRA_API_KEY"),
                "run with SOPHRA_API_KEY=$SOPHRA_TEST_API_KEY_2 SOPHRA_BASE_URL=$SOPHRA_TEST_BASE_URL/v1");
        try (Sophonz fromEnv = Sophonz.builder().build()) {
            assertEquals(url, fromEnv.baseUrl());
            assertEquals(json("{\"success\":true,\"agents\":[]}"), fromEnv.agents().list());
        }
    }

    // ---- /v1 ---------------------------------------------------------------------------------

    @Test
    void applicationsRoundTrip() throws Exception {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("name", "Java Shop");
        body.put("description", "from java");
        body.put("environment", "staging");
        body.put("config", Map.of("monitoring", true));
        JsonNode shop = client.applications().create(body);
        String id = shop.get("id").asText();
        String created = shop.get("created_at").asText();
        assertTrue(id.startsWith("app_"), id);
        assertEquals(json("{\"id\":\"" + id + "\",\"name\":\"Java Shop\",\"description\":\"from java\",\"status\":\"active\","
                + "\"environment\":\"staging\",\"base_url\":null,\"config\":{\"monitoring\":true},"
                + "\"metrics\":{\"uptime\":null,\"response_time\":null,\"error_rate\":null},"
                + "\"created_at\":\"" + created + "\",\"updated_at\":\"" + created + "\"}"), shop);
        assertEquals(shop, client.applications().get(id));

        Map<String, Object> fields = new LinkedHashMap<>();
        fields.put("status", "maintenance");
        fields.put("base_url", "https://java.example.com");
        JsonNode updated = client.applications().update(id, fields);
        assertEquals("maintenance", updated.get("status").asText());
        assertEquals("https://java.example.com/", updated.get("base_url").asText());
        assertEquals("from java", updated.get("description").asText());

        JsonNode doomed = client.applications().create("Java Doomed");
        String doomedId = doomed.get("id").asText();
        client.applications().delete(doomedId);
        SophonzException gone = assertThrows(SophonzException.class, () -> client.applications().get(doomedId));
        assertEquals(List.of(404, "Not found", "No application '" + doomedId + "' for this API key"),
                List.of(gone.status(), gone.error(), gone.getMessage()));
        assertNull(gone.field());
        assertNull(gone.retryAfter());
        assertEquals(json("{\"success\":false,\"error\":\"Not found\",\"message\":\"No application '" + doomedId
                + "' for this API key\"}"), gone.body());

        SophonzException invalid = assertThrows(SophonzException.class, () -> client.applications().create(""));
        assertEquals("400 Invalid request: name: string should have at least 1 character (field: name)",
                invalid.toString());
        assertEquals("per_page", assertThrows(SophonzException.class,
                () -> client.applications().list(1, 101)).field());
        // the id is one path segment, whatever it holds
        assertEquals("No application 'app x?y#z' for this API key", assertThrows(SophonzException.class,
                () -> client.applications().get("app x?y#z")).getMessage());

        // other tests of this class share the account: look for this one among all
        JsonNode all = client.applications().list(1, 100);
        assertTrue(all.get("applications").findValuesAsText("id").contains(id));
        assertFalse(all.get("applications").findValuesAsText("id").contains(doomedId));
        assertEquals(all.get("total").asInt(), all.get("applications").size());
        assertEquals(all, client.applications().listAsync(1, 100).get());
        JsonNode page = client.applications().list(2, 1);
        assertEquals(List.of(1, 2, 1), List.of(page.get("applications").size(), page.get("page").asInt(),
                page.get("per_page").asInt()));
        ExecutionException async = assertThrows(ExecutionException.class,
                () -> client.applications().getAsync(doomedId).get());
        assertEquals(404, assertInstanceOf(SophonzException.class, async.getCause()).status());
    }

    @Test
    void metricsAreSentAndReadBack() throws Exception {
        String id = client.applications().create("Java Metrics").get("id").asText();
        long minute = System.currentTimeMillis() / 60_000 * 60_000 - 10 * 60_000;
        JsonNode sent = client.metrics().send(id, List.of(
                Map.of("metric", "response_time", "value", 100, "timestamp", Instant.ofEpochMilli(minute + 1000)),
                Map.of("metric", "response_time", "value", 250.5, "timestamp", minute + 2000),
                Map.of("metric", "response_time", "value", 600,
                        "timestamp", Json.iso(Instant.ofEpochMilli(minute + 60_000)))));
        assertEquals(3, sent.get("accepted").asInt());
        assertTrue(sent.get("batch_id").asLong() > 0);
        MetricsQuery counts = MetricsQuery.of("response_time").start(Instant.ofEpochMilli(minute))
                .end(Instant.ofEpochMilli(minute + 120_000)).granularity("1m").stat("count");
        JsonNode counted = eventually(() -> client.metrics().get(id, counts),
                r -> r.get("data").size() == 2 && r.get("data").get(1).get("value").asInt() == 1);
        String t0 = Json.iso(Instant.ofEpochMilli(minute)).toString().replace(".000Z", "Z");
        String t1 = Json.iso(Instant.ofEpochMilli(minute + 60_000)).toString().replace(".000Z", "Z");
        assertEquals(json("{\"metric\":\"response_time\",\"granularity\":\"1m\",\"data\":[{\"timestamp\":\"" + t0
                + "\",\"value\":2},{\"timestamp\":\"" + t1 + "\",\"value\":1}]}"), counted);
        JsonNode mean = client.metrics().get(id, MetricsQuery.of("response_time").start(Instant.ofEpochMilli(minute))
                .end(Instant.ofEpochMilli(minute + 120_000)).granularity("1m"));
        assertEquals(175.25, mean.get("data").get(0).get("value").asDouble());
        assertEquals(600.0, mean.get("data").get(1).get("value").asDouble());
        SophonzException bad = assertThrows(SophonzException.class, () -> client.metrics().send(id,
                List.of(Map.of("metric", "error_rate", "value", 2, "timestamp", 1))));
        assertEquals(List.of(400, "points[0].value", "points[0].value: must be between 0 and 1 for error_rate (a fraction 0..1)"),
                List.of(bad.status(), bad.field(), bad.getMessage()));
    }

    @Test
    void alertsDeploymentsInsightsAndPredictions() throws Exception {
        String id = client.applications().create("Java Ops").get("id").asText();
        Map<String, Object> rule = new LinkedHashMap<>();
        rule.put("name", "High Error Rate");
        rule.put("condition", Map.of("metric", "error_rate", "operator", ">", "threshold", 0.05));
        rule.put("actions", List.of(Map.of("type", "email", "recipients", List.of("admin@company.com"))));
        JsonNode alert = client.alerts().create(id, rule);
        String alertId = alert.get("id").asText();
        assertTrue(alertId.startsWith("alert_"), alertId);
        assertEquals(json("{\"metric\":\"error_rate\",\"operator\":\">\",\"threshold\":0.05,\"window\":\"5m\","
                + "\"aggregation\":\"mean\"}"), alert.get("condition"));
        assertEquals(List.of(alertId), client.alerts().list(id).findValuesAsText("id"));
        JsonNode silenced = client.alerts().silence(id, alertId, Instant.parse("2099-01-01T00:00:00Z"));
        assertTrue(silenced.get("silenced_until").asText().startsWith("2099-01-01T00:00:00"),
                silenced.get("silenced_until").asText());
        assertTrue(client.alerts().history(id, alertId).isObject());
        client.alerts().delete(id, alertId);
        assertEquals(json("{\"alerts\":[]}"), client.alerts().list(id));

        Map<String, Object> deployment = new LinkedHashMap<>();
        deployment.put("version", "v1.2.5");
        deployment.put("description", "Bug fixes and performance improvements");
        deployment.put("changes", List.of("Fixed payment processing bug", "Updated user interface"));
        deployment.put("config", Map.of("rollback_on_error", true, "health_check_url", "/health"));
        JsonNode deployed = client.deployments().create(id, deployment);
        assertEquals(List.of("v1.2.5", "pending"), List.of(deployed.get("version").asText(), deployed.get("status").asText()));
        JsonNode listed = eventually(() -> client.deployments().list(id), r -> r.get("deployments").size() > 0);
        assertEquals(json("{\"deployments\":[" + deployed + "]}"), listed);
        SophonzException noVersion = assertThrows(SophonzException.class,
                () -> client.deployments().create(id, Map.of("version", "")));
        assertEquals("version", noVersion.field());

        assertEquals(json("{\"insights\":[]}"), client.insights().list(id));
        JsonNode predicted = client.predictions().get(id, "error_rate", "6h");
        assertEquals(List.of("error_rate", "6h", "0"), List.of(predicted.get("metric").asText(),
                predicted.get("horizon").asText(), String.valueOf(predicted.get("predictions").size())));
        assertEquals("horizon", assertThrows(SophonzException.class,
                () -> client.predictions().get(id, null, "2h")).field());
    }

    // ---- the agent API -------------------------------------------------------------------

    @Test
    void agentReportsAndReads() throws Exception {
        JsonNode created = client.agents().reportVitals(Vitals.of("java-agent").agentName("Java Agent")
                .tokenConsumption(2400).tokenLimit(100000).hallucinationRate(0.02).loopCount(3).conflictCount(0));
        JsonNode vital = created.get("vital");
        assertEquals(json("{\"success\":true,\"health\":\"green\",\"vital\":{\"id\":" + vital.get("id") + ",\"agent_id\":"
                + "\"java-agent\",\"token_consumption\":2400,\"hallucination_rate\":0.02,\"loop_frequency\":3,"
                + "\"directive_conflicts\":0,\"overall_health\":\"green\",\"recorded_at\":" + vital.get("recorded_at")
                + "}}"), created);
        JsonNode event = client.agents().reportEvent(Event.of("java-agent", "tool_error")
                .details("Web search tool timed out").metadata(Map.of("tool", "web_search", "attempt", 3)));
        assertEquals(json("{\"agent_id\":\"java-agent\",\"event_type\":\"tool_error\",\"details\":\"Web search tool timed out\","
                + "\"metadata\":{\"tool\":\"web_search\",\"attempt\":3}}"),
                ((com.fasterxml.jackson.databind.node.ObjectNode) event.get("event").deepCopy()).without(List.of("id", "recorded_at")));

        JsonNode history = eventually(() -> client.agents().vitals("java-agent", 1), r -> r.get("vitals").size() == 1);
        assertEquals(vital.get("id"), history.get("vitals").get(0).get("id"));
        assertEquals(100000, history.get("vitals").get(0).get("token_limit").asInt());
        JsonNode events = eventually(() -> client.agents().events("java-agent", null), r -> r.get("events").size() == 1);
        assertEquals("tool_error", events.get("events").get(0).get("event_type").asText());

        Optional<JsonNode> agent = eventually(() -> client.agents().get("java-agent"), Optional::isPresent);
        assertEquals("Java Agent", agent.orElseThrow().get("name").asText());
        assertEquals(List.of("active", "green"), List.of(agent.get().get("status").asText(),
                agent.get().get("overall_health").asText()));
        assertTrue(client.agents().list().get("success").asBoolean());
        assertFalse(client.agents().get("nobody-java").isPresent());
        assertEquals(404, assertThrows(SophonzException.class, () -> client.agents().vitals("nobody-java", null)).status());

        JsonNode ari = client.agents().ariAsync("java-agent").get();
        assertEquals(List.of(true, "java-agent"), List.of(ari.get("success").asBoolean(), ari.get("agent_id").asText()));
        assertTrue(ari.get("stats").isObject() && ari.get("checkups").isObject() && ari.get("interventions").isArray());
    }

    @Test
    void aRateLimitedReportWaitsForRetryAfterThenSucceeds() {
        JsonNode first = client.agents().reportVitals(Vitals.of("java-rate-limited").tokenConsumption(100).loopCount(1));
        long start = System.nanoTime();
        JsonNode second = client.agents().reportVitals(Vitals.of("java-rate-limited").tokenConsumption(200).loopCount(2));
        long waitedMs = Duration.ofNanos(System.nanoTime() - start).toMillis();
        // the server allows one report per agent per 10 s: the 429's Retry-After was waited out
        assertTrue(waitedMs >= 9000, "waited " + waitedMs + " ms");
        assertNotEquals(first.get("vital").get("id"), second.get("vital").get("id"));
        assertEquals(200, second.get("vital").get("token_consumption").asInt());
    }

    @Test
    void aRateLimitedReportGivesUpWithinTheRetryBudget() {
        try (Sophonz impatient = Sophonz.builder().apiKey(key).baseUrl(url).maxRetryTime(Duration.ofMillis(1500)).build()) {
            impatient.agents().reportVitals(Map.of("agentId", "java-impatient"));
            long start = System.nanoTime();
            SophonzException e = assertThrows(SophonzException.class,
                    () -> impatient.agents().reportVitals(Map.of("agentId", "java-impatient")));
            assertTrue(Duration.ofNanos(System.nanoTime() - start).toMillis() < 3000, "gave up at once");
            assertEquals(List.of(429, "Rate limit exceeded"), List.of(e.status(), e.error()));
            assertTrue(e.retryAfter() >= 2 && e.retryAfter() <= 10, "retryAfter " + e.retryAfter());
            assertTrue(e.body().get("retry_after_ms").asLong() > 1500);
        }
    }

    @Test
    void badPayloadsAndWrongKeysFailAtOnce() {
        SophonzException bad = assertThrows(SophonzException.class, () -> client.agents().reportVitals(
                Vitals.of("java-bad").hallucinationRate(1.5)));
        assertEquals(List.of(400, "metrics.hallucinationRate"), List.of(bad.status(), bad.field()));
        assertTrue(bad.getMessage().startsWith("metrics.hallucinationRate"), bad.getMessage());
        try (Sophonz wrong = Sophonz.builder().apiKey("sk_live_" + "0".repeat(32)).baseUrl(url).build()) {
            for (Runnable call : List.<Runnable>of(() -> wrong.agents().list(), () -> wrong.applications().list())) {
                SophonzException e = assertThrows(SophonzException.class, call::run);
                assertEquals(List.of(401, UNAUTHORIZED, UNAUTHORIZED + ". Obtenez la vôtre sur /onboarding.html"),
                        List.of(e.status(), e.error(), e.getMessage()));
            }
            assertNull(wrong.rateLimit());
        }
    }

    @Test
    void theReporterSendsInTheBackground() {
        Reporter reporter = client.reporter();
        long start = System.nanoTime();
        assertTrue(reporter.reportVitals(Vitals.of("java-reporter").agentName("Java Reporter").tokenConsumption(90000)
                .tokenLimit(100000).hallucinationRate(0.06).loopCount(7).conflictCount(2).metric("tasksCompleted", 12)));
        assertTrue(reporter.reportEvent(Event.of("java-reporter", "task_completed").details("nightly run")));
        assertTrue(Duration.ofNanos(System.nanoTime() - start).toMillis() < 200, "reports must not block");
        assertTrue(reporter.flush(Duration.ofSeconds(20)));
        assertEquals(List.of(2L, 0L, 0L), List.of(reporter.sent(), reporter.failed(), reporter.dropped()));
    }

    @Test
    void noServerMeansStatusZeroWithinTheBudget() throws Exception {
        int closedPort;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            closedPort = s.getLocalPort();
        }
        try (Sophonz dead = Sophonz.builder().apiKey(key).baseUrl("http://127.0.0.1:" + closedPort)
                .maxRetryTime(Duration.ofSeconds(1)).build()) {
            long start = System.nanoTime();
            SophonzException e = assertThrows(SophonzException.class, () -> dead.applications().list());
            assertTrue(Duration.ofNanos(System.nanoTime() - start).toMillis() < 3000);
            assertEquals(List.of(0, "Network error"), List.of(e.status(), e.error()));
            assertTrue(e.getMessage().startsWith("Cannot reach http://127.0.0.1:" + closedPort + "/v1/applications: "),
                    e.getMessage());
        }
    }
}
