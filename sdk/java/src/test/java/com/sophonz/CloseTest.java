package com.sophonz;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.net.InetAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** close() ends what waits to retry and refuses new calls: no call outlives its client. */
class CloseTest {
    @Test
    void aRetryWaitingWhenTheClientClosesEndsInsteadOfHanging() throws Exception {
        int closedPort;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            closedPort = s.getLocalPort();
        }
        Sophonz client = Sophonz.builder().apiKey("k").environment(Map.<String, String>of()::get)
                .baseUrl("http://127.0.0.1:" + closedPort).maxRetryTime(Duration.ofSeconds(20)).build();
        CompletableFuture<?> call = client.applications().listAsync();
        Thread.sleep(100); // refused at once, so the call now waits to retry
        client.close();
        ExecutionException e = assertThrows(
                ExecutionException.class, () -> call.get(10, TimeUnit.SECONDS));
        assertEquals("This Sophonz client is closed", e.getCause().getMessage());
        IllegalStateException after = assertThrows(IllegalStateException.class,
                () -> client.agents().list());
        assertEquals("This Sophonz client is closed", after.getMessage());
    }
}
