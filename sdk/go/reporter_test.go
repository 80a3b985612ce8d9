package sophra

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// gate is a server whose answers wait until it is opened; it tells when a request arrives.
type gate struct {
	arrived chan string
	open    chan struct{}
	status  int
	served  atomic.Int64
}

func newGate(t *testing.T, status int) (*gate, *Client) {
	g := &gate{arrived: make(chan string, 100), open: make(chan struct{}), status: status}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.arrived <- r.URL.Path
		select {
		case <-g.open:
		case <-r.Context().Done():
			return
		}
		g.served.Add(1)
		w.WriteHeader(g.status)
		w.Write([]byte(`{"success":false,"error":"Invalid request","message":"m"}`))
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		select {
		case <-g.open:
		default:
			close(g.open)
		}
	})
	c, _ := NewClient(Options{APIKey: "k", BaseURL: srv.URL})
	return g, c
}

func (g *gate) wait(t *testing.T) string {
	t.Helper()
	select {
	case p := <-g.arrived:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no request arrived")
		return ""
	}
}

func TestReporterNeverBlocksAndCountsDrops(t *testing.T) {
	g, c := newGate(t, 200)
	r := c.NewReporter(ReporterOptions{QueueSize: 2, Workers: 1})
	if !r.Vitals(Vitals{AgentID: "a"}) {
		t.Fatal("first report dropped")
	}
	if p := g.wait(t); p != "/api/vitals" { // the worker holds it: the queue is empty again
		t.Fatalf("path %q", p)
	}
	start := time.Now()
	accepted := []bool{r.Event(Event{AgentID: "a", Type: "x"}), r.Vitals(Vitals{AgentID: "b"}),
		r.Vitals(Vitals{AgentID: "c"}), r.Event(Event{AgentID: "d", Type: "y"}), r.Vitals(Vitals{AgentID: "e"})}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("queueing took %v", took)
	}
	if want := []bool{true, true, false, false, false}; !equal(accepted, want) {
		t.Errorf("accepted %v, want %v", accepted, want)
	}
	if s := r.Stats(); s != (ReporterStats{Dropped: 3}) {
		t.Errorf("before sending: %+v", s)
	}
	close(g.open)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if s := r.Stats(); s != (ReporterStats{Sent: 3, Dropped: 3}) {
		t.Errorf("after Flush: %+v", s)
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if r.Vitals(Vitals{AgentID: "late"}) || r.Close(ctx) != nil {
		t.Error("a closed reporter took a report, or a second Close failed")
	}
	if s := r.Stats(); s != (ReporterStats{Sent: 3, Dropped: 4}) || g.served.Load() != 3 {
		t.Errorf("after Close: %+v, %d served", s, g.served.Load())
	}
}

func equal(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReporterCloseRunningOutOfTimeCancelsAndDrops(t *testing.T) {
	g, c := newGate(t, 200)
	var failures []error
	r := c.NewReporter(ReporterOptions{QueueSize: 10, Workers: 1, OnError: func(err error) { failures = append(failures, err) }})
	r.Vitals(Vitals{AgentID: "a"})
	g.wait(t)
	r.Vitals(Vitals{AgentID: "b"})
	r.Vitals(Vitals{AgentID: "c"})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := r.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("Close: %v after %v", err, time.Since(start))
	}
	// The request in flight was cancelled (failed, told to OnError); the two queued were never sent.
	if s := r.Stats(); s != (ReporterStats{Failed: 1, Dropped: 2}) {
		t.Errorf("%+v", s)
	}
	var e *Error
	if len(failures) != 1 || !errors.As(failures[0], &e) || e.Code != CodeCanceled {
		t.Errorf("OnError got %v", failures)
	}
}

func TestReporterSurvivesFailuresAndAPanickingOnError(t *testing.T) {
	g, c := newGate(t, 400)
	close(g.open)
	calls := 0
	r := c.NewReporter(ReporterOptions{Workers: 1, OnError: func(err error) { calls++; panic("careless callback") }})
	r.Vitals(Vitals{AgentID: "a"})
	r.Event(Event{AgentID: "a", Type: "t"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if s := r.Stats(); s != (ReporterStats{Failed: 2}) || calls != 2 {
		t.Errorf("%+v, OnError called %d times", s, calls)
	}
}

func TestANilReporterIsHarmless(t *testing.T) {
	var r *Reporter
	if r.Vitals(Vitals{}) || r.Event(Event{}) || r.Flush(context.Background()) != nil ||
		r.Close(context.Background()) != nil || r.Stats() != (ReporterStats{}) {
		t.Error("a nil reporter did something")
	}
}
