using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;

namespace Sophonz
{
    /// <summary>
    /// Fire-and-forget reports (Agents.ReportVitals / ReportEvent): the caller's thread only
    /// serializes the payload and queues it, so monitoring never blocks or breaks an agent.
    /// One background task sends them in order, with the client's retries (a second vitals
    /// report for the same agent within the server's 10 s limit waits out Retry-After, and
    /// holds the reports behind it meanwhile). What could not be queued is counted in
    /// Dropped, what the server refused or never answered in Failed (LastError says why).
    /// </summary>
    public sealed class ReportQueue
    {
        private struct Item
        {
            public string Path;
            public string Json;
        }

        private readonly SophonzClient client;
        private readonly int capacity;
        private readonly object gate = new object();
        private readonly Queue<Item> items = new Queue<Item>();
        private readonly CancellationTokenSource stop = new CancellationTokenSource();
        private int pending;  // queued + the one being sent; at most capacity
        private bool running;
        private bool closed;
        private Task drain = Task.FromResult(0);
        private long sent, failed, dropped;
        private Exception lastError;

        internal ReportQueue(SophonzClient client, int capacity)
        {
            this.client = client;
            this.capacity = capacity;
        }

        /// <summary>Reports the server accepted.</summary>
        public long Sent { get { return Interlocked.Read(ref sent); } }

        /// <summary>Reports that failed: refused (4xx, 5xx after retries), unanswered, or not
        /// serializable to JSON.</summary>
        public long Failed { get { return Interlocked.Read(ref failed); } }

        /// <summary>Reports not queued: the queue was full (Capacity), or the client disposed.</summary>
        public long Dropped { get { return Interlocked.Read(ref dropped); } }

        /// <summary>Reports queued or being sent.</summary>
        public int Pending { get { lock (gate) return pending; } }

        public int Capacity { get { return capacity; } }

        /// <summary>Why the last failed report failed (usually a SophonzException), or null.</summary>
        public Exception LastError { get { return Volatile.Read(ref lastError); } }

        /// <summary>Queues one POST; never throws. False when the report was dropped or
        /// could not be serialized.</summary>
        internal bool Enqueue(string path, object body)
        {
            string json;
            try
            {
                json = Json.Serialize(body ?? new JsonObject());
            }
            catch (Exception e)
            {
                Fail(e);
                return false;
            }
            lock (gate)
            {
                if (closed || pending >= capacity)
                {
                    Interlocked.Increment(ref dropped);
                    return false;
                }
                items.Enqueue(new Item { Path = path, Json = json });
                pending++;
                if (!running)
                {
                    running = true;
                    drain = Task.Run(new Func<Task>(DrainAsync));
                }
            }
            return true;
        }

        private async Task DrainAsync()
        {
            while (true)
            {
                Item next;
                lock (gate)
                {
                    if (items.Count == 0)
                    {
                        running = false;
                        return;
                    }
                    next = items.Dequeue();
                }
                try
                {
                    await client.SendCoreAsync("POST", next.Path, next.Json, stop.Token).ConfigureAwait(false);
                    Interlocked.Increment(ref sent);
                }
                catch (Exception e)  // nothing may escape: no one awaits this task
                {
                    Fail(e);
                }
                finally
                {
                    lock (gate) pending--;
                }
            }
        }

        private void Fail(Exception e)
        {
            Volatile.Write(ref lastError, e);
            Interlocked.Increment(ref failed);
        }

        /// <summary>Waits until every queued report was sent or failed. True when the queue
        /// emptied within <paramref name="timeout"/> (Timeout.InfiniteTimeSpan: no limit),
        /// false otherwise (the reports stay queued).</summary>
        public async Task<bool> FlushAsync(TimeSpan timeout, CancellationToken cancellationToken = default(CancellationToken))
        {
            var infinite = timeout == Timeout.InfiniteTimeSpan;
            var clock = Stopwatch.StartNew();
            while (true)
            {
                Task current;
                lock (gate)
                {
                    if (!running) return true;
                    current = drain;
                }
                var left = timeout - clock.Elapsed;
                if (!infinite && left <= TimeSpan.Zero) return false;
                var delay = Task.Delay(infinite ? Timeout.InfiniteTimeSpan : left, cancellationToken);
                if (await Task.WhenAny(current, delay).ConfigureAwait(false) != current)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    return false;
                }
            }
        }

        /// <summary>Dispose: no more reports; flush for at most <paramref name="timeout"/>,
        /// then what is still queued is dropped and a send in progress is cancelled.</summary>
        internal void Close(TimeSpan timeout)
        {
            lock (gate) closed = true;
            bool flushed;
            try
            {
                flushed = FlushAsync(timeout).GetAwaiter().GetResult();  // the drain never needs this thread
            }
            catch (Exception)
            {
                flushed = false;
            }
            if (flushed) return;
            lock (gate)
            {
                Interlocked.Add(ref dropped, items.Count);
                pending -= items.Count;
                items.Clear();
            }
            stop.Cancel();
        }
    }
}
