package ingest

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// reportLag refreshes the lag gauge every LagInterval until ctx is done:
// per partition this member owns, the log end offset minus the group's
// committed offset (kadm's group lag). Computed from commits, it keeps
// growing while this member is stuck (an outage), which the position of the
// last poll would not show.
func (c *Consumer) reportLag(ctx context.Context) {
	adm := kadm.NewClient(c.cl)
	t := time.NewTicker(c.cfg.LagInterval)
	defer t.Stop()
	shown := map[int32]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		member, _ := c.cl.GroupMetadata()
		if member == "" {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, c.cfg.LagInterval)
		lags, err := adm.Lag(qctx, c.cfg.Group)
		cancel()
		if err == nil {
			dl := lags[c.cfg.Group]
			err = dl.Error()
		}
		if err != nil {
			if ctx.Err() == nil {
				c.log.Debug("computing lag failed", "err", err)
			}
			continue
		}
		owned := map[int32]bool{}
		for p, l := range lags[c.cfg.Group].Lag[c.cfg.Topic] {
			if l.Member == nil || l.Member.MemberID != member || l.Err != nil {
				continue
			}
			owned[p] = true
			c.m.setLag(p, l.Lag)
		}
		for p := range shown {
			if !owned[p] {
				c.m.dropLag(p)
			}
		}
		shown = owned
	}
}
