package com.sophonz;

import com.fasterxml.jackson.databind.JsonNode;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * Fire-and-forget reports of vitals and events, for an agent's main loop: {@code report...}
 * never throws and never blocks. A report is copied into a bounded queue (capacity from
 * {@link Sophonz.Builder#reportQueueCapacity}) and sent by one background thread, in order,
 * with the client's retries; when the queue is full the new report is dropped and counted.
 * Failures are counted and passed to the {@link #onError} listener, never thrown.
 * {@link #flush} waits for the queue to drain; {@link Sophonz#close()} flushes, then stops.
 */
public final class Reporter {
    private static final String VITALS = "/api/vitals";
    private static final String EVENTS = "/api/events";
    private final Agents agents;
    private final BlockingQueue<Report> queue;
    private final AtomicLong pending = new AtomicLong();
    private final AtomicLong sent = new AtomicLong();
    private final AtomicLong failed = new AtomicLong();
    private final AtomicLong dropped = new AtomicLong();
    private final Object drained = new Object();
    private volatile Consumer<SophonzException> onError = e -> { };
    private volatile boolean closed;
    private Thread worker;

    private record Report(String path, JsonNode body) {
    }

    Reporter(Agents agents, int capacity) {
        this.agents = agents;
        this.queue = new ArrayBlockingQueue<>(capacity);
    }

    /** Queues POST /api/vitals; false when the report was dropped (queue full, closed, or unwritable). */
    public boolean reportVitals(Vitals vitals) {
        return offer(VITALS, () -> vitals.toMap());
    }

    public boolean reportVitals(Map<String, ?> body) {
        return offer(VITALS, () -> body);
    }

    /** Queues POST /api/events; false when the report was dropped. */
    public boolean reportEvent(Event event) {
        return offer(EVENTS, () -> event.toMap());
    }

    public boolean reportEvent(Map<String, ?> body) {
        return offer(EVENTS, () -> body);
    }

    /** Called on the reporter's thread with each report the server refused or never answered. */
    public Reporter onError(Consumer<SophonzException> listener) {
        this.onError = listener == null ? e -> { } : listener;
        return this;
    }

    /** Reports the server accepted. */
    public long sent() {
        return sent.get();
    }

    /** Reports refused by the server or lost to the network, after retries. */
    public long failed() {
        return failed.get();
    }

    /** Reports never sent: the queue was full, the reporter closed, or the body not writable as JSON. */
    public long dropped() {
        return dropped.get();
    }

    /** Reports queued or in flight. */
    public long pending() {
        return pending.get();
    }

    /** Reports waiting in the queue (not yet taken by the sending thread). */
    int queued() {
        return queue.size();
    }

    /** Waits until every report queued so far has been sent or has failed; false if the wait ran out. */
    public boolean flush(Duration wait) {
        long deadline = System.nanoTime() + wait.toNanos();
        synchronized (drained) {
            while (pending.get() > 0) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                try {
                    TimeUnit.NANOSECONDS.timedWait(drained, left);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return pending.get() == 0;
                }
            }
        }
        return true;
    }

    /** Flushes for at most {@code wait}, then stops the thread; what is still queued is dropped. */
    void close(Duration wait) {
        flush(wait);
        closed = true;
        Thread w;
        synchronized (this) {
            w = worker;
        }
        if (w != null) {
            w.interrupt();
        }
        int left = queue.size();
        queue.clear();
        dropped.addAndGet(left);
        pending.addAndGet(-left);
    }

    private boolean offer(String path, Supplier<?> body) {
        try {
            if (closed) {
                dropped.incrementAndGet();
                return false;
            }
            // A copy now: the caller may change its map after this returns.
            JsonNode json = Json.MAPPER.valueToTree(body.get());
            if (json == null || !json.isObject()) {
                dropped.incrementAndGet();
                return false;
            }
            pending.incrementAndGet();
            if (!queue.offer(new Report(path, json))) {
                pending.decrementAndGet();
                dropped.incrementAndGet();
                return false;
            }
            startWorker();
            return true;
        } catch (RuntimeException | Error unwritable) { // never throw into the agent's loop
            dropped.incrementAndGet();
            return false;
        }
    }

    private synchronized void startWorker() {
        if (worker == null && !closed) {
            worker = new Thread(this::run, "sophonz-reporter");
            worker.setDaemon(true);
            worker.start();
        }
    }

    private void run() {
        while (!closed || !queue.isEmpty()) {
            Report report;
            try {
                report = queue.take();
            } catch (InterruptedException e) {
                return;
            }
            try {
                Transport.await(agents.post(report.path(), report.body()));
                sent.incrementAndGet();
            } catch (SophonzException e) {
                failed.incrementAndGet();
                tell(e);
            } catch (RuntimeException e) {
                failed.incrementAndGet();
                tell(new SophonzException(0, "Network error", String.valueOf(e), null, null, null, e));
            } finally {
                pending.decrementAndGet();
                synchronized (drained) {
                    drained.notifyAll();
                }
            }
            if (Thread.currentThread().isInterrupted()) {
                return;
            }
        }
    }

    private void tell(SophonzException e) {
        try {
            onError.accept(e);
        } catch (RuntimeException ignored) { // a listener's bug must not stop the reporter
        }
    }
}
