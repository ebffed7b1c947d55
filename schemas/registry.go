package schemas

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// Registry registers or finds the Comment schema under Subject.
type Registry struct {
	cl      *sr.Client
	subject string
	text    string
	schema  avro.Schema

	level    sr.CompatibilityLevel // the subject's level after Register
	levelSet bool                  // whether Register set it (the subject had none)
}

// NewRegistry is a Registry for the embedded Comment schema under Subject.
func NewRegistry(cl *sr.Client) *Registry {
	return &Registry{cl: cl, subject: Subject, text: CommentSchemaText, schema: commentSchema}
}

// ForTopic is the same registry for the value subject of another topic
// (TopicNameStrategy: "<topic>-value").
func (r *Registry) ForTopic(topic string) *Registry {
	cp := *r
	cp.subject = topic + "-value"
	return &cp
}

// Subject is the subject the registry registers under.
func (r *Registry) Subject() string { return r.subject }

// WithSchema is the same registry for another version of the schema (text),
// for evolution: what Register does with it is what a producer built from
// that schema would do.
func (r *Registry) WithSchema(text string) (*Registry, error) {
	s, err := ParseSchema(text)
	if err != nil {
		return nil, err
	}
	return &Registry{cl: r.cl, subject: r.subject, text: text, schema: s}, nil
}

// Register registers the schema under the subject and returns its ID. It is
// idempotent: the same schema gets the same ID again. Before registering it
// checks, locally, that the schema is BACKWARD compatible with the latest
// registered version (it can read every event written with it) — real
// registries refuse otherwise, srfake does not, ours must either way.
// Afterwards it sets the subject's compatibility level to BACKWARD only if
// the subject has no level of its own: an operator's level (FULL,
// FULL_TRANSITIVE, ...) is never overruled. Compatibility reports the level
// in force. Register is not safe for concurrent use.
func (r *Registry) Register(ctx context.Context) (int, error) {
	latest, err := r.cl.SchemaByVersion(ctx, r.subject, -1)
	switch {
	case isNotFound(err):
		// first version of the subject
	case err != nil:
		return 0, fmt.Errorf("fetch latest %s: %w", r.subject, registryErr(err))
	default:
		if err := r.checkBackward(latest); err != nil {
			return 0, err
		}
	}

	ss, err := r.cl.CreateSchema(ctx, r.subject, sr.Schema{Schema: r.text, Type: sr.TypeAvro})
	if err != nil {
		var re *sr.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusConflict {
			return 0, &IncompatibleError{Subject: r.subject, LatestVersion: latest.Version, Reason: "the registry refused it: " + re.Message}
		}
		return 0, fmt.Errorf("register %s: %w", r.subject, registryErr(err))
	}
	if err := r.ensureCompatibility(ctx); err != nil {
		return 0, err
	}
	return ss.ID, nil
}

// ensureCompatibility reads the subject's own compatibility level and sets
// BACKWARD only when it has none. It asks with defaultToGlobal=false, so a
// registry answers 404 for a subject without a level of its own: that is
// Confluent's and Redpanda's default, but others (srfake) answer the global
// level unless told, which must not be taken for the subject's.
func (r *Registry) ensureCompatibility(ctx context.Context) error {
	own := sr.WithParams(ctx, sr.RawParams(url.Values{"defaultToGlobal": {"false"}}))
	res := r.cl.Compatibility(own, r.subject)
	var err error
	if len(res) == 1 {
		err = res[0].Err
	}
	switch {
	case len(res) != 1:
		return fmt.Errorf("read %s compatibility: %d answers", r.subject, len(res))
	case err == nil && res[0].Level != 0:
		r.level, r.levelSet = res[0].Level, false
		return nil
	case err != nil && !isNotFound(err):
		return fmt.Errorf("read %s compatibility: %w", r.subject, registryErr(err))
	}
	for _, res := range r.cl.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatBackward}, r.subject) {
		if res.Err != nil {
			return fmt.Errorf("set %s compatibility to BACKWARD: %w", r.subject, registryErr(res.Err))
		}
	}
	r.level, r.levelSet = sr.CompatBackward, true
	return nil
}

// Compatibility is the subject's compatibility level in force after
// Register, and whether Register set it (true: the subject had none, it is
// now BACKWARD; false: the level was the operator's and is kept).
func (r *Registry) Compatibility() (level string, setByUs bool) {
	return r.level.String(), r.levelSet
}

// Lookup finds the ID of the schema without registering it, for deployments
// where an init step registers schemas.
func (r *Registry) Lookup(ctx context.Context) (int, error) {
	ss, err := r.cl.LookupSchema(ctx, r.subject, sr.Schema{Schema: r.text, Type: sr.TypeAvro})
	if isNotFound(err) {
		return 0, fmt.Errorf("schema not registered under %s (lookup-only mode): register it first (the init step does) or enable auto-registration: %w", r.subject, err)
	}
	if err != nil {
		return 0, fmt.Errorf("look up %s: %w", r.subject, registryErr(err))
	}
	return ss.ID, nil
}

func (r *Registry) checkBackward(latest sr.SubjectSchema) error {
	incompatible := func(reason string, fields ...string) error {
		return &IncompatibleError{Subject: r.subject, LatestVersion: latest.Version, Fields: fields, Reason: reason}
	}
	if latest.Type != sr.TypeAvro {
		return incompatible(fmt.Sprintf("the latest version is a %s schema, not Avro", latest.Type))
	}
	old, err := ParseSchema(latest.Schema.Schema)
	if err != nil {
		return incompatible(fmt.Sprintf("the latest version does not parse: %v", err))
	}
	// BACKWARD: the new schema (reader) reads data written with the latest
	// (writer).
	if err := avro.NewSchemaCompatibility().Compatible(r.schema, old); err != nil {
		return incompatible(err.Error(), offendingFields(r.schema, old)...)
	}
	return nil
}

// offendingFields names the top-level fields that break compatibility:
// added without a default, or of a type the old data cannot be read as.
func offendingFields(reader, writer avro.Schema) []string {
	rr, ok1 := reader.(*avro.RecordSchema)
	wr, ok2 := writer.(*avro.RecordSchema)
	if !ok1 || !ok2 {
		return nil
	}
	old := map[string]*avro.Field{}
	for _, f := range wr.Fields() {
		old[f.Name()] = f
	}
	var out []string
	for _, f := range rr.Fields() {
		w, ok := old[f.Name()]
		for _, alias := range f.Aliases() {
			if !ok {
				w, ok = old[alias]
			}
		}
		switch {
		case !ok && !f.HasDefault():
			out = append(out, f.Name())
		case ok && avro.NewSchemaCompatibility().Compatible(f.Type(), w.Type()) != nil:
			out = append(out, f.Name())
		}
	}
	return out
}

// isNotFound reports a registry 404: subject, version or schema not found.
func isNotFound(err error) bool {
	var re *sr.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}

// registryErr marks an error talking to the registry as the registry being
// unavailable (retryable), unless the registry answered with a client error.
func registryErr(err error) error {
	var re *sr.ResponseError
	if errors.As(err, &re) && re.StatusCode >= 400 && re.StatusCode < 500 {
		return err
	}
	return &DecodeError{Class: ClassRegistryUnavailable, Err: err}
}
