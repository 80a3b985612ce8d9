package com.sophonz;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import org.junit.jupiter.api.Test;

/** SophonzException's fields and text, and how the synchronous calls surface it. */
class ErrorModelTest {
    @Test
    void textIsStatusErrorMessageAndField() {
        SophonzException e = new SophonzException(400, "Invalid request", "name: string should have at least 1 character",
                "name", null, null, null);
        assertEquals("400 Invalid request: name: string should have at least 1 character (field: name)", e.toString());
        assertEquals(e.getMessage(), e.message());
        SophonzException limited = new SophonzException(429, "Rate limit exceeded", "retry in 8 s", null, 8, null, null);
        assertEquals("429 Rate limit exceeded: retry in 8 s", limited.toString());
        assertEquals(8, limited.retryAfter());
        assertNull(limited.field());
        assertTrue(limited instanceof RuntimeException);
    }

    @Test
    void synchronousCallsThrowTheSameException() {
        SophonzException e = new SophonzException(404, "Not found", "No application 'x'", null, null, null, null);
        SophonzException thrown = assertThrows(SophonzException.class,
                () -> Transport.await(CompletableFuture.failedFuture(new CompletionException(e))));
        assertSame(e, thrown);
        assertEquals("ok", Transport.await(CompletableFuture.completedFuture("ok")));
    }
}
