package sophra

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// ReporterOptions configure a Reporter; zero fields take the defaults.
type ReporterOptions struct {
	// QueueSize is how many reports may wait to be sent; a report that finds the
	// queue full is dropped and counted. Default 1000.
	QueueSize int
	// Workers send reports concurrently, so one agent's report waiting out the 10 s
	// rate limit does not hold up the others. Reports of one agent may then arrive out
	// of order. Default 2.
	Workers int
	// OnError, when set, is called (from a worker goroutine) with each report that
	// failed after the client's retries. A panic in it is recovered.
	OnError func(error)
}

// ReporterStats count what a Reporter did with the reports it was given.
type ReporterStats struct {
	Sent    int64 // answered 2xx
	Failed  int64 // sent, but failed after retries (see OnError)
	Dropped int64 // never sent: the queue was full, the Reporter closed, or Close ran out of time
}

// Reporter sends vitals and events in the background: Vitals and Event never block and
// never panic (not even on a nil or closed Reporter); a bounded queue feeds a few worker
// goroutines that call the client with its retries. Monitoring failures never reach
// the caller's code path: they are counted in Stats and given to OnError.
type Reporter struct {
	client  *Client
	onError func(error)
	queue   chan func(context.Context) error

	ctx    context.Context // the workers' requests; cancelled when Close runs out of time
	cancel context.CancelFunc
	quit   chan struct{} // closed once the workers should stop

	mu      sync.Mutex
	closed  bool
	pending int             // queued or being sent
	idle    []chan struct{} // Flush waiters, released when pending reaches 0
	workers sync.WaitGroup
	stop    sync.Once

	sent, failed, dropped atomic.Int64
}

// NewReporter starts a Reporter's workers; stop them with Close.
func (c *Client) NewReporter(opts ReporterOptions) *Reporter {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 1000
	}
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Reporter{client: c, onError: opts.OnError, queue: make(chan func(context.Context) error, opts.QueueSize),
		ctx: ctx, cancel: cancel, quit: make(chan struct{})}
	for i := 0; i < opts.Workers; i++ {
		r.workers.Add(1)
		go r.work()
	}
	return r
}

// Vitals queues a vitals report; false when it was dropped (queue full or closed).
func (r *Reporter) Vitals(v Vitals) bool {
	return r.enqueue(func(ctx context.Context) error {
		_, err := r.client.ReportVitals(ctx, v)
		return err
	})
}

// Event queues an event report; false when it was dropped (queue full or closed).
func (r *Reporter) Event(e Event) bool {
	return r.enqueue(func(ctx context.Context) error {
		_, err := r.client.ReportEvent(ctx, e)
		return err
	})
}

func (r *Reporter) enqueue(send func(context.Context) error) bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		r.dropped.Add(1)
		return false
	}
	select {
	case r.queue <- send:
		r.pending++
		return true
	default:
		r.dropped.Add(1)
		return false
	}
}

// Stats is a snapshot of the counters.
func (r *Reporter) Stats() ReporterStats {
	if r == nil {
		return ReporterStats{}
	}
	return ReporterStats{Sent: r.sent.Load(), Failed: r.failed.Load(), Dropped: r.dropped.Load()}
}

// Flush waits until every report queued so far has been sent (or has failed), or ctx
// ends (then it returns ctx.Err() and the reports go on in the background).
func (r *Reporter) Flush(ctx context.Context) error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	if r.pending == 0 {
		r.mu.Unlock()
		return nil
	}
	done := make(chan struct{})
	r.idle = append(r.idle, done)
	r.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops taking reports, sends those queued, and stops the workers. When ctx
// ends first, the requests in flight are cancelled, the reports still queued are
// dropped (and counted), and ctx.Err() is returned. Calling it again is harmless.
func (r *Reporter) Close(ctx context.Context) error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	err := r.Flush(ctx)
	r.stop.Do(func() {
		r.cancel() // only the requests still in flight notice: the queue is empty or abandoned
		close(r.quit)
	})
	r.workers.Wait()
	// After an early Close the workers left reports behind: count them as dropped.
	for {
		select {
		case <-r.queue:
			r.dropped.Add(1)
			r.done()
		default:
			return err
		}
	}
}

func (r *Reporter) work() {
	defer r.workers.Done()
	for {
		select {
		case <-r.quit:
			return
		case send := <-r.queue:
			if r.ctx.Err() != nil { // Close ran out of time: drop, do not send
				r.dropped.Add(1)
			} else {
				r.run(send)
			}
			r.done()
		}
	}
}

// run sends one report; whatever happens (even a panic in the client or in OnError) the
// worker goes on.
func (r *Reporter) run(send func(context.Context) error) {
	defer func() {
		if p := recover(); p != nil {
			r.failed.Add(1)
			r.report(fmt.Errorf("sophra: report panicked: %v", p))
		}
	}()
	if err := send(r.ctx); err != nil {
		r.failed.Add(1)
		r.report(err)
		return
	}
	r.sent.Add(1)
}

func (r *Reporter) report(err error) {
	if r.onError == nil {
		return
	}
	defer func() { _ = recover() }()
	r.onError(err)
}

// done marks one report as finished and releases Flush waiters when none is left.
func (r *Reporter) done() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending--
	if r.pending == 0 {
		for _, w := range r.idle {
			close(w)
		}
		r.idle = nil
	}
}
