package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/readymesh/readymesh/peer/wire"
)

// Webhook delivery: each event is retried with backoff, 1 s doubling, for
// webhookAttempts attempts before it is given up and logged.
const (
	webhookAttempts = 5
	webhookTimeout  = 10 * time.Second
)

// post delivers webhook events in order until ctx ends.
func (a *Alerts) post(ctx context.Context) {
	client := &http.Client{Timeout: webhookTimeout}
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-a.hook:
			a.deliver(ctx, client, e)
		}
	}
}

// deliver posts one event, retrying with backoff.
func (a *Alerts) deliver(ctx context.Context, client *http.Client, e wire.AlertEvent) {
	body, _ := json.Marshal(e)
	wait := time.Second
	for attempt := 1; ; attempt++ {
		err := a.postOnce(ctx, client, body)
		if err == nil {
			return
		}
		if attempt == webhookAttempts || ctx.Err() != nil {
			a.cfg.Logger.Warn("alert webhook gave up", "machine", e.Alert.Machine, "kind", e.Alert.Kind, "event", e.Event, "err", err)
			return
		}
		a.cfg.Logger.Info("alert webhook failed; retrying", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func (a *Alerts) postOnce(ctx context.Context, client *http.Client, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.Webhook, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}
