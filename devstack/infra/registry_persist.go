package infra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
)

// srfake keeps its schemas in memory only, while kfake keeps the records
// that point at them on disk. So that a restart on the same DataDir can still
// decode old records, the registry's subjects are saved to registry.json
// (every second while something changed, and on Close) and seeded back on
// start.

type savedSchema struct {
	Subject string    `json:"subject"`
	Version int       `json:"version"`
	ID      int       `json:"id"`
	Schema  sr.Schema `json:"schema"`
}

func (s *Stack) registryFile() string { return filepath.Join(s.opts.DataDir, "registry.json") }

func (s *Stack) loadRegistry() error {
	b, err := os.ReadFile(s.registryFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("infra: read saved schemas: %w", err)
	}
	var saved []savedSchema
	if err := json.Unmarshal(b, &saved); err != nil {
		return fmt.Errorf("infra: parse %s: %w", s.registryFile(), err)
	}
	for _, ss := range saved {
		s.Registry.SeedSchema(ss.Subject, ss.Version, ss.ID, ss.Schema)
	}
	return nil
}

func (s *Stack) saveRegistry(ctx context.Context, last []savedSchema) ([]savedSchema, error) {
	cl, err := sr.NewClient(sr.URLs(s.RegistryURL()))
	if err != nil {
		return last, err
	}
	all, err := cl.AllSchemas(ctx)
	if err != nil {
		return last, fmt.Errorf("infra: list schemas: %w", err)
	}
	saved := make([]savedSchema, 0, len(all))
	for _, ss := range all {
		saved = append(saved, savedSchema{Subject: ss.Subject, Version: ss.Version, ID: ss.ID, Schema: ss.Schema})
	}
	slices.SortFunc(saved, func(a, b savedSchema) int { return a.ID - b.ID })
	if slices.EqualFunc(saved, last, func(a, b savedSchema) bool {
		return a.Subject == b.Subject && a.Version == b.Version && a.ID == b.ID
	}) {
		return saved, nil
	}
	b, err := json.MarshalIndent(saved, "", "  ")
	if err != nil {
		return last, err
	}
	tmp := s.registryFile() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return last, fmt.Errorf("infra: save schemas: %w", err)
	}
	if err := os.Rename(tmp, s.registryFile()); err != nil {
		return last, fmt.Errorf("infra: save schemas: %w", err)
	}
	return saved, nil
}

func (s *Stack) persistRegistry(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	var last []savedSchema
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			saveCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if _, err := s.saveRegistry(saveCtx, last); err != nil {
				s.opts.Logger.Warn("saving schemas failed", "err", err)
			}
			cancel()
			return
		case <-t.C:
			var err error
			if last, err = s.saveRegistry(ctx, last); err != nil && ctx.Err() == nil {
				s.opts.Logger.Warn("saving schemas failed", "err", err)
			}
		}
	}
}
