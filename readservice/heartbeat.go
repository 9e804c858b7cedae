package readservice

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bop-aof/aof/readapi"
)

// publisher publishes the messages of one request. A follow request's
// heartbeats come from a ticker of their own, so that they also go out
// while the request is busy before the tail (a cold segment fetched from
// Tier 2, backing off on hydration, seeking): the client takes three
// missed heartbeats for a lost gateway and asks again, leaving this
// request holding a read.max_concurrent slot. mu keeps publishing in
// order: a heartbeat never goes out with a record, nor after stop (which
// comes before the end of batch or the error).
type publisher struct {
	nc    *nats.Conn
	reply string

	mu      sync.Mutex
	stopped bool
	last    time.Time // of the last message published
	done    chan struct{}
	wg      sync.WaitGroup
}

func newPublisher(nc *nats.Conn, reply string) *publisher {
	return &publisher{nc: nc, reply: reply, last: time.Now(), done: make(chan struct{})}
}

// publish sends m, a record or the final message, in turn with the
// heartbeats.
func (p *publisher) publish(m *nats.Msg) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last = time.Now()
	return p.nc.PublishMsg(m)
}

// startHeartbeats sends a heartbeat each interval in which nothing else
// was published, until stop.
func (p *publisher) startHeartbeats(interval time.Duration) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				p.heartbeat(interval)
			}
		}
	}()
}

func (p *publisher) heartbeat(interval time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Tick and publish times drift by a few ms: a message published
	// within most of an interval makes this tick's heartbeat needless.
	if p.stopped || time.Since(p.last) < interval*9/10 {
		return
	}
	p.last = time.Now()
	// A heartbeat that cannot be published is not an error of the
	// request: the next record or the end of batch will tell.
	_ = p.nc.PublishMsg(controlMsg(p.reply, readapi.StatusHeartbeat, "Idle Heartbeat", nil))
}

// stop ends the heartbeats and waits for their goroutine: after it, no
// heartbeat is published, and the final message may go out.
func (p *publisher) stop() {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.stopped = true
	p.mu.Unlock()
	close(p.done)
	p.wg.Wait()
}
